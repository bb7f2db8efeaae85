"""What-if rollouts: simulated traffic, scraped like Prometheus, judged through the production Analyzer.

`mlship canary simulate` and the canary benchmark run here. Unlike :func:`mlship.canary.simulate.run_judge`
(exact counts handed to the judge), the rollout sees only what a real one would: the router's and model
servers' cumulative counters (``analysis.LOCAL``'s series, with their labels) sampled every
``scrape_interval`` seconds at a random phase, visible ``scrape_lag`` seconds later, read by the real
:class:`~mlship.canary.analysis.Analyzer` (raw differences since the step began) and judged by the real
judge every ``poll_seconds``. Traffic follows :class:`~mlship.canary.simulate.Scenario` (Poisson
arrivals, the step's weight, shared error bursts, a diurnal swing).

The judge runs only when a new scrape became visible (or the step's time ran out): between scrapes
the observation, so the verdict, cannot change. The simulated counters never reset (the Analyzer's
reset handling is tested against a real Prometheus in tests/canary/test_counter_resets.py).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mlship import names
from mlship.canary.analysis import LOCAL, LOOKBACK_S, Analyzer
from mlship.canary.judge import judge, judged_steps
from mlship.canary.simulate import Ending, ModelBehaviour, Outcome, Scenario, _Role, _Traffic

__all__ = ["Outcome", "Scraping", "run_many", "run_rollout", "scenario", "summary"]
from mlship.canary.state import RolloutState
from mlship.config import CanaryConfig

SCENARIOS = ("aa", "errors", "latency", "shift")
Series = list[tuple[dict[str, str], list[tuple[float, float]]]]


def scenario(
    kind: str,
    *,
    rps: float = 50.0,
    stable_error_rate: float = 0.005,
    canary_error_rate: float | None = None,
    latency_factor: float = 4.0,
    shift_sd: float = 1.0,
    steps: tuple[int, ...] | None = None,
    burst_error_rate: float = 0.0,
    burst_seconds: float = 10.0,
    burst_period: float = 120.0,
    diurnal_swing: float = 0.0,
    max_seconds: float = 3600.0,
) -> Scenario:
    """A named what-if: ``aa`` identical versions, ``errors`` (canary 5 % unless given), ``latency``
    (canary ``latency_factor`` x slower), ``shift`` (predictions moved by ``shift_sd`` sd)."""
    if kind not in SCENARIOS:
        raise ValueError(f"scenario must be one of {', '.join(SCENARIOS)}, got {kind!r}")
    stable = ModelBehaviour(error_rate=stable_error_rate)
    canary = stable
    if kind == "errors":
        canary = ModelBehaviour(error_rate=0.05 if canary_error_rate is None else canary_error_rate)
    elif canary_error_rate is not None:
        canary = ModelBehaviour(error_rate=canary_error_rate)
    if kind == "latency":
        canary = ModelBehaviour(
            error_rate=canary.error_rate, latency_median_s=stable.latency_median_s * latency_factor
        )
    if kind == "shift":
        canary = ModelBehaviour(error_rate=canary.error_rate, prediction_shift=shift_sd * 50.0)
    return Scenario(
        kind,
        stable=stable,
        canary=canary,
        rps=rps,
        steps=steps,
        burst_error_rate=burst_error_rate,
        burst_seconds=burst_seconds,
        burst_period=burst_period,
        diurnal_swing=diurnal_swing,
        max_seconds=max_seconds,
    )


# Scrape targets of ``analysis.LOCAL``: the router (both roles' responses) and each role's model server.
ROUTER_TARGET = "router"
TARGETS = (ROUTER_TARGET, names.ROLE_STABLE, names.ROLE_CANARY)


class ScrapedPrometheus:
    """Answers ``raw_samples`` for ``analysis.LOCAL``'s selectors from scrapes of simulated counters.

    Stands in for Prometheus scraping HAProxy and the model servers: one sample per series of a target
    per scrape of that target (each target on its own schedule), stored with the scrape's timestamp and
    visible from ``timestamp + lag``.
    """

    def __init__(self, lag: float, interval: float = 15.0) -> None:
        self.lag = lag
        self.interval = interval
        # selector -> labels -> (timestamps, values)
        self.series: dict[str, dict[tuple[tuple[str, str], ...], tuple[list[float], list[float]]]] = {}

    def _add(self, selector: str, labels: dict[str, str], t: float, value: float) -> None:
        key = tuple(sorted(labels.items()))
        times, values = self.series.setdefault(selector, {}).setdefault(key, ([], []))
        times.append(t)
        values.append(value)

    def scrape(self, t: float, roles: dict[str, _Role], targets: Sequence[str] = TARGETS) -> None:
        for role, counts in roles.items():
            sel = _selectors(role)
            if ROUTER_TARGET in targets:
                ok = float(counts.requests - counts.errors)
                self._add(sel["responses"], {"code": "2xx"}, t, ok)
                self._add(sel["responses"], {"code": "5xx"}, t, float(counts.errors))
                self._add(sel["errors_5xx"], {"code": "5xx"}, t, float(counts.errors))
                self._add(sel["conn"], {}, t, 0.0)
                self._add(sel["resp"], {}, t, 0.0)
            if role not in targets:
                continue
            if counts.rejected > 0:  # created with its first rejection, as prometheus_client labels are
                self._add(sel["rejected"], {"reason": "value_error"}, t, float(counts.rejected))
            for bounds, per_bucket, name in (
                (counts.latency_bounds, counts.latency, "latency"),
                (counts.prediction_bounds, counts.predictions, "predictions"),
            ):
                cumulative = np.cumsum(per_bucket)
                for bound, value in zip(bounds, cumulative[:-1], strict=True):
                    self._add(sel[name], {"le": f"{bound:g}"}, t, float(value))
                self._add(sel[name], {"le": "+Inf"}, t, float(cumulative[-1]))

    def raw_samples(self, selector: str, seconds: int, *, time: float) -> Series:
        visible = time - self.lag
        start = time - seconds
        # The Analyzer asks for the step and LOOKBACK_S before it. The simulated counters never reset,
        # so its counts are carried by the window's first sample (the series existed before the step),
        # the samples around the step's start and the last ones: answering with those keeps a query
        # O(1) however long the step.
        near_step = (start + LOOKBACK_S - self.interval, start + LOOKBACK_S + 2 + 2 * self.interval)
        out: Series = []
        for key, (times, values) in self.series.get(selector, {}).items():
            first = bisect.bisect_right(times, start)
            last = bisect.bisect_right(times, visible)
            if last <= first:
                continue
            lo = max(first + 1, bisect.bisect_left(times, near_step[0], first, last))
            hi = bisect.bisect_right(times, near_step[1], lo, last)
            kept = sorted({first, *range(lo, hi), *range(max(first, last - 3), last)})
            out.append((dict(key), [(times[i], values[i]) for i in kept]))
        return out


def _selectors(role: str) -> dict[str, str]:
    def term(count: str, i: int) -> str:
        return LOCAL.selector(getattr(LOCAL, count).alternatives[0][i], role)

    return {
        "responses": term("requests", 0),
        "conn": term("requests", 1),
        "errors_5xx": term("errors", 0),
        "resp": term("errors", 2),
        "rejected": term("rejected", 0),
        "latency": LOCAL.selector(LOCAL.latency.selector, role),
        "predictions": LOCAL.selector(LOCAL.predictions.selector, role),
    }


@dataclass(frozen=True)
class Scraping:
    interval: float = 15.0
    lag: float = 1.0
    # Prometheus scrapes each target (the router, each model server) at its own offset in the interval:
    # a role's counts come from targets scraped seconds apart. True: all at the same instant.
    aligned: bool = False


def run_rollout(sc: Scenario, cfg: CanaryConfig, seed: int, scraping: Scraping = Scraping()) -> Outcome:
    """One rollout of ``sc`` through scrapes, the Analyzer and the judge."""
    rng = np.random.default_rng(seed)
    steps = judged_steps(sc.steps or tuple(cfg.steps))
    traffic = _Traffic(sc, rng)
    prom = ScrapedPrometheus(scraping.lag, scraping.interval)
    analyzer = Analyzer(prom)  # type: ignore[arg-type]
    t = 0.0
    phase = float(rng.uniform(0, scraping.interval))
    next_scrapes = {
        target: phase if scraping.aligned else float(rng.uniform(0, scraping.interval)) for target in TARGETS
    }
    next_poll = cfg.poll_seconds
    step = 0
    state = _state(list(sc.steps or cfg.steps), steps[0])
    last_seen = -1.0
    seen_scrapes: list[float] = []
    while t < sc.max_seconds:
        next_scrape = min(next_scrapes.values())
        nxt = min(next_scrape, next_poll)
        traffic.step(nxt - t, steps[step], False)
        t = nxt
        if t >= next_scrape:
            due = [target for target, at in next_scrapes.items() if at <= t]
            prom.scrape(t, {names.ROLE_STABLE: traffic.stable, names.ROLE_CANARY: traffic.canary}, due)
            seen_scrapes.append(t)
            for target in due:
                next_scrapes[target] += scraping.interval
        if t < next_poll:
            continue
        next_poll += cfg.poll_seconds
        visible = max((s for s in seen_scrapes[-len(TARGETS) - 1 :] if s + scraping.lag <= t), default=-1.0)
        timed_out = t - state.step_started_at > cfg.max_step_seconds
        if visible == last_seen and not timed_out:
            continue
        last_seen = visible
        verdict = judge(analyzer.observe(state, t), cfg)
        if verdict.decision in ("rollback", "expire"):
            ending: Ending = "rolled_back" if verdict.decision == "rollback" else "expired"
            trigger = verdict.triggered_by or [str(verdict.evidence.get("expired", ""))]
            return _ending(sc, seed, ending, verdict.reason, t, traffic, step, trigger)
        if verdict.decision == "advance":
            if step == len(steps) - 1:
                return _ending(sc, seed, "promoted", verdict.reason, t, traffic, step, [])
            step += 1
            state.step_index, state.weight, state.step_started_at = step, steps[step], t
            last_seen = -1.0
    return _ending(sc, seed, "timeout", "simulation time limit", t, traffic, step, [])


def _state(steps: list[int], weight: int) -> RolloutState:
    return RolloutState(
        rollout_id="whatif",
        env="simulated",
        phase="progressing",
        stable_version="stable",
        canary_version="canary",
        steps=steps,
        step_index=0,
        weight=weight,
        shadow=False,
        started_at=0.0,
        analysis_started_at=0.0,
        step_started_at=0.0,
        updated_at=0.0,
    )


def _ending(
    sc: Scenario,
    seed: int,
    ending: Ending,
    reason: str,
    t: float,
    traffic: _Traffic,
    step: int,
    triggered_by: Sequence[str],
) -> Outcome:
    return Outcome(
        method="mlship",
        scenario=sc.name,
        seed=seed,
        ending=ending,
        reason=reason,
        seconds=t,
        total_requests=traffic.total,
        canary_requests=traffic.canary_served,
        mirrored_requests=0,
        final_step=step,
        triggered_by=tuple(triggered_by),
    )


def run_many(
    sc: Scenario,
    cfg: CanaryConfig,
    runs: int,
    seed: int = 0,
    scraping: Scraping = Scraping(),
    on_run: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    outcomes = []
    for i in range(runs):
        outcome = run_rollout(sc, cfg, seed + i, scraping)
        outcomes.append(outcome)
        if on_run is not None:
            on_run(outcome)
    return outcomes


def summary(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Endings counted; medians and p90s of requests and seconds, for each ending and overall."""

    def spread(values: Sequence[float]) -> dict[str, float | None]:
        if not values:
            return {"median": None, "p90": None}
        return {"median": float(np.median(values)), "p90": float(np.percentile(values, 90))}

    out: dict[str, Any] = {"runs": len(outcomes), "endings": {}}
    for ending in ("rolled_back", "promoted", "expired", "timeout"):
        these = [o for o in outcomes if o.ending == ending]
        out["endings"][ending] = len(these)
        if these:
            out[ending] = {
                "total_requests": spread([o.total_requests for o in these]),
                "canary_requests": spread([o.canary_requests for o in these]),
                "seconds": spread([o.seconds for o in these]),
            }
    out["all"] = {
        "total_requests": spread([o.total_requests for o in outcomes]),
        "canary_requests": spread([o.canary_requests for o in outcomes]),
        "seconds": spread([o.seconds for o in outcomes]),
    }
    return out


def run_dict(outcome: Outcome) -> dict[str, Any]:
    row = asdict(outcome)
    row["triggered_by"] = list(outcome.triggered_by)
    return {
        k: row[k]
        for k in (
            "seed",
            "ending",
            "triggered_by",
            "total_requests",
            "canary_requests",
            "seconds",
            "final_step",
            "reason",
        )
    }


def upper_bound(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound of a rate seen k times in n."""
    if n == 0:
        return 1.0
    if k >= n:
        return 1.0
    from scipy import stats as sps

    return float(sps.beta.ppf(confidence, k + 1, n - k)) if math.isfinite(k) else 1.0

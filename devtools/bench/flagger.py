"""Baselines for the canary benchmark, run on mlship's simulated traffic (``mlship.canary.simulate``).

* :class:`FlaggerRule` / :func:`run_flagger`: Flagger's canary analysis with its built-in metrics;
* :func:`run_oracle_sprt`: Wald's SPRT told the true error rates, the floor for any valid error test.

Used by ``devtools/bench/canary_detection.py`` only: they are comparisons, not part of the product.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mlship.canary import stats
from mlship.canary.judge import FIRST_STEP_SHARE, SIGNAL_SHARE, judged_steps
from mlship.canary.observation import INF
from mlship.canary.simulate import Outcome, Scenario, _outcome, _Traffic
from mlship.config import CanaryConfig


def run_oracle_sprt(scenario: Scenario, cfg: CanaryConfig, seed: int) -> Outcome:
    """Reference, not a usable rule: Wald's SPRT on the canary's errors, *told the true error rates*.

    Tests H0 p = stable rate + margin against H1 p = canary rate (the scenario's true values, which no
    real test knows) at the judge's error-signal alpha, polled like the judge, at the first step's weight.
    Wald's SPRT minimises the expected sample size among tests with that error, so its figures are the
    floor for any valid test of the error signal in the scenario.
    """
    rng = np.random.default_rng(seed)
    weight = (scenario.steps or tuple(cfg.steps))[0]
    p0 = min(scenario.stable.error_rate + cfg.error_rate_margin, 1.0 - 1e-12)
    p1 = scenario.canary.error_rate
    if not p0 < p1 < 1.0:
        raise ValueError(f"the oracle needs stable rate + margin ({p0}) < canary rate ({p1}) < 1")
    alpha = cfg.false_rollback_rate * FIRST_STEP_SHARE * SIGNAL_SHARE["canary"]["errors"]
    threshold = math.log(1.0 / alpha)
    step_error, step_ok = math.log(p1 / p0), math.log((1.0 - p1) / (1.0 - p0))
    traffic = _Traffic(scenario, rng)
    t = 0.0
    while t < scenario.max_seconds:
        traffic.step(cfg.poll_seconds, weight, shadow=False)
        t += cfg.poll_seconds
        c = traffic.canary
        if c.errors * step_error + (c.requests - c.errors) * step_ok >= threshold:
            return _outcome(
                "oracle", scenario, seed, "rolled_back", "SPRT boundary", t, traffic, 0, ("errors",)
            )
    return _outcome("oracle", scenario, seed, "timeout", "simulation time limit", t, traffic, 0)


@dataclass(frozen=True)
class FlaggerRule:
    """Flagger's canary analysis (fluxcd/flagger pkg/controller/scheduler.go), with its built-in metrics.

    Every ``interval_s`` the scheduler first rolls back if ``failed_checks >= threshold``; otherwise it
    runs the metric checks over the last interval: ``request-success-rate`` (fails when the canary's
    error rate > ``max_error_rate``, i.e. success rate < ``thresholdRange.min`` 99 %) and, if set,
    ``request-duration`` (fails when the canary's ``histogram_quantile(latency_quantile)`` over the
    interval > ``max_latency_s``). A query that finds no canary requests fails the check ("no values
    found"). A failed check increments ``failed_checks`` (never reset during the analysis) and holds the
    weight; a successful check moves to the next step weight (``stepWeights``), or promotes when the
    canary is at the last step. With ``mirror``, the first interval runs on mirrored traffic (Flagger's
    one mirror iteration) before the first weight.
    """

    interval_s: float = 60.0
    threshold: int = 5
    max_error_rate: float = 0.01
    max_latency_s: float | None = None
    latency_quantile: float = 0.99


def run_flagger(
    scenario: Scenario,
    rule: FlaggerRule,
    seed: int,
    *,
    poll_seconds: float = 2.0,
    steps: Sequence[int] | None = None,
) -> Outcome:
    """Roll ``scenario`` out under the Flagger-style rule (traffic simulated every ``poll_seconds``)."""
    rng = np.random.default_rng(seed)
    # Flagger promotes from its maxWeight, below 100 %: the same judged steps as mlship's.
    steps = judged_steps(scenario.steps or steps or CanaryConfig().steps)
    traffic = _Traffic(scenario, rng)
    shadow = scenario.shadow
    step = -1 if shadow else 0
    failed = 0
    t = 0.0
    next_tick = rule.interval_s
    window = _Window(traffic)
    while t < scenario.max_seconds:
        weight = 0 if shadow else steps[step]
        traffic.step(poll_seconds, weight, shadow)
        t += poll_seconds
        if t + 1e-9 < next_tick:
            continue
        next_tick += rule.interval_s
        if failed >= rule.threshold:
            reason = f"failed checks threshold reached {failed}"
            return _outcome(
                "flagger", scenario, seed, "rolled_back", reason, t, traffic, step, ("failed_checks",)
            )
        if _flagger_check_fails(rule, window.delta()):
            failed += 1
        elif shadow:
            shadow, step = False, 0
        elif step == len(steps) - 1:
            return _outcome("flagger", scenario, seed, "promoted", "analysis passed", t, traffic, step)
        else:
            step += 1
        window = _Window(traffic)
    return _outcome("flagger", scenario, seed, "timeout", "simulation time limit", t, traffic, step)


class _Window:
    """Canary counts since the window opened (Prometheus ``increase(...[interval])``)."""

    def __init__(self, traffic: _Traffic) -> None:
        self.traffic = traffic
        c = traffic.canary
        self.start = (c.requests, c.errors, c.latency.copy())

    def delta(self) -> tuple[int, int, np.ndarray, np.ndarray]:
        c = self.traffic.canary
        requests0, errors0, latency0 = self.start
        return c.requests - requests0, c.errors - errors0, c.latency_bounds, c.latency - latency0


def _flagger_check_fails(rule: FlaggerRule, window: tuple[int, int, np.ndarray, np.ndarray]) -> bool:
    requests, errors, bounds, per_bucket = window
    if requests == 0:
        return True  # "no values found for metric": Flagger fails the check
    if errors / requests > rule.max_error_rate:
        return True
    if rule.max_latency_s is not None:
        cumulative = np.cumsum(per_bucket)
        if cumulative[-1] == 0:
            return True
        p = stats.histogram_quantile(rule.latency_quantile, np.append(bounds, INF), cumulative)
        if p > rule.max_latency_s:
            return True
    return False

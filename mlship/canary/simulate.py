"""Simulation harness: synthetic traffic through a canary rollout, judged by mlship's judge.

A :class:`Scenario` describes the stable and canary model versions (error rate, input-rejection rate,
lognormal latency, prediction shift/noise) and the traffic (requests per second, step weights, an
optional shadow phase). :func:`run_judge` feeds mlship's :func:`~mlship.canary.judge.judge` with the
cumulative :class:`~mlship.canary.observation.Observation` every ``poll_seconds`` of simulated time,
exactly as the real runner does from Prometheus; deterministic for a given seed. The benchmarks compare it
with a Flagger-style rule on the same traffic (``devtools/bench/flagger.py``).

Traffic model, per poll interval of ``dt`` seconds: ``Poisson(rps * dt)`` user requests, each routed to
the canary with probability ``weight / 100`` (in the shadow phase every request is served by stable and
mirrored to the candidate). Per request and model: an error with probability ``error_rate``, else an
input rejection (4xx) with probability ``rejection_rate``, else a served prediction. Non-error requests
are timed (lognormal latency, recorded in Prometheus buckets). A prediction is ``base + shift + noise``
where ``base ~ Normal(prediction_mean, prediction_sd)`` is the request's "true" value, shared by both
models on a mirrored request (so the shadow phase sees paired differences).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import stats as sps

from mlship import names
from mlship.canary.judge import judge, judged_steps
from mlship.canary.observation import INF, Histogram, Observation, RoleCounts
from mlship.config import CanaryConfig, GateConfig

# Latency buckets of mlship's model server (bento/service.py): 1 ms x 1.5^i, i = 0..22, seconds.
SERVICE_LATENCY_BUCKETS = names.LATENCY_BUCKETS
DIFF_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0)

# How a rollout ended: the judge's three endings, or the simulation's time limit reached mid-step.
Ending = Literal["rolled_back", "promoted", "expired", "timeout"]


def decile_buckets(mean: float, sd: float) -> tuple[float, ...]:
    """Bucket bounds at the deciles of Normal(mean, sd), as the service derives them from training targets."""
    return tuple(float(mean + sd * sps.norm.ppf(k / 10)) for k in range(1, 10))


@dataclass(frozen=True)
class ModelBehaviour:
    """How one model version answers requests."""

    error_rate: float = 0.005
    rejection_rate: float = 0.002
    latency_median_s: float = 0.04
    latency_sigma: float = 0.5  # lognormal shape: p99 = median * exp(2.326 sigma)
    prediction_shift: float = 0.0  # added to the request's true value
    prediction_noise_sd: float = 0.0  # independent noise per prediction

    def __post_init__(self) -> None:
        for name in ("error_rate", "rejection_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.latency_median_s <= 0 or self.latency_sigma < 0 or self.prediction_noise_sd < 0:
            raise ValueError("latency_median_s must be > 0, latency_sigma and prediction_noise_sd >= 0")


@dataclass(frozen=True)
class Scenario:
    """A rollout to simulate."""

    name: str
    stable: ModelBehaviour = field(default_factory=ModelBehaviour)
    canary: ModelBehaviour = field(default_factory=ModelBehaviour)
    rps: float = 50.0
    steps: tuple[int, ...] | None = None  # canary weights; None: the configured steps
    shadow: bool = False  # start with a shadow phase (all traffic mirrored to the candidate)
    prediction_mean: float = 150.0
    prediction_sd: float = 50.0
    latency_buckets: tuple[float, ...] = SERVICE_LATENCY_BUCKETS
    prediction_buckets: tuple[float, ...] | None = None  # None: deciles of the true values
    diff_buckets: tuple[float, ...] = DIFF_BUCKETS
    max_seconds: float = 3600.0
    # Errors both versions share (an overloaded dependency, a bad batch of inputs): for burst_seconds
    # every burst_period seconds, each request also fails with probability burst_error_rate.
    burst_error_rate: float = 0.0
    burst_seconds: float = 10.0
    burst_period: float = 120.0
    # Traffic swing: rps x (1 + diurnal_swing x sin(2 pi (t / diurnal_period + phase))), phase per seed.
    diurnal_swing: float = 0.0
    diurnal_period: float = 3600.0

    def __post_init__(self) -> None:
        if self.rps <= 0:
            raise ValueError(f"rps must be > 0, got {self.rps}")
        if not 0.0 <= self.burst_error_rate <= 1.0:
            raise ValueError(f"burst_error_rate must be in [0, 1], got {self.burst_error_rate}")
        if not 0.0 <= self.diurnal_swing < 1.0:
            raise ValueError(f"diurnal_swing must be in [0, 1), got {self.diurnal_swing}")
        if self.burst_period <= 0 or self.burst_seconds < 0 or self.diurnal_period <= 0:
            raise ValueError("burst_period and diurnal_period must be > 0, burst_seconds >= 0")
        if self.steps is not None and (
            not self.steps or list(self.steps) != sorted(set(self.steps)) or self.steps[0] <= 0
        ):
            raise ValueError(f"steps must be strictly increasing positive weights, got {self.steps}")

    def bucket_bounds(self) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
        predictions = self.prediction_buckets or decile_buckets(self.prediction_mean, self.prediction_sd)
        return self.latency_buckets, predictions, self.diff_buckets


@dataclass(frozen=True)
class Outcome:
    """How a simulated rollout ended."""

    method: str
    scenario: str
    seed: int
    ending: Ending
    reason: str
    seconds: float
    total_requests: int  # user requests since the rollout began (shadow phase included)
    canary_requests: int  # user requests answered by the canary (blast radius)
    mirrored_requests: int  # shadow copies answered by the candidate (never served)
    final_step: int  # -1: shadow phase
    triggered_by: tuple[str, ...] = ()


class _Role:
    """Cumulative counts of one role, in the shape of :class:`RoleCounts`."""

    def __init__(self, latency_bounds: Sequence[float], prediction_bounds: Sequence[float]) -> None:
        self.latency_bounds = np.asarray(latency_bounds, dtype=float)
        self.prediction_bounds = np.asarray(prediction_bounds, dtype=float)
        self.requests = self.errors = self.rejected = 0
        self.latency = np.zeros(len(latency_bounds) + 1)
        self.predictions = np.zeros(len(prediction_bounds) + 1)

    def add(self, outcome: _Answers) -> None:
        self.requests += outcome.requests
        self.errors += outcome.errors
        self.rejected += outcome.rejected
        self.latency += _bucket(self.latency_bounds, outcome.latencies)
        self.predictions += _bucket(self.prediction_bounds, outcome.predictions)

    def counts(self) -> RoleCounts:
        return RoleCounts(
            requests=float(self.requests),
            errors=float(self.errors),
            rejected=float(self.rejected),
            latency=_histogram(self.latency_bounds, self.latency),
            predictions=_histogram(self.prediction_bounds, self.predictions),
        )


@dataclass
class _Answers:
    requests: int
    errors: int
    rejected: int
    latencies: np.ndarray
    predictions: np.ndarray
    served: np.ndarray  # mask over the requests: answered with a prediction


def _bucket(bounds: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per-bucket counts (value <= le), last bucket +Inf."""
    return np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds) + 1)


def _histogram(bounds: np.ndarray, per_bucket: np.ndarray) -> Histogram:
    cumulative = np.cumsum(per_bucket)
    buckets = {float(b): float(c) for b, c in zip(bounds, cumulative[:-1], strict=True)}
    buckets[INF] = float(cumulative[-1])
    return Histogram(buckets)


def _answer(
    rng: np.random.Generator, model: ModelBehaviour, base: np.ndarray, shared: float = 0.0
) -> _Answers:
    """One model answering the requests whose true values are ``base``; ``shared``: extra error rate."""
    n = len(base)
    u = rng.random(n)
    error = u < 1.0 - (1.0 - model.error_rate) * (1.0 - shared)
    rejected = ~error & (rng.random(n) < model.rejection_rate)
    served = ~error & ~rejected
    timed = int(np.count_nonzero(~error))
    latencies = model.latency_median_s * np.exp(model.latency_sigma * rng.standard_normal(timed))
    predictions = base[served] + model.prediction_shift
    if model.prediction_noise_sd > 0:
        predictions = predictions + model.prediction_noise_sd * rng.standard_normal(len(predictions))
    return _Answers(n, int(error.sum()), int(rejected.sum()), latencies, predictions, served)


class _Traffic:
    """Generates the next ``dt`` seconds of traffic and keeps cumulative counts per role."""

    def __init__(self, scenario: Scenario, rng: np.random.Generator) -> None:
        self.scenario = scenario
        self.rng = rng
        self.lat_bounds, self.pred_bounds, diff_bounds = scenario.bucket_bounds()
        self.diff_bounds = np.asarray(diff_bounds, dtype=float)
        self.total = self.canary_served = self.mirrored = 0
        self.t = 0.0
        self.phase = float(rng.random())
        self.reset()

    def reset(self) -> None:
        self.stable = _Role(self.lat_bounds, self.pred_bounds)
        self.canary = _Role(self.lat_bounds, self.pred_bounds)
        self.paired = np.zeros(len(self.diff_bounds) + 1)

    def step(self, dt: float, weight: int, shadow: bool) -> int:
        """Simulate ``dt`` seconds; returns the canary requests in that time."""
        sc = self.scenario
        n = int(self.rng.poisson(self.rate(self.t + dt / 2) * dt))
        shared = sc.burst_error_rate if (self.t % sc.burst_period) < sc.burst_seconds else 0.0
        self.t += dt
        self.total += n
        base = sc.prediction_mean + sc.prediction_sd * self.rng.standard_normal(n)
        if shadow:
            stable = _answer(self.rng, sc.stable, base, shared)
            candidate = _answer(self.rng, sc.canary, base, shared)
            self.stable.add(stable)
            self.canary.add(candidate)
            self.mirrored += n
            both = stable.served & candidate.served
            diff = np.abs(self._prediction_on(candidate, both) - self._prediction_on(stable, both))
            self.paired += _bucket(self.diff_bounds, diff)
            return n
        to_canary = self.rng.random(n) < weight / 100.0
        self.stable.add(_answer(self.rng, sc.stable, base[~to_canary], shared))
        canary = _answer(self.rng, sc.canary, base[to_canary], shared)
        self.canary.add(canary)
        self.canary_served += canary.requests
        return canary.requests

    def rate(self, t: float) -> float:
        """Requests per second at simulated time ``t``."""
        sc = self.scenario
        return sc.rps * (
            1.0 + sc.diurnal_swing * math.sin(2 * math.pi * (t / sc.diurnal_period + self.phase))
        )

    @staticmethod
    def _prediction_on(answers: _Answers, mask: np.ndarray) -> np.ndarray:
        """Predictions of ``answers`` restricted to requests in ``mask`` (a subset of the served ones)."""
        return answers.predictions[mask[answers.served]]

    def observation(
        self,
        weight: int,
        step: int,
        step_canary: int,
        t: float,
        step_t: float,
        shadow: bool,
        judged_steps: int = 1,
        with_shadow: bool = False,
    ) -> Observation:
        return Observation(
            stable=self.stable.counts(),
            canary=self.canary.counts(),
            weight=weight,
            step_index=step,
            step_canary_requests=float(step_canary),
            elapsed_s=t,
            step_elapsed_s=step_t,
            shadow=shadow,
            paired_abs_diff=_histogram(self.diff_bounds, self.paired) if shadow else None,
            judged_steps=judged_steps,
            with_shadow=with_shadow,
        )


def run_judge(scenario: Scenario, cfg: CanaryConfig, seed: int, gate: GateConfig | None = None) -> Outcome:
    """Roll ``scenario`` out under mlship's judge, polled every ``cfg.poll_seconds`` of simulated time.

    Exact counts at every poll; ``mlship canary simulate`` goes through the Analyzer and a scraped
    Prometheus instead (:mod:`mlship.canary.whatif`).
    """
    rng = np.random.default_rng(seed)
    steps = judged_steps(scenario.steps or tuple(cfg.steps))
    traffic = _Traffic(scenario, rng)
    dt = cfg.poll_seconds
    shadow = scenario.shadow
    step = -1 if shadow else 0
    t = step_start = 0.0
    step_canary = 0
    phase_start = 0.0
    while t < scenario.max_seconds:
        weight = 0 if shadow else steps[step]
        step_canary += traffic.step(dt, weight, shadow)
        t += dt
        obs = traffic.observation(
            weight, step, step_canary, t - phase_start, t - step_start, shadow, len(steps), scenario.shadow
        )
        verdict = judge(obs, cfg, gate)
        if verdict.decision == "rollback":
            trigger = verdict.triggered_by
            return _outcome(
                "mlship", scenario, seed, "rolled_back", verdict.reason, t, traffic, step, trigger
            )
        if verdict.decision == "expire":
            why = (verdict.evidence.get("expired", ""),)
            return _outcome("mlship", scenario, seed, "expired", verdict.reason, t, traffic, step, why)
        if verdict.decision == "advance":
            if shadow:
                shadow = False
                step = 0
                phase_start = t
            elif step == len(steps) - 1:
                return _outcome("mlship", scenario, seed, "promoted", verdict.reason, t, traffic, step)
            else:
                step += 1
            traffic.reset()  # every step is judged on its own counts
            step_start = t
            step_canary = 0
    return _outcome("mlship", scenario, seed, "timeout", "simulation time limit", t, traffic, step)


def _outcome(
    method: str,
    scenario: Scenario,
    seed: int,
    ending: Ending,
    reason: str,
    t: float,
    traffic: _Traffic,
    step: int,
    triggered_by: Sequence[str] = (),
) -> Outcome:
    return Outcome(
        method=method,
        scenario=scenario.name,
        seed=seed,
        ending=ending,
        reason=reason,
        seconds=t,
        total_requests=traffic.total,
        canary_requests=traffic.canary_served,
        mirrored_requests=traffic.mirrored,
        final_step=step,
        triggered_by=tuple(triggered_by),
    )


def lognormal_quantile(model: ModelBehaviour, q: float) -> float:
    """True latency quantile of a model (for tuning a threshold rule fairly)."""
    return model.latency_median_s * math.exp(model.latency_sigma * float(sps.norm.ppf(q)))

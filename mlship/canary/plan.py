"""How long will a rollout take at today's traffic? `mlship canary plan`, and the check of `canary start`.

From the request rate (measured in Prometheus, or given) and the canary config, per judged step: the
canary's request rate, the seconds to gather ``min_samples`` canary requests, and whether that fits in
``max_step_seconds``; and for the first step, how many requests and seconds the errors test needs to
roll back a canary whose error rate is ``effect`` times stable's. The detection figure is the expected
path (the counts' means fed to the same e-value the judge computes), not a bound: half of the rollouts
need more, and ``mlship canary simulate`` gives the spread.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from mlship.canary import stats
from mlship.canary.judge import SIGNAL_SHARE, judged_steps, stage_budget
from mlship.canary.observation import Observation, RoleCounts
from mlship.config import CanaryConfig

# A step whose expected time exceeds this share of max_step_seconds is at risk: traffic swings (a
# diurnal low at half the mean rate doubles it) would make it expire.
AT_RISK_SHARE = 0.5


@dataclass(frozen=True)
class StepPlan:
    weight: int
    canary_rps: float
    seconds_to_samples: float  # expected seconds until the step has min_samples canary requests
    fits: bool  # within max_step_seconds
    at_risk: bool  # more than AT_RISK_SHARE of max_step_seconds


@dataclass(frozen=True)
class Plan:
    rps: float
    steps: list[StepPlan]
    seconds_to_promote: float | None  # expected, for a canary as good as stable; None: a step expires
    detection_errors: float | None  # errors the first step needs to roll back the `effect` canary
    detection_requests: float | None  # total requests (both arms) until then
    detection_seconds: float | None
    effect: float
    stable_error_rate: float
    warnings: list[str] = field(default_factory=list)
    # Where the expected path meets canary.max_step_seconds: the first step that expires (its weight)
    # and the seconds from the start until it does (an expired step rolls the canary back).
    expires_at_weight: int | None = None
    expires_after_seconds: float | None = None
    # The first step expires before the errors test has its requests: the bad canary is rolled back by
    # the expiry, at expires_after_seconds, not by the test.
    detection_expires: bool = False

    @property
    def expires(self) -> bool:
        return any(not s.fits for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "expires": self.expires}


def make_plan(
    cfg: CanaryConfig,
    rps: float,
    *,
    steps: list[int] | None = None,
    stable_error_rate: float = 0.005,
    effect: float = 10.0,
) -> Plan:
    """The plan of a rollout at ``rps`` user requests per second."""
    if not (math.isfinite(rps) and rps >= 0):
        raise ValueError(f"the request rate must be a number >= 0, got {rps}")
    if not 0 < stable_error_rate < 1 or effect <= 1:
        raise ValueError("stable error rate must be in (0, 1) and the effect > 1")
    weights = judged_steps(steps or cfg.steps)
    plans = []
    for w in weights:
        canary_rps = rps * w / 100.0
        seconds = cfg.min_samples / canary_rps if canary_rps > 0 else math.inf
        plans.append(
            StepPlan(
                weight=w,
                canary_rps=canary_rps,
                seconds_to_samples=seconds,
                fits=seconds <= cfg.max_step_seconds,
                at_risk=seconds > AT_RISK_SHARE * cfg.max_step_seconds,
            )
        )
    errors, requests = _detection(cfg, weights, stable_error_rate, effect)
    # The paths respect max_step_seconds: a step that cannot gather its samples in time expires there.
    expiring = next((i for i, s in enumerate(plans) if not s.fits), None)
    expires_after = (
        None
        if expiring is None
        else sum(s.seconds_to_samples for s in plans[:expiring]) + cfg.max_step_seconds
    )
    detection_seconds = requests / rps if requests is not None and rps > 0 else None
    plan = Plan(
        rps=rps,
        steps=plans,
        seconds_to_promote=None if expiring is not None else sum(s.seconds_to_samples for s in plans),
        detection_errors=errors,
        detection_requests=requests,
        detection_seconds=detection_seconds,
        effect=effect,
        stable_error_rate=stable_error_rate,
        expires_at_weight=None if expiring is None else plans[expiring].weight,
        expires_after_seconds=expires_after,
        detection_expires=requests is not None
        and (detection_seconds is None or detection_seconds > cfg.max_step_seconds),
    )
    for s in plans:
        if not s.fits:
            plan.warnings.append(
                f"step {s.weight}% needs ~{_secs(s.seconds_to_samples)} for its {cfg.min_samples} canary "
                f"requests at {rps:g} req/s, more than canary.max_step_seconds ({cfg.max_step_seconds:g}s): "
                "the rollout would expire there. More traffic, larger first steps (--steps) or a lower "
                "canary.min_samples"
            )
        elif s.at_risk:
            plan.warnings.append(
                f"step {s.weight}% needs ~{_secs(s.seconds_to_samples)} of canary.max_step_seconds "
                f"({cfg.max_step_seconds:g}s) at {rps:g} req/s: a dip in traffic would make it expire"
            )
    return plan


def _detection(
    cfg: CanaryConfig, weights: tuple[int, ...], p_s: float, effect: float
) -> tuple[float | None, float | None]:
    """Errors and requests the first step's errors test needs on the expected path (the judge's alpha)."""
    w = weights[0] / 100.0
    theta = w * effect / (w * effect + 1.0 - w)
    null = stats.share_null(w, cfg.error_ratio_limit)
    if theta <= null:
        return None, None  # the effect is within the limit: nothing to detect
    obs = Observation(RoleCounts(), RoleCounts(), weights[0], 0, 0.0, 0.0, 0.0, judged_steps=len(weights))
    alpha = stage_budget(cfg.false_rollback_rate, obs) * SIGNAL_SHARE["canary"]["errors"]
    threshold = math.log(1.0 / alpha)
    events = 1.0
    while float(stats.share_log_e(theta * events, (1 - theta) * events, null)) < threshold:
        events *= 1.05
        if events > 1e7:
            return None, None
    per_request = w * p_s * effect + (1.0 - w) * p_s
    return events, events / per_request


def _secs(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "forever (no traffic)"
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f} min"


# Window over which `canary plan` and `canary start` measure today's request rate.
RATE_WINDOW_S = 600


def live_rps(prom: Any, queries: Any) -> float | None:
    """User requests per second over the last RATE_WINDOW_S (both roles), or None when unreadable."""
    from mlship import names
    from mlship.promclient import PrometheusUnavailable

    total = 0.0
    try:
        for role in (names.ROLE_STABLE, names.ROLE_CANARY):
            value = prom.scalar(queries.render("requests", role, RATE_WINDOW_S), default=0.0)
            total += 0.0 if value is None or math.isnan(value) else value
    except PrometheusUnavailable:
        return None
    return total / RATE_WINDOW_S

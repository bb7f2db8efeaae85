"""The canary judge: from one :class:`Observation`, decide ``wait``, ``advance``, ``rollback`` or ``expire``.

Called at every poll with the current step's counts (:mod:`mlship.canary.observation`). Rules, in order:

1. ``rollback`` as soon as one signal's anytime-valid test (:mod:`mlship.canary.stats`) shows the canary
   worse than stable beyond the configured limit: only evidence rolls a canary back.
2. ``advance`` when the step has ``min_samples`` canary requests (``shadow_samples`` in the shadow phase,
   where advancing means leaving it for the first traffic step), stable has traffic, every signal has
   enough data to mean something, and no signal leans against the canary. Advancing from the last step
   below 100 % promotes: stable keeps serving at every judged step (a concurrent control, as Flagger's
   ``maxWeight``), so 100 % is the promotion itself, never a step judged without a control.
3. Otherwise ``wait``; a signal that leans against the canary without being significant yet (its
   e-value at least the square root of its threshold, or its estimate past the limit) holds the step
   at its weight rather than letting a suspicious canary reach more users.
4. After ``max_step_seconds`` in a step, waiting turns into ``expire``: no evidence either way (samples
   missing, or a lean that never became significant). The candidate is withdrawn (traffic back to
   stable) and the rollout ends ``expired``: its own outcome and exit code, not a verdict against it.

Every verdict carries its evidence: each signal's statistic, estimate, limit, e-value and threshold,
alpha, sample counts, readiness, and which signal triggered the decision.

Signals (model-aware, not only HTTP):

- ``errors``: error rate seen by the caller (5xx, connection failures, timeouts). Traffic steps: which
  arm each error lands on given the step's weight (:func:`stats.share_test`): canary rate >
  ``error_ratio_limit`` x stable's, immune to outages both arms share. Shadow phase (both arms answer
  the same requests): canary - stable > ``error_rate_margin``.
- ``rejections``: input-rejection (4xx validation) rate, the same tests with ``rejection_ratio_limit``
  and ``rejection_rate_margin``.
- ``latency``: the configured quantile of the canary > ``latency_ratio_limit`` x stable's.
- ``predictions``: PSI between canary and stable prediction distributions > ``prediction_psi_limit``.
- ``agreement`` (shadow phase only): share of mirrored requests whose candidate and stable predictions
  differ by more than the gate's agreement tolerance > 1 - ``agreement_min`` (paired differential test).

False-rollback budget: ``false_rollback_rate`` is split (a union bound) between the rollout's stages,
then between the signals of each stage. A shadow phase takes ``SHADOW_SHARE``; the first traffic step
takes ``FIRST_STEP_SHARE`` of the rest (a bad canary is held, so caught, there), the other steps below
100 % share the remainder equally. Each test runs on the stage's own counts and is valid over any number
of looks, so the probability that a rollout of a canary as good as stable is rolled back by any signal
at any stage stays <= ``false_rollback_rate``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from mlship.canary import stats
from mlship.canary.observation import Histogram, Observation, RoleCounts
from mlship.config import CanaryConfig, GateConfig

Decision = Literal["wait", "advance", "rollback", "expire"]

# Share of the rollout's false-rollback budget spent in the shadow phase (when there is one), and share
# of the traffic phase's budget spent at its first step; then each signal's share of a stage's budget.
SHADOW_SHARE = 0.2
FIRST_STEP_SHARE = 0.5
SIGNAL_SHARE = {
    "shadow": {"errors": 0.3, "rejections": 0.15, "latency": 0.15, "predictions": 0.15, "agreement": 0.25},
    "canary": {"errors": 0.5, "rejections": 0.2, "latency": 0.15, "predictions": 0.15},
}


@dataclass(frozen=True)
class Verdict:
    """A decision, the sentence a person reads, and every number it was based on."""

    decision: Decision
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def triggered_by(self) -> list[str]:
        return list(self.evidence.get("triggered_by", []))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form for the rollout log (non-finite numbers become null)."""
        return {"decision": self.decision, "reason": self.reason, "evidence": _json_safe(self.evidence)}


@dataclass(frozen=True)
class _Signal:
    name: str
    rejected: bool  # the anytime-valid test rejects: the canary is worse beyond the limit
    ready: bool  # enough data for the signal to mean something
    beyond_limit: bool  # point estimate past the limit, not (yet) significant: hold the step
    summary: str  # one human line
    missing: str  # why not ready ("" when ready)
    evidence: dict[str, Any]


def judge(obs: Observation, cfg: CanaryConfig, gate: GateConfig | None = None) -> Verdict:
    """Decide what to do with the canary now. ``gate`` gives the shadow agreement rule (default gate)."""
    _validate(obs)
    gate = gate or GateConfig()
    phase = "shadow" if obs.shadow else "canary"
    budget = stage_budget(cfg.false_rollback_rate, obs)
    alphas = {name: budget * share for name, share in SIGNAL_SHARE[phase].items()}
    required = cfg.shadow_samples if obs.shadow else cfg.min_samples

    if obs.shadow:
        counted = [
            _rate_signal("errors", obs, obs.canary.errors, obs.stable.errors, cfg.error_rate_margin, alphas),
            _rate_signal(
                "rejections", obs, obs.canary.rejected, obs.stable.rejected, cfg.rejection_rate_margin, alphas
            ),
        ]
    else:
        counted = [
            _share_signal("errors", obs, obs.canary.errors, obs.stable.errors, cfg.error_ratio_limit, alphas),
            _share_signal(
                "rejections", obs, obs.canary.rejected, obs.stable.rejected, cfg.rejection_ratio_limit, alphas
            ),
        ]
    signals = [
        *counted,
        _latency_signal(obs, cfg, alphas["latency"], required),
        _prediction_signal(obs, cfg, alphas["predictions"], required),
    ]
    if obs.shadow and obs.paired_abs_diff is not None:
        # Local mirroring pairs each request's two predictions; a gateway mirror cannot (its budget
        # share then stays unspent: the test is conservative, never looser).
        signals.append(_agreement_signal(obs, gate, alphas["agreement"], required))

    missing: list[str] = []
    if obs.stable.requests <= 0:
        missing.append("stable has no traffic")
    if obs.step_canary_requests < required:
        missing.append(f"{_fmt_n(obs.step_canary_requests)}/{required} canary requests in this step")
    missing += [f"{s.name}: {s.missing}" for s in signals if not s.ready]
    for role, counts in (("stable", obs.stable), ("canary", obs.canary)):
        missing += [f"no data for {role} {what} (no series in Prometheus)" for what in counts.no_data]
    rejected = [s for s in signals if s.rejected]
    holding = [s for s in signals if s.beyond_limit and not s.rejected]

    evidence: dict[str, Any] = {
        "phase": phase,
        "step_index": obs.step_index,
        "weight": obs.weight,
        "elapsed_s": obs.elapsed_s,
        "step_elapsed_s": obs.step_elapsed_s,
        "step_canary_requests": obs.step_canary_requests,
        "required_samples": required,
        "max_step_seconds": cfg.max_step_seconds,
        "stable_requests": obs.stable.requests,
        "canary_requests": obs.canary.requests,
        "false_rollback_rate": cfg.false_rollback_rate,
        "stage_alpha": budget,
        "judged_steps": obs.judged_steps,
        "triggered_by": [s.name for s in rejected],
        "missing": missing,
        "holding": [s.name for s in holding],
        "signals": {
            s.name: {**s.evidence, "ready": s.ready, "beyond_limit": s.beyond_limit, "rejected": s.rejected}
            for s in signals
        },
    }
    where = "shadow phase" if obs.shadow else f"step {obs.step_index + 1} ({obs.weight}%)"

    if rejected:
        lines = "; ".join(s.summary for s in rejected)
        return Verdict("rollback", f"rollback in {where}: {lines}", evidence)
    if not missing and not holding:
        lines = "; ".join(s.summary for s in signals)
        return Verdict("advance", f"advance from {where}: no signal against the canary ({lines})", evidence)
    if obs.step_elapsed_s > cfg.max_step_seconds:
        # No evidence against the canary: the candidate is withdrawn, not judged worse.
        evidence["triggered_by"] = []
        evidence["expired"] = "insufficient data" if missing else "inconclusive"
        why = "; ".join(missing) if missing else "; ".join(s.summary for s in holding)
        what = "insufficient data" if missing else "leaning against the canary without significance"
        return Verdict(
            "expire",
            f"expired in {where}: {what} after {obs.step_elapsed_s:.0f}s "
            f"(max_step_seconds {cfg.max_step_seconds:.0f}): {why}",
            evidence,
        )
    waits = missing + [f"{s.name} past its limit, not significant ({s.summary})" for s in holding]
    return Verdict("wait", f"wait in {where}: " + "; ".join(waits), evidence)


def judged_steps(steps: Sequence[int]) -> tuple[int, ...]:
    """The weights judged against stable: every step below 100 (advancing from the last one promotes)."""
    return tuple(w for w in steps if w < 100)


def stage_budget(false_rollback_rate: float, obs: Observation) -> float:
    """The share of the rollout's false-rollback budget this stage (shadow phase or step) may spend."""
    traffic = false_rollback_rate * ((1.0 - SHADOW_SHARE) if obs.with_shadow else 1.0)
    if obs.shadow:
        return false_rollback_rate * SHADOW_SHARE
    steps = max(1, obs.judged_steps)
    if steps == 1:
        return traffic
    if obs.step_index <= 0:
        return traffic * FIRST_STEP_SHARE
    return traffic * (1.0 - FIRST_STEP_SHARE) / (steps - 1)


# --- Signals --------------------------------------------------------------------------------------


def _share_signal(
    name: str, obs: Observation, canary_events: float, stable_events: float, ratio_limit: float, alphas: dict
) -> _Signal:
    n_c, n_s = obs.canary.requests, obs.stable.requests
    ready = n_c > 0 and n_s > 0
    missing = "" if ready else "no requests on " + ("canary" if n_c <= 0 else "stable")
    if not 0 < obs.weight < 100:
        raise ValueError(
            f"observation.weight must be 1..99 in a traffic step (a concurrent control), got {obs.weight}"
        )
    test = stats.share_test(
        canary_events,
        stable_events,
        canary_share=obs.weight / 100.0,
        ratio_limit=ratio_limit,
        alpha=alphas[name],
    )
    # Leaning against the canary: the estimate past the limit with evidence for it (e-value > 1), or
    # half-way to the threshold on the log scale (e-value >= sqrt(1/alpha)).
    past = test.ratio_estimate is not None and test.ratio_estimate > ratio_limit and test.log_e_value > 0
    beyond = (past or test.log_e_value >= test.threshold / 2) and not test.rejected
    rate_c = canary_events / n_c if n_c > 0 else None
    rate_s = stable_events / n_s if n_s > 0 else None
    summary = (
        f"{name} canary {_pct(rate_c)} vs stable {_pct(rate_s)}: {_fmt_n(canary_events)} of "
        f"{_fmt_n(canary_events + stable_events)} on the canary at weight {obs.weight}% "
        f"(ratio {_num(test.ratio_estimate)}, limit {ratio_limit:g}), "
        f"e-value {_e(test.log_e_value)} vs {_e(test.threshold)}"
    )
    evidence = {
        "test": "share",
        **test.to_dict(),
        "canary_trials": n_c,
        "stable_trials": n_s,
        "canary_rate": rate_c,
        "stable_rate": rate_s,
    }
    return _Signal(name, test.rejected, ready, beyond, summary, missing, evidence)


def _rate_signal(
    name: str, obs: Observation, canary_events: float, stable_events: float, margin: float, alphas: dict
) -> _Signal:
    n_c, n_s = obs.canary.requests, obs.stable.requests
    test = stats.rate_excess_test(
        canary_events, n_c, stable_events, n_s, margin=margin, alpha=alphas[name], independent=not obs.shadow
    )
    ready = n_c > 0 and n_s > 0
    # Leaning against the canary: half-way to the threshold on the log scale (a point estimate past a
    # margin of 0 would hold half of all A/A steps).
    beyond = test.log_e_value >= test.threshold / 2 and not test.rejected
    summary = (
        f"{name} canary {_pct(test.canary_rate)} vs stable {_pct(test.stable_rate)} (margin {_pct(margin)}), "
        f"e-value {_e(test.log_e_value)} vs {_e(test.threshold)}"
    )
    missing = "" if ready else "no requests on " + ("canary" if n_c <= 0 else "stable")
    evidence = {"test": "rate_excess", **test.to_dict()}
    return _Signal(name, test.rejected, ready, beyond, summary, missing, evidence)


def _latency_signal(obs: Observation, cfg: CanaryConfig, alpha: float, required: int) -> _Signal:
    bounds, cum_s, cum_c = stats.align_histograms(obs.stable.latency, obs.canary.latency, _names("latency"))
    test = stats.quantile_ratio_test(
        bounds,
        cum_s,
        cum_c,
        quantile=cfg.latency_quantile,
        ratio_limit=cfg.latency_ratio_limit,
        alpha=alpha,
    )
    mw = stats.mann_whitney_binned(stats.bin_counts(cum_s), stats.bin_counts(cum_c))
    ready, missing = _histograms_ready(len(bounds), test.stable_count, test.canary_count, required)
    beyond = test.ratio_estimate is not None and test.ratio_estimate > cfg.latency_ratio_limit
    q = f"p{cfg.latency_quantile * 100:g}"
    summary = (
        f"latency {q} canary {_secs(test.canary_estimate)} vs stable {_secs(test.stable_estimate)} "
        f"(ratio {_num(test.ratio_estimate)}, limit {cfg.latency_ratio_limit:g}"
    )
    if test.rejected:
        summary += (
            f"; {q} canary > {_secs(test.canary_lower_bound)} >= limit x stable's bound "
            f"{_secs(test.stable_upper_bound)}"
        )
    summary += ")"
    evidence = {
        "test": "quantile_ratio",
        **test.to_dict(),
        "buckets": len(bounds),
        "mann_whitney": None if mw is None else mw.__dict__.copy(),
    }
    return _Signal("latency", test.rejected, ready, beyond, summary, missing, evidence)


def _prediction_signal(obs: Observation, cfg: CanaryConfig, alpha: float, required: int) -> _Signal:
    bounds, cum_s, cum_c = stats.align_histograms(
        obs.stable.predictions, obs.canary.predictions, _names("predictions")
    )
    test = stats.distribution_shift_test(
        stats.bin_counts(cum_s), stats.bin_counts(cum_c), limit=cfg.prediction_psi_limit, alpha=alpha
    )
    ready, missing = _histograms_ready(len(bounds), test.stable_count, test.canary_count, required)
    beyond = test.psi is not None and test.psi > cfg.prediction_psi_limit
    summary = (
        f"predictions PSI {_num(test.psi)} (limit {cfg.prediction_psi_limit:g}; best two-group split "
        f"PSI {_num(test.split_psi)}, e-value {_e(test.log_e_value)} vs {_e(test.threshold)}), "
        f"KS {_num(test.ks_statistic)}"
    )
    evidence = {"test": "psi_split", **test.to_dict(), "bucket_bounds": bounds.tolist()}
    return _Signal("predictions", test.rejected, ready, beyond, summary, missing, evidence)


def _agreement_signal(obs: Observation, gate: GateConfig, alpha: float, required: int) -> _Signal:
    limit = 1.0 - gate.agreement_min
    bounds_p, cum_p = stats.cumulative_counts(obs.stable.predictions, "stable predictions")
    # The gate's tolerance is relative; the mirrored |diff| histogram is absolute. Scale by the typical
    # size of a stable prediction (median magnitude from its histogram).
    scale = abs(stats.histogram_quantile(0.5, bounds_p, cum_p)) if cum_p[-1] > 0 else math.nan
    paired = obs.paired_abs_diff or Histogram()
    bounds, cum = stats.cumulative_counts(paired, "paired_abs_diff")
    if not math.isfinite(scale) or scale == 0:
        evidence = {"test": "paired_disagreement", "pairs": float(cum[-1]), "limit": limit, "scale": None}
        summary = "agreement: no stable prediction to scale the tolerance"
        return _Signal("agreement", False, False, False, summary, "no stable predictions", evidence)
    tolerance = gate.agreement_tolerance * scale
    test = stats.disagreement_test(bounds, cum, tolerance=tolerance, limit=limit, alpha=alpha)
    ready = test.pairs >= required and test.tolerance_bound is not None
    if test.tolerance_bound is None:
        missing = f"no |diff| bucket bound >= tolerance {tolerance:.4g}"
    else:
        missing = "" if ready else f"{_fmt_n(test.pairs)}/{required} paired predictions"
    beyond = test.share_beyond is not None and test.share_beyond > limit
    summary = (
        f"agreement: {_pct(test.share_beyond)} of mirrored requests differ by > {_num(test.tolerance_bound)} "
        f"(limit {_pct(limit)}), e-value {_e(test.log_e_value)} vs {_e(test.threshold)}"
    )
    evidence = {
        "test": "paired_disagreement",
        **test.to_dict(),
        "relative_tolerance": gate.agreement_tolerance,
        "scale": scale,
    }
    return _Signal("agreement", test.rejected, ready, beyond, summary, missing, evidence)


def _histograms_ready(buckets: int, n_s: float, n_c: float, required: int) -> tuple[bool, str]:
    if buckets < 2:
        return False, "stable and canary share no finite bucket bound"
    if n_s < required or n_c < required:
        return False, f"{_fmt_n(n_c)} canary / {_fmt_n(n_s)} stable observations, need {required} each"
    return True, ""


# --- Input checks and formatting ------------------------------------------------------------------


def _validate(obs: Observation) -> None:
    if not 0 <= obs.weight <= 100:
        raise ValueError(f"observation.weight must be 0..100, got {obs.weight}")
    for value, label in ((obs.elapsed_s, "elapsed_s"), (obs.step_elapsed_s, "step_elapsed_s")):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"observation.{label} must be a finite number >= 0, got {value}")
    if not math.isfinite(obs.step_canary_requests) or obs.step_canary_requests < 0:
        raise ValueError(f"observation.step_canary_requests must be >= 0, got {obs.step_canary_requests}")
    for role, counts in (("stable", obs.stable), ("canary", obs.canary)):
        _validate_role(role, counts)


def _validate_role(role: str, counts: RoleCounts) -> None:
    for label in ("requests", "errors", "rejected"):
        value = getattr(counts, label)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"observation.{role}.{label} must be a finite number >= 0, got {value}")
    for label in ("errors", "rejected"):
        if getattr(counts, label) > counts.requests:
            raise ValueError(
                f"observation.{role}.{label} ({getattr(counts, label)}) exceeds "
                f"observation.{role}.requests ({counts.requests})"
            )


def _names(what: str) -> tuple[str, str]:
    return (f"observation.stable.{what}", f"observation.canary.{what}")


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.3g}%"


def _num(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.3g}"


def _secs(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 1000:.3g}ms"


def _e(log_e: float) -> str:
    if not math.isfinite(log_e):
        return "inf" if log_e > 0 else "0"
    return f"{math.exp(min(log_e, 700)):.3g}"


def _fmt_n(x: float) -> str:
    return f"{x:.0f}"

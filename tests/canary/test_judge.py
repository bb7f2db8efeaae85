"""The canary judge: each decision rule, and the evidence logged with every verdict."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from mlship.canary.judge import FIRST_STEP_SHARE, SHADOW_SHARE, SIGNAL_SHARE, judge, stage_budget
from mlship.canary.observation import INF, Histogram, Observation, RoleCounts
from mlship.canary.simulate import SERVICE_LATENCY_BUCKETS, decile_buckets
from mlship.config import CanaryConfig, GateConfig

CFG = CanaryConfig()
PREDICTION_BUCKETS = decile_buckets(150.0, 50.0)
DIFF_BUCKETS = (1.0, 5.0, 10.0, 20.0, 50.0, 100.0)


def hist(bounds, values) -> Histogram:
    per_bucket = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds) + 1)
    cumulative = np.cumsum(per_bucket)
    return Histogram(
        {**{float(b): float(c) for b, c in zip(bounds, cumulative, strict=False)}, INF: float(cumulative[-1])}
    )


def role(
    rng,
    requests,
    *,
    error_rate=0.005,
    rejection_rate=0.002,
    latency_s=0.04,
    shift=0.0,
    latency=True,
    predictions=True,
) -> RoleCounts:
    errors = int(rng.binomial(requests, error_rate))
    rejected = int(rng.binomial(requests - errors, rejection_rate))
    served = requests - errors - rejected
    lat = latency_s * np.exp(0.5 * rng.standard_normal(requests - errors)) if latency else np.array([])
    pred = 150 + shift + 50 * rng.standard_normal(served) if predictions else np.array([])
    return RoleCounts(
        requests=float(requests),
        errors=float(errors),
        rejected=float(rejected),
        latency=hist(SERVICE_LATENCY_BUCKETS, lat) if latency else Histogram(),
        predictions=hist(PREDICTION_BUCKETS, pred) if predictions else Histogram(),
    )


def observe(
    stable, canary, *, step_canary=None, step_elapsed=60.0, shadow=False, paired=None, weight=10, step=1
) -> Observation:
    return Observation(
        stable=stable,
        canary=canary,
        weight=0 if shadow else weight,
        step_index=-1 if shadow else step,
        step_canary_requests=canary.requests if step_canary is None else step_canary,
        elapsed_s=step_elapsed + 100.0,
        step_elapsed_s=step_elapsed,
        shadow=shadow,
        paired_abs_diff=paired,
    )


@pytest.fixture
def rng():
    return np.random.default_rng(2024)


def test_a_canary_as_good_as_stable_advances_once_the_step_has_its_samples(rng):
    verdict = judge(observe(role(rng, 3600), role(rng, 400)), CFG)
    assert verdict.decision == "advance"
    assert verdict.reason.startswith("advance from step 2 (10%)")
    signals = verdict.evidence["signals"]
    assert set(signals) == {"errors", "rejections", "latency", "predictions"}
    assert all(s["ready"] and not s["rejected"] for s in signals.values())
    assert verdict.evidence["triggered_by"] == [] and verdict.evidence["missing"] == []


def test_a_bad_error_rate_rolls_back_and_the_verdict_carries_its_evidence(rng):
    verdict = judge(observe(role(rng, 3600), role(rng, 400, error_rate=0.08)), CFG)
    assert verdict.decision == "rollback"
    assert verdict.triggered_by == ["errors"]
    assert "errors canary" in verdict.reason and "limit 1.5" in verdict.reason
    errors = verdict.evidence["signals"]["errors"]
    assert errors["test"] == "share" and errors["canary_share"] == 0.1
    assert errors["rejected"] and errors["log_e_value"] >= errors["threshold"]
    assert errors["alpha"] == pytest.approx(CFG.false_rollback_rate * SIGNAL_SHARE["canary"]["errors"])
    assert errors["canary_trials"] == 400 and errors["stable_trials"] == 3600
    assert errors["null_share"] == pytest.approx(0.1 * 1.5 / (0.1 * 1.5 + 0.9))
    logged = json.loads(json.dumps(verdict.to_dict(), allow_nan=False))  # strict JSON for the log
    assert logged["decision"] == "rollback" and logged["reason"] == verdict.reason
    for name, signal in logged["evidence"]["signals"].items():
        assert {"alpha", "ready", "rejected", "beyond_limit"} <= set(signal), name


def test_a_slow_canary_rolls_back_on_latency(rng):
    verdict = judge(observe(role(rng, 9000), role(rng, 1000, latency_s=0.16)), CFG)
    assert verdict.decision == "rollback" and verdict.triggered_by == ["latency"]
    latency = verdict.evidence["signals"]["latency"]
    assert latency["canary_lower_bound"] >= CFG.latency_ratio_limit * latency["stable_upper_bound"] * 0.999
    assert latency["mann_whitney"]["prob_canary_greater"] > 0.9


def test_shifted_predictions_roll_back(rng):
    verdict = judge(observe(role(rng, 3600), role(rng, 600, shift=60.0)), CFG)
    assert verdict.decision == "rollback" and verdict.triggered_by == ["predictions"]
    assert verdict.evidence["signals"]["predictions"]["psi"] > CFG.prediction_psi_limit


def test_more_rejected_inputs_roll_back(rng):
    verdict = judge(observe(role(rng, 3600), role(rng, 600, rejection_rate=0.1)), CFG)
    assert verdict.decision == "rollback" and verdict.triggered_by == ["rejections"]


def test_a_step_waits_for_its_minimum_canary_samples(rng):
    verdict = judge(observe(role(rng, 3600), role(rng, 400), step_canary=120), CFG)
    assert verdict.decision == "wait"
    assert "120/200 canary requests in this step" in verdict.reason


def test_no_data_is_never_a_pass(rng):
    empty = RoleCounts()
    waiting = judge(observe(role(rng, 3600), empty, step_elapsed=30.0), CFG)
    assert waiting.decision == "wait"
    late = judge(observe(role(rng, 3600), empty, step_elapsed=CFG.max_step_seconds + 1), CFG)
    # No evidence against the canary: it expires (withdrawn), it is not rolled back.
    assert late.decision == "expire" and late.triggered_by == []
    assert "insufficient data" in late.reason and late.evidence["expired"] == "insufficient data"


def test_a_stable_without_traffic_never_lets_the_canary_advance(rng):
    verdict = judge(observe(RoleCounts(), role(rng, 400)), CFG)
    assert verdict.decision == "wait" and "stable has no traffic" in verdict.reason
    late = judge(observe(RoleCounts(), role(rng, 400), step_elapsed=CFG.max_step_seconds + 1), CFG)
    assert late.decision == "expire" and "stable has no traffic" in late.reason


def test_a_missing_latency_histogram_blocks_advancing(rng):
    verdict = judge(observe(role(rng, 3600), role(rng, 400, latency=False)), CFG)
    assert verdict.decision == "wait"
    assert "latency:" in verdict.reason
    assert not verdict.evidence["signals"]["latency"]["ready"]


def test_an_estimate_past_its_limit_holds_the_step_then_expires_without_a_verdict():
    stable = RoleCounts(
        requests=3600,
        errors=18,
        latency=hist(SERVICE_LATENCY_BUCKETS, np.full(3600, 0.04)),
        predictions=hist(PREDICTION_BUCKETS, np.full(3600, 150.0)),
    )
    canary = RoleCounts(
        requests=200,
        errors=8,
        latency=hist(SERVICE_LATENCY_BUCKETS, np.full(200, 0.04)),
        predictions=hist(PREDICTION_BUCKETS, np.full(200, 150.0)),
    )  # 4 % vs 0.5 %: 8 of 26 errors on a 10 % canary, a ratio of 4 (limit 1.5), e-value 2.5 of 200

    held = judge(observe(stable, canary), CFG)
    assert held.decision == "wait" and "errors past its limit" in held.reason
    assert held.evidence["holding"] == ["errors"]
    errors = held.evidence["signals"]["errors"]
    assert 0 < errors["log_e_value"] < errors["threshold"] and errors["ratio_estimate"] > 1.5
    late = judge(observe(stable, canary, step_elapsed=CFG.max_step_seconds + 1), CFG)
    assert late.decision == "expire" and late.triggered_by == []
    assert late.evidence["expired"] == "inconclusive"
    # Fewer canary errors than its share would take: no lean, the step advances.
    fine = dataclasses.replace(canary, errors=1)
    assert judge(observe(stable, fine), CFG).decision == "advance"


def test_a_traffic_step_at_100_percent_has_no_control_and_is_refused(rng):
    with pytest.raises(ValueError, match=r"weight must be 1\.\.99 in a traffic step"):
        judge(observe(role(rng, 0), role(rng, 400), weight=100), CFG)


def test_an_error_burst_both_arms_share_is_no_evidence_against_the_canary(rng):
    # A 50 % step: a 20 % error burst hit both versions alike (outage of a shared dependency).
    stable = role(rng, 2000, error_rate=0.05)
    canary = role(rng, 2000, error_rate=0.05)
    verdict = judge(observe(stable, canary, weight=50), CFG)
    assert verdict.decision == "advance"
    assert verdict.evidence["signals"]["errors"]["null_share"] == pytest.approx(1.5 / 2.5)


def test_shadow_phase_advances_a_candidate_that_agrees_with_stable(rng):
    paired = hist(DIFF_BUCKETS, np.abs(rng.normal(0, 3, size=400)))
    verdict = judge(observe(role(rng, 400), role(rng, 400), shadow=True, paired=paired), CFG)
    assert verdict.decision == "advance" and verdict.reason.startswith("advance from shadow phase")
    agreement = verdict.evidence["signals"]["agreement"]
    assert agreement["tolerance"] == pytest.approx(GateConfig().agreement_tolerance * 150, rel=0.1)
    assert verdict.evidence["signals"]["errors"]["method"].startswith("union bound")  # same requests


def test_shadow_phase_rolls_back_a_candidate_whose_predictions_disagree(rng):
    paired = hist(DIFF_BUCKETS, np.abs(rng.normal(0, 80, size=400)))
    verdict = judge(observe(role(rng, 400), role(rng, 400), shadow=True, paired=paired), CFG)
    assert verdict.decision == "rollback" and "agreement" in verdict.triggered_by
    assert verdict.evidence["signals"]["agreement"]["share_beyond"] > 1 - GateConfig().agreement_min


def test_shadow_phase_with_no_mirrored_pairs_yet_cannot_advance(rng):
    verdict = judge(observe(role(rng, 400), role(rng, 400), shadow=True, paired=Histogram()), CFG)
    assert verdict.decision == "wait" and "agreement" in verdict.reason


def test_a_gateway_mirror_without_pairs_is_judged_on_distributions_alone(rng):
    # Kubernetes: HTTPRoute RequestMirror discards the candidate's answers, so there is no paired
    # histogram (None); errors, latency and the prediction distributions still decide.
    good = judge(observe(role(rng, 400), role(rng, 400), shadow=True, paired=None), CFG)
    assert good.decision == "advance" and "agreement" not in good.evidence["signals"]
    shifted = judge(observe(role(rng, 400), role(rng, 400, shift=60), shadow=True, paired=None), CFG)
    assert shifted.decision == "rollback" and shifted.triggered_by == ["predictions"]


@pytest.mark.parametrize("with_shadow", [False, True])
@pytest.mark.parametrize("judged", [1, 2, 4])
def test_the_false_rollback_budget_is_split_between_stages_without_exceeding_the_configured_rate(
    with_shadow, judged
):
    assert all(sum(shares.values()) <= 1.0 + 1e-12 for shares in SIGNAL_SHARE.values())
    rng = np.random.default_rng(1)
    paired = hist(DIFF_BUCKETS, np.abs(rng.normal(0, 3, size=400)))
    stages = [(-1, True)] if with_shadow else []
    stages += [(i, False) for i in range(judged)]
    total = 0.0
    for index, shadow in stages:
        obs = observe(role(rng, 400), role(rng, 400), shadow=shadow, paired=paired, step=index)
        obs = dataclasses.replace(obs, judged_steps=judged, with_shadow=with_shadow)
        verdict = judge(obs, CFG)
        spent = sum(s["alpha"] for s in verdict.evidence["signals"].values())
        assert spent <= stage_budget(CFG.false_rollback_rate, obs) * (1 + 1e-12)
        assert verdict.evidence["stage_alpha"] == stage_budget(CFG.false_rollback_rate, obs)
        total += stage_budget(CFG.false_rollback_rate, obs)
    # The whole rollout spends exactly the configured rate (a union bound over its stages).
    assert total == pytest.approx(CFG.false_rollback_rate)
    first = stage_budget(CFG.false_rollback_rate, observe(RoleCounts(), RoleCounts(), step=0))
    assert first == CFG.false_rollback_rate  # one judged step (the default of observe) takes it all
    if judged > 1 and not with_shadow:
        obs = dataclasses.replace(observe(RoleCounts(), RoleCounts(), step=0), judged_steps=judged)
        assert stage_budget(CFG.false_rollback_rate, obs) == CFG.false_rollback_rate * FIRST_STEP_SHARE
    if with_shadow:
        obs = dataclasses.replace(observe(RoleCounts(), RoleCounts(), shadow=True), with_shadow=True)
        assert stage_budget(CFG.false_rollback_rate, obs) == CFG.false_rollback_rate * SHADOW_SHARE


@pytest.mark.parametrize(
    ("canary", "message"),
    [
        (
            RoleCounts(requests=10, errors=11),
            r"observation.canary.errors \(11\) exceeds observation.canary.requests",
        ),
        (RoleCounts(requests=-1), "observation.canary.requests must be a finite number >= 0"),
        (RoleCounts(requests=math.nan), "observation.canary.requests"),
    ],
)
def test_an_impossible_observation_is_refused_naming_the_field(canary, message):
    with pytest.raises(ValueError, match=message):
        judge(observe(RoleCounts(requests=10), canary, step_canary=0), CFG)


@pytest.mark.parametrize("short", ["stable", "canary"])
def test_both_arms_need_enough_latency_and_prediction_observations(rng, short):
    # Either arm short of observations keeps the step waiting (not only when both are).
    few, many = role(rng, 150), role(rng, 3000)
    stable, canary = (few, many) if short == "stable" else (many, few)
    weight = 95 if short == "stable" else 5  # the traffic split that gives those counts
    verdict = judge(observe(stable, canary, step_canary=400, weight=weight), CFG)
    assert verdict.decision == "wait"
    for signal in ("latency", "predictions"):
        assert not verdict.evidence["signals"][signal]["ready"], signal
        assert any(m.startswith(f"{signal}: ") and "need 200 each" in m for m in verdict.evidence["missing"])

"""Statistics of the canary judge: known values, scipy/Prometheus agreement, and error control by simulation.

The type-I tests simulate continuous monitoring (a look after every batch of requests, the way the runner
polls) at the *boundary* of the null hypothesis, the hardest case, and check the share of runs that ever
reject stays <= alpha within a binomial band. Each is paired with a naive fixed-sample test under the same
monitoring, which must exceed alpha: proof that the simulation is demanding enough to catch a broken
boundary.
"""

from __future__ import annotations

import math
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from mlship import names
from mlship.canary import stats
from mlship.canary.observation import INF, Histogram


def band_upper(runs: int, alpha: float) -> int:
    """Largest count of rejections compatible with a true rate alpha (one-sided binomial 99.9 %)."""
    return int(sps.binom.ppf(0.999, runs, alpha))


def monitor(rng, runs, looks, batch, p_canary, p_stable, canary_share, margin, decide):
    """Number of runs in which ``decide`` ever rejects over ``looks`` cumulative looks.

    Looks where the canary's estimate is not above stable's + margin are skipped: no test can reject
    there (asserted by the property test below), and skipping them keeps this test fast.
    """
    rejected = 0
    for _ in range(runs):
        n = rng.binomial(batch, canary_share, size=looks)
        x_c = np.cumsum(rng.binomial(n, p_canary))
        x_s = np.cumsum(rng.binomial(batch - n, p_stable))
        n_c, n_s = np.cumsum(n), np.cumsum(batch - n)
        suspicious = np.flatnonzero(x_c / np.maximum(n_c, 1) > x_s / np.maximum(n_s, 1) + margin)
        if any(decide(x_c[i], n_c[i], x_s[i], n_s[i]) for i in suspicious):
            rejected += 1
    return rejected


# --- Binomial rate test -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p_stable", "margin"),
    [(0.005, 0.0), (0.01, 0.005)],
    ids=["rare-errors-no-margin", "boundary-with-margin"],
)
def test_rate_test_keeps_false_rejections_below_alpha_under_continuous_monitoring(p_stable, margin):
    rng = np.random.default_rng(20240601)
    alpha, runs, looks, batch = 0.1, 150, 40, 100
    p_canary = p_stable + margin  # the least favourable null: canary exactly at the margin

    def sequential(x_c, n_c, x_s, n_s):
        return stats.rate_excess_test(x_c, n_c, x_s, n_s, margin=margin, alpha=alpha).rejected

    def naive(x_c, n_c, x_s, n_s):  # one-sided z-test at level alpha, re-run at every look
        p_c, p_s = x_c / max(n_c, 1), x_s / max(n_s, 1)
        se = math.sqrt(p_c * (1 - p_c) / max(n_c, 1) + p_s * (1 - p_s) / max(n_s, 1))
        return se > 0 and (p_c - p_s - margin) / se > sps.norm.isf(alpha)

    false_rejections = monitor(rng, runs, looks, batch, p_canary, p_stable, 0.2, margin, sequential)
    assert false_rejections <= band_upper(runs, alpha), f"{false_rejections}/{runs} runs rejected a true null"
    naive_rejections = monitor(
        np.random.default_rng(20240601), runs, looks, batch, p_canary, p_stable, 0.2, margin, naive
    )
    assert naive_rejections > alpha * runs, (
        "the monitoring simulation is too easy to reveal a broken boundary"
    )


def test_rate_test_union_bound_holds_when_errors_of_both_models_are_correlated():
    # Shadow phase: both models answer the same requests; here one request in two that fails on stable
    # also fails on the candidate, far from independence.
    rng = np.random.default_rng(7)
    alpha, runs, looks, batch, p = 0.1, 150, 40, 50, 0.02
    rejected = 0
    for _ in range(runs):
        x_c = x_s = n = 0
        for _ in range(looks):
            common = rng.random(batch) < p / 2
            fails_s = common | (rng.random(batch) < p / 2)
            fails_c = common | (rng.random(batch) < p / 2)
            x_s, x_c, n = x_s + fails_s.sum(), x_c + fails_c.sum(), n + batch
            if x_c <= x_s:
                continue  # cannot reject (see the property test)
            if stats.rate_excess_test(x_c, n, x_s, n, margin=0.0, alpha=alpha, independent=False).rejected:
                rejected += 1
                break
    assert rejected <= band_upper(runs, alpha)


def test_rate_test_catches_a_clearly_bad_canary_early():
    rng = np.random.default_rng(3)
    detected_at = []
    for _ in range(20):
        x_c = x_s = n_c = n_s = 0
        for look in range(1, 200):
            n = rng.binomial(100, 0.1)
            n_c, n_s = n_c + n, n_s + 100 - n
            x_c, x_s = x_c + rng.binomial(n, 0.05), x_s + rng.binomial(100 - n, 0.005)
            if stats.rate_excess_test(x_c, n_c, x_s, n_s, margin=0.005, alpha=0.005).rejected:
                detected_at.append(look * 100)
                break
    assert len(detected_at) == 20
    assert np.median(detected_at) < 4000


def test_rate_test_ignores_a_tiny_but_significant_difference_below_the_margin():
    # 0.6 % vs 0.5 % on a million requests each: real, but under the 0.5 % margin.
    result = stats.rate_excess_test(6000, 1_000_000, 5000, 1_000_000, margin=0.005, alpha=0.01)
    assert not result.rejected
    assert result.difference == pytest.approx(0.001)
    # Without the margin the same data is overwhelming evidence.
    assert stats.rate_excess_test(6000, 1_000_000, 5000, 1_000_000, margin=0.0, alpha=0.01).rejected


def test_rate_test_reports_its_evidence():
    result = stats.rate_excess_test(30, 300, 10, 2700, margin=0.005, alpha=0.004)
    assert result.rejected
    assert result.threshold == pytest.approx(math.log(1 / 0.004))
    assert result.log_e_value >= result.threshold
    assert result.canary_rate == pytest.approx(0.1)
    assert result.stable_rate == pytest.approx(10 / 2700)
    assert 0 < result.least_favourable_stable_rate < 0.05
    assert set(result.to_dict()) >= {"log_e_value", "threshold", "alpha", "canary_trials", "stable_trials"}


def test_rate_test_without_canary_traffic_has_no_evidence():
    result = stats.rate_excess_test(0, 0, 5, 1000, margin=0.0, alpha=0.01)
    assert not result.rejected
    assert result.canary_rate is None
    assert result.log_e_value <= 0


@settings(max_examples=150, deadline=None)
@given(
    x_c=st.integers(0, 60),
    extra=st.integers(1, 20),
    n_c=st.integers(60, 3000),
    x_s=st.integers(0, 60),
    n_s=st.integers(60, 30000),
    margin=st.sampled_from([0.0, 0.005, 0.02]),
)
def test_rate_test_evidence_grows_with_canary_errors_and_never_rejects_a_better_canary(
    x_c, extra, n_c, x_s, n_s, margin
):
    low = stats.rate_excess_test(x_c, n_c, x_s, n_s, margin=margin, alpha=0.01)
    high = stats.rate_excess_test(min(x_c + extra, n_c), n_c, x_s, n_s, margin=margin, alpha=0.01)
    if low.log_e_value > 0:  # evidence against the canary only grows with more canary errors
        assert high.log_e_value >= low.log_e_value - 1e-9
        assert high.rejected or not low.rejected
    if x_c / n_c <= x_s / n_s + margin:  # canary looks no worse than stable + margin: no evidence at all
        assert low.log_e_value <= 0 and not low.rejected


@pytest.mark.parametrize(
    ("args", "message"),
    [((5, 4, 0, 10), "canary"), ((0, 10, -1, 10), "stable"), ((0, 10, 0, math.nan), "stable")],
)
def test_rate_test_rejects_impossible_counts_naming_the_role(args, message):
    with pytest.raises(ValueError, match=message):
        stats.rate_excess_test(*args, margin=0.0, alpha=0.01)


# --- One-sample e-values --------------------------------------------------------------------------


def test_one_sample_e_value_is_monotone_in_the_count():
    n = 500
    greater = stats.proportion_log_e(np.arange(n + 1), n, 0.01, greater=True)
    less = stats.proportion_log_e(np.arange(n + 1), n, 0.01, greater=False)
    assert np.all(np.diff(greater) >= -1e-12)
    assert np.all(np.diff(less) <= 1e-12)
    assert greater[30] > math.log(1000)  # 6 % above a 1 % null on 500 trials
    assert less[0] > math.log(20)  # nothing above the p99 in 500 trials


# --- Histograms -----------------------------------------------------------------------------------


def random_histograms(seed: int, count: int) -> list[tuple[list[float], list[float]]]:
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        bounds = sorted({round(float(b), 3) for b in rng.uniform(0.001, 5.0, size=rng.integers(1, 8))})
        per_bucket = rng.integers(0, 50, size=len(bounds) + 1).astype(float)
        per_bucket[rng.integers(0, len(per_bucket))] += 1  # never empty
        cases.append(([*bounds, INF], np.cumsum(per_bucket).tolist()))
    return cases


def test_histogram_quantile_matches_prometheus(tmp_path):
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus, installed by `make setup`) is required"
    cases = random_histograms(5, 25)
    quantiles = (0.0, 0.25, 0.5, 0.9, 0.99, 1.0)
    series, checks = [], []
    for i, (bounds, cumulative) in enumerate(cases):
        for le, count in zip(bounds, cumulative, strict=True):
            label = "+Inf" if le == INF else repr(le)
            series.append(
                f"      - series: 'h_bucket{{case=\"{i}\",le=\"{label}\"}}'\n        values: '{count:g}'"
            )
        for q in quantiles:
            expected = stats.histogram_quantile(q, np.array(bounds), np.array(cumulative))
            value = "NaN" if math.isnan(expected) else repr(expected)
            checks.append(
                f'      - expr: histogram_quantile({q}, h_bucket{{case="{i}"}})\n        eval_time: 0m\n'
                f"        exp_samples:\n          - labels: '{{case=\"{i}\"}}'\n            value: {value}"
            )
    test_file = tmp_path / "quantile.test.yml"
    test_file.write_text(
        "rule_files: []\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n"
        + "\n".join(series)
        + "\n    promql_expr_test:\n"
        + "\n".join(checks)
        + "\n"
    )
    run = subprocess.run(
        [promtool, "test", "rules", str(test_file)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_histogram_quantile_special_cases():
    bounds = np.array([0.1, 0.5, 1.0, INF])
    assert stats.histogram_quantile(0.5, bounds, np.array([10.0, 30, 40, 40])) == pytest.approx(0.3)
    assert stats.histogram_quantile(0.9, np.array([0.1, INF]), np.array([10.0, 20])) == 0.1  # +Inf bucket
    assert math.isnan(stats.histogram_quantile(0.5, bounds, np.zeros(4)))
    assert stats.histogram_quantile(-0.1, bounds, np.array([1.0, 1, 1, 1])) == -math.inf


def test_cumulative_counts_flattens_small_decreases_and_rejects_bad_histograms():
    bounds, cum = stats.cumulative_counts(Histogram({0.1: 5.0, 0.5: 4.9, INF: 6.0}))
    assert bounds.tolist() == [0.1, 0.5, INF] and cum.tolist() == [5.0, 5.0, 6.0]
    with pytest.raises(ValueError, match=r"latency: the \+Inf bucket is missing"):
        stats.cumulative_counts(Histogram({0.1: 5.0}), "latency")
    with pytest.raises(ValueError, match="predictions: bucket counts"):
        stats.cumulative_counts(Histogram({0.1: -1.0, INF: 2.0}), "predictions")
    assert stats.cumulative_counts(Histogram())[1].tolist() == [0.0]


def test_align_histograms_compares_different_layouts_exactly_on_shared_bounds():
    fine = Histogram({0.1: 2.0, 0.2: 5.0, 0.5: 9.0, INF: 10.0})
    coarse = Histogram({0.2: 3.0, 1.0: 7.0, INF: 8.0})
    bounds, a, b = stats.align_histograms(fine, coarse)
    assert bounds.tolist() == [0.2, INF]
    assert a.tolist() == [5.0, 10.0] and b.tolist() == [3.0, 8.0]


# --- Latency --------------------------------------------------------------------------------------

# The model server's latency buckets (bento/service.py): 1 ms x 1.5^i rounded to 6 digits, then +Inf.
BUCKETS = np.array([*names.LATENCY_BUCKETS, INF])


def binned(values: np.ndarray, bounds: np.ndarray = BUCKETS) -> np.ndarray:
    """Cumulative counts of ``values`` in Prometheus buckets (value <= le)."""
    per_bucket = np.bincount(np.searchsorted(bounds[:-1], values, side="left"), minlength=len(bounds))
    return np.cumsum(per_bucket).astype(float)


def test_mann_whitney_on_buckets_equals_scipy_on_tied_values():
    rng = np.random.default_rng(1)
    stable = rng.integers(0, 8, size=400)
    canary = rng.integers(1, 9, size=90)
    s_bins = np.bincount(stable, minlength=9)
    c_bins = np.bincount(canary, minlength=9)
    ours = stats.mann_whitney_binned(s_bins, c_bins)
    ref = sps.mannwhitneyu(canary, stable, method="asymptotic", use_continuity=True)
    assert ours.u_statistic == pytest.approx(ref.statistic)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert ours.prob_canary_greater == pytest.approx(ref.statistic / (90 * 400))
    assert stats.mann_whitney_binned(s_bins, np.zeros(9)) is None


def test_ks_on_buckets_equals_scipy_on_tied_values():
    rng = np.random.default_rng(2)
    stable = rng.integers(0, 10, size=700)
    canary = rng.integers(2, 10, size=150)
    d, p = stats.ks_two_sample(np.bincount(stable, minlength=10), np.bincount(canary, minlength=10))
    ref = sps.ks_2samp(canary, stable, method="asymp")
    assert d == pytest.approx(ref.statistic)
    en = 700 * 150 / 850
    assert p == pytest.approx(sps.kstwobign.sf(math.sqrt(en) * d))


def test_quantile_ratio_test_rolls_back_a_clearly_slower_canary_with_valid_bounds():
    rng = np.random.default_rng(4)
    stable = 0.04 * np.exp(0.5 * rng.standard_normal(5000))
    canary = 0.12 * np.exp(0.5 * rng.standard_normal(600))  # 3x slower, limit 1.5x
    result = stats.quantile_ratio_test(
        BUCKETS, binned(stable), binned(canary), quantile=0.99, ratio_limit=1.5, alpha=0.002
    )
    true_p99_s, true_p99_c = 0.04 * math.exp(0.5 * 2.326), 0.12 * math.exp(0.5 * 2.326)
    assert result.rejected
    assert result.stable_upper_bound >= true_p99_s
    assert result.canary_lower_bound < true_p99_c
    assert result.canary_lower_bound >= 1.5 * result.stable_upper_bound * (1 - 1e-3)  # rounded bounds
    assert result.ratio_estimate == pytest.approx(3.0, rel=0.35)


def test_quantile_ratio_test_ignores_a_significant_slowdown_within_the_limit():
    rng = np.random.default_rng(5)
    stable = 0.04 * np.exp(0.5 * rng.standard_normal(100_000))
    canary = 0.048 * np.exp(0.5 * rng.standard_normal(100_000))  # 1.2x slower, limit 1.5x
    result = stats.quantile_ratio_test(
        BUCKETS, binned(stable), binned(canary), quantile=0.99, ratio_limit=1.5, alpha=0.01
    )
    assert not result.rejected
    mw = stats.mann_whitney_binned(stats.bin_counts(binned(stable)), stats.bin_counts(binned(canary)))
    assert mw.p_value < 1e-6  # the slowdown is real, yet within the practical limit


def test_quantile_ratio_test_keeps_alpha_at_the_ratio_limit_under_continuous_monitoring():
    # Canary quantile exactly limit x stable's, buckets spaced by the limit: the least favourable null.
    limit, alpha, runs, looks = 1.5, 0.2, 120, 30
    bounds = np.append(0.01 * limit ** np.arange(16), INF)
    rng = np.random.default_rng(9)
    rejected = 0
    for _ in range(runs):
        stable_cum = np.zeros(len(bounds))
        canary_cum = np.zeros(len(bounds))
        for _ in range(looks):
            stable_cum += binned(0.05 * np.exp(0.6 * rng.standard_normal(200)), bounds)
            canary_cum += binned(limit * 0.05 * np.exp(0.6 * rng.standard_normal(60)), bounds)
            if stats.quantile_ratio_test(
                bounds, stable_cum, canary_cum, quantile=0.9, ratio_limit=limit, alpha=alpha
            ).rejected:
                rejected += 1
                break
    assert rejected <= band_upper(runs, alpha)


# --- Prediction distributions ---------------------------------------------------------------------


def test_psi_known_value_symmetry_and_zero():
    assert stats.psi_two_sample([50, 50], [25, 75], pseudo_count=0.0) == pytest.approx(
        (0.25 - 0.5) * math.log(0.5) + (0.75 - 0.5) * math.log(1.5)
    )
    assert stats.psi_two_sample([10, 30, 60], [30, 30, 40]) == pytest.approx(
        stats.psi_two_sample([30, 30, 40], [10, 30, 60])
    )
    assert stats.psi_two_sample([10, 20, 30], [20, 40, 60]) == pytest.approx(0.0, abs=1e-3)
    assert math.isfinite(stats.psi_two_sample([0, 100], [100, 0]))


def test_psi_split_null_interval_is_exact_and_monotone():
    q = np.linspace(0.0, 1.0, 2001)
    low, high = stats.psi2_null_interval(q, 0.2)
    assert np.all(np.diff(low) >= 0) and np.all(np.diff(high) >= 0)
    assert np.all(low <= q) and np.all(q <= high)
    inner = (low > 1e-9) & (high < 1 - 1e-9)  # away from 0 and 1, where float spacing dominates
    p = np.concatenate((low[inner], high[inner]))
    qq = np.concatenate((q[inner], q[inner]))
    np.testing.assert_allclose((p - qq) * (np.log(p / (1 - p)) - np.log(qq / (1 - qq))), 0.2, rtol=1e-5)


def test_distribution_shift_test_keeps_alpha_at_the_psi_limit_under_continuous_monitoring():
    # Two buckets whose PSI is exactly the limit (the least favourable null), checked at every look.
    limit, alpha, runs, looks = 0.2, 0.1, 80, 20
    q = 0.5
    p = float(stats.psi2_null_interval(np.array([q]), limit)[0][0])  # canary share on the boundary
    rng = np.random.default_rng(12)
    rejected = 0
    for _ in range(runs):
        s_bins = np.zeros(2)
        c_bins = np.zeros(2)
        for _ in range(looks):
            k_s, k_c = rng.binomial(200, q), rng.binomial(40, p)
            s_bins += (k_s, 200 - k_s)
            c_bins += (k_c, 40 - k_c)
            if stats.distribution_shift_test(s_bins, c_bins, limit=limit, alpha=alpha).rejected:
                rejected += 1
                break
    assert rejected <= band_upper(runs, alpha)


def test_distribution_shift_test_rolls_back_only_beyond_the_psi_limit():
    rng = np.random.default_rng(8)
    edges = np.array([-1.28, -0.84, -0.52, -0.25, 0.0, 0.25, 0.52, 0.84, 1.28])

    def bins(shift, n):
        return np.bincount(np.searchsorted(edges, rng.standard_normal(n) + shift), minlength=10)

    shifted = stats.distribution_shift_test(bins(0.0, 4000), bins(1.0, 500), limit=0.2, alpha=0.002)
    assert shifted.rejected and shifted.psi > 0.6
    assert shifted.split_psi <= shifted.psi  # merging buckets never increases PSI
    assert shifted.threshold == pytest.approx(math.log(9 / 0.002))
    assert shifted.ks_p_value < 1e-6
    small = stats.distribution_shift_test(bins(0.0, 50_000), bins(0.15, 50_000), limit=0.2, alpha=0.002)
    assert not small.rejected and small.ks_p_value < 1e-6  # real but small: PSI ~ 0.02
    empty = stats.distribution_shift_test(bins(0.0, 100), np.zeros(10), limit=0.2, alpha=0.002)
    assert not empty.rejected and empty.psi is None


# --- Shadow: paired differential test ---------------------------------------------------------


def test_disagreement_test_uses_the_next_bucket_bound_and_rejects_only_above_the_limit():
    bounds = np.array([1.0, 5.0, 20.0, INF])
    # 1000 mirrored requests, 400 differ by more than 5.
    bad = stats.disagreement_test(
        bounds, np.array([300.0, 600, 800, 1000]), tolerance=4.0, limit=0.2, alpha=0.005
    )
    assert bad.tolerance_bound == 5.0 and bad.beyond == 400 and bad.share_beyond == pytest.approx(0.4)
    assert bad.rejected
    good = stats.disagreement_test(
        bounds, np.array([700.0, 900, 990, 1000]), tolerance=4.0, limit=0.2, alpha=0.005
    )
    assert not good.rejected
    too_wide = stats.disagreement_test(
        bounds, np.array([0.0, 0, 0, 1000]), tolerance=50.0, limit=0.2, alpha=0.005
    )
    assert too_wide.tolerance_bound is None and not too_wide.rejected


# --- share_test: which arm the events land on -----------------------------------------------------


@pytest.mark.parametrize(
    ("k", "rest", "t0"),
    [(0, 0, 0.1), (3, 10, 0.1), (10, 3, 0.1), (13, 12, 0.1), (50, 500, 0.5), (0, 40, 0.3)],
)
def test_share_e_value_is_the_truncated_uniform_mixture_by_brute_force(k, rest, t0):
    # The closed form (incomplete Beta) against numerical integration of the mixture it stands for.
    from scipy import integrate

    numerator = integrate.quad(lambda t: t**k * (1 - t) ** rest, t0, 1, epsabs=0, epsrel=1e-11)[0]
    brute = numerator / (1 - t0) / (t0**k * (1 - t0) ** rest)
    assert math.exp(float(stats.share_log_e(k, rest, t0))) == pytest.approx(brute, rel=1e-7)


@pytest.mark.parametrize("theta", [0.1, 0.05])
def test_share_test_keeps_its_false_alarm_rate_over_continuous_monitoring(theta):
    # Ville: P(sup_t E_t >= 1/alpha) <= alpha when each event lands on the canary with probability
    # <= the null share. Every event is a look (the tightest monitoring there is).
    alpha, t0, runs, events = 0.1, 0.1, 2000, 150
    rng = np.random.default_rng(7)
    on_canary = np.cumsum(rng.random((runs, events)) < theta, axis=1)
    seen = np.arange(1, events + 1)
    log_e = stats.share_log_e(on_canary, seen - on_canary, t0)
    crossed = (log_e >= math.log(1 / alpha)).any(axis=1).mean()
    assert crossed <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)
    if theta == t0:  # at the edge of the null the bound is nearly reached: the test is not wasteful
        assert crossed > alpha / 4


def test_share_test_detects_a_canary_taking_more_than_its_share_of_errors():
    # 10 % weight, canary 5 % errors vs stable 0.5 %: about half of the errors land on the canary.
    test = stats.share_test(10, 9, canary_share=0.1, ratio_limit=1.5, alpha=0.0025)
    assert test.rejected and test.event_share == pytest.approx(10 / 19)
    assert test.ratio_estimate == pytest.approx((10 / 9) * 9)
    assert test.null_share == pytest.approx(0.15 / 1.05)
    # The same counts at a 50 % weight are what an identical canary would show: no evidence.
    assert stats.share_test(10, 9, canary_share=0.5, ratio_limit=1.0, alpha=0.0025).log_e_value < 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"canary_share": 1.0}, "canary_share must be in"),
        ({"canary_share": 0.0}, "canary_share must be in"),
        ({"ratio_limit": 0.9}, "ratio_limit must be >= 1"),
        ({"alpha": 0.0}, "alpha"),
    ],
)
def test_share_test_refuses_a_step_without_control_or_a_bad_limit(kwargs, message):
    args = {"canary_share": 0.1, "ratio_limit": 1.5, "alpha": 0.01, **kwargs}
    with pytest.raises(ValueError, match=message):
        stats.share_test(1, 1, **args)

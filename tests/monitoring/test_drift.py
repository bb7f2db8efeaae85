"""Drift statistics on binned data, checked against scipy and on the real diabetes data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from mlship.model import data
from mlship.model.schema import Schema
from mlship.monitoring import drift


@pytest.fixture(scope="module")
def diabetes():
    frame = data.load_frame()
    split = data.split(frame, seed=42, test_size=0.2)
    schema = Schema.derive(split.train, dataset=data.DATASET_NAME, data_hash=data.data_hash(frame))
    return schema, split


def _counts(schema: Schema, name: str, values: np.ndarray) -> np.ndarray:
    feature = schema.feature(name)
    return np.bincount(schema.bin_index(name, values), minlength=len(feature.reference_share)).astype(float)


def test_psi_of_identical_shares_is_zero_and_grows_with_the_shift():
    reference = [0.25] * 4
    assert drift.psi_vs_reference([25, 25, 25, 25], reference) == pytest.approx(0.0)
    small = drift.psi_vs_reference([20, 25, 25, 30], reference)
    large = drift.psi_vs_reference([10, 10, 40, 40], reference)
    assert 0 < small < large
    assert large == pytest.approx(2 * 0.15 * np.log(0.25 / 0.1) + 2 * 0.15 * np.log(0.4 / 0.25))


def test_psi_counts_an_empty_bin_as_the_alert_rule_does():
    # the same case the promtool test evaluates in PromQL: PSI 4.604 with shares clamped to 1e-4
    assert drift.psi_vs_reference([20, 0], [0.5, 0.5]) == pytest.approx(4.6043, abs=1e-4)


def test_chi_square_is_scipy_s_goodness_of_fit():
    counts = [30, 50, 120, 40]
    reference = [0.1, 0.2, 0.4, 0.3]
    ours = drift.chi_square(counts, reference)
    theirs = stats.chisquare(counts, np.array(reference) * sum(counts))
    assert ours.statistic == pytest.approx(theirs.statistic)
    assert ours.p_value == pytest.approx(theirs.pvalue)
    assert ours.df == 3


def test_binned_ks_never_exceeds_the_raw_ks_and_matches_it_on_fine_bins():
    rng = np.random.default_rng(7)
    reference = rng.normal(size=20_000)
    served = rng.normal(0.3, 1.0, size=2_000)
    raw = stats.kstest(served, reference).statistic
    for n_bins in (10, 200):
        edges = np.quantile(reference, np.linspace(0, 1, n_bins + 1)[1:-1])
        shares = np.bincount(np.searchsorted(edges, reference), minlength=n_bins) / len(reference)
        counts = np.bincount(np.searchsorted(edges, served), minlength=n_bins)
        binned = drift.ks_vs_reference(counts, shares).statistic
        assert binned <= raw + 1e-9
    assert binned == pytest.approx(raw, abs=0.01)


def test_the_held_out_patients_do_not_drift_from_training(diabetes):
    schema, split = diabetes
    verdicts = []
    for feature in schema.features:
        result = drift.judge(
            feature.name,
            feature.kind,
            _counts(schema, feature.name, split.test[feature.name].to_numpy()),
            feature.reference_share,
            psi_threshold=0.2,
            p_value=0.01,
        )
        # 89 patients: a feature whose sparsest training bin holds under 5.6% cannot be judged
        assert result.verdict != "drift", result
        assert result.test == ("ks" if feature.kind == "numeric" else "chi2")
        verdicts.append(result.verdict)
    assert verdicts.count("no drift") >= len(verdicts) - 2


def test_a_shifted_bmi_drifts_and_nothing_else_does(diabetes):
    schema, split = diabetes
    rng = np.random.default_rng(0)
    rows = split.test.sample(2_000, replace=True, random_state=1)
    verdicts = {}
    for feature in schema.features:
        values = rows[feature.name].to_numpy(dtype=float)
        if feature.name == "bmi":
            values = values + 4.0 + rng.normal(0, 0.5, len(values))  # +4 kg/m2: a unit or population change
        result = drift.judge(
            feature.name,
            feature.kind,
            _counts(schema, feature.name, values),
            feature.reference_share,
            psi_threshold=0.2,
            p_value=0.01,
        )
        verdicts[feature.name] = result.verdict
    assert verdicts.pop("bmi") == "drift"
    assert set(verdicts.values()) == {"no drift"}


def test_too_few_values_cannot_be_judged():
    # 12 values over 4 bins of 25%: 3 expected per bin, below Cochran's 5
    result = drift.judge("age", "numeric", [0, 0, 0, 12], [0.25] * 4, psi_threshold=0.2, p_value=0.01)
    assert result.verdict == "insufficient data"
    assert result.psi > 0.2  # the shift is large, the sample is not
    nothing = drift.judge("age", "numeric", [0, 0, 0, 0], [0.25] * 4, psi_threshold=0.2, p_value=0.01)
    assert nothing.verdict == "insufficient data" and nothing.observations == 0


def test_a_significant_but_negligible_shift_is_no_drift():
    result = drift.judge("s5", "categorical", [48_000, 52_000], [0.5, 0.5], psi_threshold=0.2, p_value=0.01)
    assert result.p_value < 1e-10
    assert result.verdict == "no drift"


@pytest.mark.parametrize(
    ("counts", "reference", "message"),
    [
        ([1, 2], [0.5, 0.3, 0.2], "matching counts"),
        ([1], [1.0], "2\\+ bins"),
        ([-1, 2], [0.5, 0.5], "negative"),
    ],
)
def test_bad_input_is_refused(counts, reference, message):
    with pytest.raises(ValueError, match=message):
        drift.psi_vs_reference(counts, reference)

"""Drift statistics on binned data: PSI, chi-square goodness of fit, Kolmogorov-Smirnov.

The model servers count every served feature value in the bin of the training reference it falls
into (deciles for numeric features, categories for categorical ones) and export the training share
of each bin, so served data is compared with training data bin by bin:

* PSI, population stability index: sum (s - r) ln(s / r) over bins, shares clamped to ``EPSILON``
  (as in the alert rules) so that an empty bin counts as very unlikely rather than infinite;
* chi-square goodness of fit of the served counts to the training shares (df = bins - 1);
* Kolmogorov-Smirnov for ordered (numeric) bins: the largest gap between the cumulative served and
  training shares at the bin edges. Measured at bin edges only, so it is conservative (never above
  the KS distance of the raw values); the p-value is the exact one-sample distribution for n values.

A feature drifts when PSI exceeds the configured threshold AND the test rejects at the configured
level: PSI measures how much the distribution moved, the test whether the sample is large enough to
tell. Fewer than ``MIN_EXPECTED`` expected values in some bin means too little data to judge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from mlship.monitoring.limits import LIMITS

EPSILON = LIMITS.psi_epsilon
MIN_EXPECTED = LIMITS.min_expected_per_bin
EXACT_KS_MAX_N = 10_000

Kind = Literal["numeric", "categorical", "unknown"]
Test = Literal["ks", "chi2"]
Verdict = Literal["drift", "no drift", "insufficient data"]


@dataclass(frozen=True)
class TestResult:
    test: Test
    statistic: float
    p_value: float
    df: int | None = None


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: Kind
    observations: float
    psi: float
    chi2: TestResult
    ks: TestResult | None
    test: Test  # the test the verdict relies on: KS for ordered bins, chi-square otherwise
    p_value: float
    verdict: Verdict

    def to_dict(self) -> dict[str, object]:
        return {
            "feature": self.feature,
            "kind": self.kind,
            "observations": round(self.observations, 3),
            "psi": round(self.psi, 6),
            "chi2": {
                "statistic": round(self.chi2.statistic, 6),
                "df": self.chi2.df,
                "p_value": self.chi2.p_value,
            },
            "ks": None
            if self.ks is None
            else {"statistic": round(self.ks.statistic, 6), "p_value": self.ks.p_value},
            "test": self.test,
            "p_value": self.p_value,
            "verdict": self.verdict,
        }


def _arrays(counts: ArrayLike, reference: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(counts, dtype=float)
    r = np.asarray(reference, dtype=float)
    if c.shape != r.shape or c.ndim != 1 or len(c) < 2:
        raise ValueError(
            f"need matching counts and reference shares for 2+ bins, got {c.shape} and {r.shape}"
        )
    if (c < 0).any() or (r < 0).any():
        raise ValueError("counts and shares must not be negative")
    return c, r / r.sum()


def psi_vs_reference(counts: ArrayLike, reference: ArrayLike, epsilon: float = EPSILON) -> float:
    c, r = _arrays(counts, reference)
    total = c.sum()
    if total <= 0:
        raise ValueError("no observations")
    s = np.clip(c / total, epsilon, None)
    r = np.clip(r, epsilon, None)
    return float(np.sum((s - r) * np.log(s / r)))


def chi_square(counts: ArrayLike, reference: ArrayLike, epsilon: float = EPSILON) -> TestResult:
    """Goodness of fit of ``counts`` to the ``reference`` shares (expected counts clamped like PSI)."""
    c, r = _arrays(counts, reference)
    n = c.sum()
    expected = np.clip(r, epsilon, None) * n
    statistic = float(np.sum((c - r * n) ** 2 / expected))
    df = len(c) - 1
    return TestResult("chi2", statistic, float(stats.chi2.sf(statistic, df)), df)


def ks_p_value(distance: float, n: float) -> float:
    """P(D_n >= distance) for the one-sample KS statistic: exact up to EXACT_KS_MAX_N values, then
    Kolmogorov's limit (as scipy's kstest does; the exact series gets slow for large n)."""
    size = max(1, round(n))
    if size <= EXACT_KS_MAX_N:
        return float(stats.kstwo.sf(distance, size))
    return float(stats.kstwobign.sf(distance * np.sqrt(size)))


def ks_vs_reference(counts: ArrayLike, reference: ArrayLike) -> TestResult:
    """One-sample KS on ordered bins: sup |F_served - F_training| over the bin edges."""
    c, r = _arrays(counts, reference)
    n = c.sum()
    distance = float(np.max(np.abs(np.cumsum(c) / n - np.cumsum(r))[:-1]))
    return TestResult("ks", distance, ks_p_value(distance, n))


def judge(
    feature: str,
    kind: Kind,
    counts: ArrayLike,
    reference: ArrayLike,
    *,
    psi_threshold: float,
    p_value: float,
) -> FeatureDrift:
    c, r = _arrays(counts, reference)
    n = float(c.sum())
    if n <= 0:
        nothing = TestResult("ks" if kind == "numeric" else "chi2", 0.0, 1.0, None)
        chi2_none = TestResult("chi2", 0.0, 1.0, len(c) - 1)
        ks_none = nothing if kind == "numeric" else None
        return FeatureDrift(
            feature, kind, 0.0, 0.0, chi2_none, ks_none, nothing.test, 1.0, "insufficient data"
        )
    chi2 = chi_square(c, r)
    ks = ks_vs_reference(c, r) if kind == "numeric" else None
    used = ks or chi2
    index = psi_vs_reference(c, r)
    if n * float(r.min()) < MIN_EXPECTED:
        verdict: Verdict = "insufficient data"
    elif index > psi_threshold and used.p_value < p_value:
        verdict = "drift"
    else:
        verdict = "no drift"
    return FeatureDrift(feature, kind, n, index, chi2, ks, used.test, used.p_value, verdict)

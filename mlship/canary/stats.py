"""Statistics that judge a canary: anytime-valid tests on cumulative counts and histograms.

Every test here may be evaluated again and again as counts grow (the runner polls every few seconds)
and still keeps its false-alarm probability below ``alpha`` over the whole rollout. They are built from
*test supermartingales* (e-processes): a non-negative process whose expectation stays <= 1 while the
null hypothesis holds, so by Ville's inequality (Ville 1939) the probability that it *ever* reaches
``1/alpha`` is at most ``alpha``, whatever the number of looks or the stopping rule.

All tests are exact (non-asymptotic): they use the binomial likelihood itself, not a normal
approximation. Normal-approximation boundaries (e.g. the Gaussian mSPRT) are anti-conservative for the
rare events a canary is judged on (a 0.5 % error rate, the 1 % tail above a p99), where the binomial's
right tail is much heavier than the normal one.

Tests
-----
- :func:`share_test`: which arm do the events (errors, rejected inputs) land on, given the arms' traffic
  shares? Canary rate > ratio limit x stable's, with no estimate of either rate (traffic phase).
- :func:`rate_excess_test`: canary rate - stable rate > margin (errors, rejected inputs), two binomial
  samples; the unknown stable rate is a nuisance parameter handled by an infimum of e-processes.
- :func:`quantile_ratio_test`: latency quantile of the canary > limit x stable's, from shared buckets.
- :func:`distribution_shift_test`: PSI between prediction histograms > limit, through two-group splits.
- :func:`disagreement_test`: shadow phase, share of mirrored requests whose paired predictions differ
  by more than a tolerance > limit.
- Descriptive (fixed-sample) figures for the log: :func:`mann_whitney_binned`, :func:`ks_two_sample`,
  :func:`psi_two_sample`, :func:`histogram_quantile`.

References
----------
- J. Ville (1939), *Etude critique de la notion de collectif*: P(sup_t M_t >= 1/a) <= a.
- H. Robbins (1970), *Statistical methods related to the law of the iterated logarithm*, Ann. Math.
  Statist. 41(5): mixture likelihood ratios and confidence sequences for a binomial proportion.
- L. Wasserman, A. Ramdas, S. Balakrishnan (2020), *Universal inference*, PNAS 117(29): a mixture
  numerator over a supremum-over-the-null denominator is an e-process for a composite null.
- S. Howard, A. Ramdas, J. McAuliffe, J. Sekhon (2021), *Time-uniform, nonparametric, nonasymptotic
  confidence sequences*, Ann. Statist. 49(2): mixture boundaries, union bounds over quantiles.
- R. Johari, P. Koomen, L. Pekelis, D. Walsh (2017/2022), *Always valid inference: continuous monitoring
  of A/B tests*, Oper. Res. 70(3): the mixture SPRT used by A/B platforms (Optimizely, Eppo).
- Prometheus ``histogram_quantile`` (promql/quantile.go, ``bucketQuantile``): quantile interpolation.
- H. Mann, D. Whitney (1947); N. Smirnov (1948); scipy.stats ``mannwhitneyu`` / ``ks_2samp``.
- B. Yurdakul (2018), *Statistical properties of population stability index*: PSI = symmetric KL.
- I. Csiszar (1967), *Information-type measures of difference of probability distributions*: merging
  categories never increases an f-divergence (data-processing inequality), used for PSI splits.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import betaincc, betaln, kolmogorov, ndtr, xlog1py, xlogy

from mlship.canary.observation import INF, Histogram

# --- Priors of the mixture e-processes ----------------------------------------------------------
# The prior only decides *how fast* a real regression is detected; validity holds for any prior.
# Rates a canary is judged on are small and span decades, so the rate priors are continuous and close to
# log-uniform: an equal-weight mixture of Beta(a, b_j) components whose means are geometrically spaced
# (relative spread 1/sqrt(a) = 50 %, wider than the spacing, so the density is smooth). Being continuous,
# the mixture stays within ~log(n)/2 of the best fit however many requests are observed.
_BETA_SHAPE = 4.0
_BETA_SPACING = 1.25  # ratio between neighbouring component means
_STABLE_RATE_RANGE = (1e-6, 0.99)
_CANARY_RATE_FLOOR = 1e-4
# Weight w of the alternatives in the nuisance factor M_s = (1 - w) + w * (...) (see rate_excess_test).
_NUISANCE_SPREAD = 0.5
# One-sided alternatives around a known null proportion, spaced on the logit scale.
_LOGIT_OFFSETS = np.geomspace(0.05, 12.0, 30)
# Candidate stable rates for the infimum over the nuisance parameter: a coarse geometric grid, then
# finer grids around the minimum.
_NUISANCE_POINTS = 400
_REFINE_POINTS = 48
_REFINE_ROUNDS = 2
# Alternatives r * s (r < 1) of the stable factor of the rate test.
_DOWNWARD_RATIOS = np.geomspace(0.4, 0.98, 12)
_PSI2_LOGIT_SPAN = 60.0
_PSI2_BISECTION_STEPS = 30
_SPLITS_EVALUATED = 2
# Exporters round bucket bounds (mlship's service: 1 ms x 1.5^i to 6 digits): a bound within 0.1 % of
# limit x v counts as reaching it, so the latency test is about limit x (1 - 0.001), a negligible change.
_BOUND_ROUNDING = 1e-3
_BISECTION_STEPS = 22  # logit bracket of 2 * 30 shrinks to ~1.4e-5
_LOGIT_SPAN = 30.0  # logit(p) in [-30, 30]: p in [1e-13, 1 - 1e-13]
_LOGIT_EDGE = 1e-13


def _loglik(p: np.ndarray | float, k: np.ndarray | float, n: np.ndarray | float) -> np.ndarray:
    """Binomial log-likelihood without the binomial coefficient (it cancels in every ratio)."""
    p = np.asarray(p, dtype=float)
    return xlogy(k, p) + xlog1py(np.subtract(n, k), -p)


def _logmeanexp(terms: np.ndarray) -> np.ndarray:
    top = terms.max(axis=-1, keepdims=True)
    return (top + np.log(np.exp(terms - top).mean(axis=-1, keepdims=True)))[..., 0]


def _log_mixture(k: np.ndarray | float, n: np.ndarray | float, grid: np.ndarray) -> np.ndarray:
    """log of the mixture likelihood  mean_j p_j^k (1-p_j)^(n-k)  under a uniform prior on ``grid``."""
    k_arr = np.asarray(k, dtype=float)[..., None]
    n_arr = np.asarray(n, dtype=float)[..., None]
    return _logmeanexp(_loglik(grid, k_arr, n_arr))


@functools.lru_cache(maxsize=64)
def _log_uniform_beta_prior(low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of the Beta components of a near log-uniform prior on [low, high]."""
    means = np.geomspace(low, high, max(2, math.ceil(math.log(high / low) / math.log(_BETA_SPACING)) + 1))
    a = np.full_like(means, _BETA_SHAPE)
    return a, a * (1.0 - means) / means


def _log_beta_mixture(k: float, n: float, prior: tuple[np.ndarray, np.ndarray]) -> float:
    """log of the marginal likelihood  mean_j B(k + a_j, n - k + b_j) / B(a_j, b_j)  (Beta mixture)."""
    a, b = prior
    return float(_logmeanexp(betaln(k + a, n - k + b) - betaln(a, b)))


@functools.lru_cache(maxsize=64)
def _nuisance_grid(top: float) -> np.ndarray:
    """Candidate stable rates in [0, top]: 0, a geometric grid from 1e-9, and top."""
    return np.unique(np.concatenate(([0.0, top], np.geomspace(1e-9, top, _NUISANCE_POINTS))))


def _log_mixture_jeffreys(k: np.ndarray | float, n: np.ndarray | float) -> np.ndarray:
    """log of the Beta(1/2, 1/2) mixture likelihood B(k + 1/2, n - k + 1/2) / B(1/2, 1/2) (Robbins 1970)."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    return betaln(k + 0.5, n - k + 0.5) - betaln(0.5, 0.5)


def _check_counts(name: str, events: float, trials: float) -> None:
    if not (math.isfinite(events) and math.isfinite(trials)):
        raise ValueError(f"{name}: counts must be finite, got {events}/{trials}")
    if events < 0 or trials < 0:
        raise ValueError(f"{name}: counts must be >= 0, got {events}/{trials}")
    if events > trials:
        raise ValueError(f"{name}: {events} events out of {trials} trials (more events than trials)")


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _rate(events: float, trials: float) -> float | None:
    return events / trials if trials > 0 else None


# --- Which arm do the events land on: canary rate > ratio x stable rate ---------------------------


@dataclass(frozen=True)
class ShareTest:
    """Outcome of :func:`share_test` (all fields JSON-serialisable)."""

    canary_events: float
    stable_events: float
    canary_share: float  # the canary's share of the traffic (the step's weight)
    ratio_limit: float
    null_share: float  # largest share of the events the canary may take under H0
    event_share: float | None  # observed share of the events on the canary
    ratio_estimate: float | None  # canary rate / stable rate implied by event_share (inf: all on canary)
    log_e_value: float
    threshold: float
    alpha: float
    rejected: bool
    method: str = "events' arm given the traffic shares: truncated-uniform Beta mixture e-process"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def share_null(canary_share: float, ratio_limit: float) -> float:
    """Share of the events on the canary when its rate is exactly ``ratio_limit`` x stable's."""
    w = canary_share
    return w * ratio_limit / (w * ratio_limit + 1.0 - w)


def share_log_e(
    canary_events: np.ndarray | float, stable_events: np.ndarray | float, null_share: float
) -> np.ndarray:
    """log of the mixture e-process  int_{t0}^1 L(t) dt / ((1 - t0) L(t0)),  t0 = ``null_share``.

    ``L(t) = t^k (1 - t)^(K - k)``: the likelihood of ``k`` of ``K`` events landing on the canary.
    Every ratio ``L(t)/L(t0)`` with ``t > t0`` is a test martingale when each event lands on the canary
    with probability ``t0``, and a supermartingale when that probability is lower (one-sided,
    monotone likelihood ratio); the mixture under the uniform prior on ``(t0, 1)`` is one too. The
    integral is ``B(k + 1, K - k + 1) (1 - I_t0(k + 1, K - k + 1))`` (regularized incomplete Beta).
    Element-wise over arrays of counts.
    """
    k = np.asarray(canary_events, dtype=float)
    rest = np.asarray(stable_events, dtype=float)
    t0 = null_share
    upper = betaincc(k + 1.0, rest + 1.0, t0)  # 1 - I_t0: 0 only when L(t0) dwarfs every t > t0
    with np.errstate(divide="ignore"):
        log_mix = betaln(k + 1.0, rest + 1.0) + np.log(upper) - math.log1p(-t0)
    return log_mix - _loglik(t0, k, k + rest)


def share_test(
    canary_events: float,
    stable_events: float,
    *,
    canary_share: float,
    ratio_limit: float,
    alpha: float,
) -> ShareTest:
    """Anytime-valid test of H0: canary event rate <= ``ratio_limit`` x stable's, from where events land.

    Requests go to the canary with probability ``canary_share`` (the router's weight), independently of
    anything else. Whatever the rates do over time (an outage, a burst of bad inputs, a diurnal swing),
    as long as they hit both arms alike, each event lands on the canary with probability
    ``w r / (w r + 1 - w)`` where ``r`` is the ratio of the arms' rates at that instant: at most
    :func:`share_null` under H0. The test needs no estimate of either rate (Lindon, Sanden, Shirikian,
    KDD 2022, count data per arm against the traffic split; here the binomial case with a Beta mixture).
    Counts must be the step's own (one weight): events pooled across weights have no single share.
    ``ratio_limit`` 1 tests "canary worse at all" and is valid (it only needs more events to decide).
    """
    _check_alpha(alpha)
    if not 0.0 < canary_share < 1.0:
        raise ValueError(f"canary_share must be in (0, 1) (a concurrent control), got {canary_share}")
    if not (math.isfinite(ratio_limit) and ratio_limit >= 1.0):
        raise ValueError(f"ratio_limit must be >= 1, got {ratio_limit}")
    for label, value in (("canary_events", canary_events), ("stable_events", stable_events)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{label} must be a finite number >= 0, got {value}")
    k, rest = float(canary_events), float(stable_events)
    t0 = share_null(canary_share, ratio_limit)
    log_e = float(share_log_e(k, rest, t0))
    total = k + rest
    share = k / total if total > 0 else None
    if share is None:
        ratio = None
    elif share >= 1.0:
        ratio = math.inf
    else:
        ratio = (share / (1.0 - share)) * ((1.0 - canary_share) / canary_share)
    threshold = math.log(1.0 / alpha)
    return ShareTest(
        canary_events=k,
        stable_events=rest,
        canary_share=canary_share,
        ratio_limit=ratio_limit,
        null_share=t0,
        event_share=share,
        ratio_estimate=ratio,
        log_e_value=log_e,
        threshold=threshold,
        alpha=alpha,
        rejected=bool(log_e >= threshold),
    )


# --- Binomial rate: canary worse than stable by more than a margin -------------------------------


@dataclass(frozen=True)
class RateTest:
    """Outcome of :func:`rate_excess_test` (all fields JSON-serialisable)."""

    canary_events: float
    canary_trials: float
    stable_events: float
    stable_trials: float
    canary_rate: float | None
    stable_rate: float | None
    difference: float | None  # canary_rate - stable_rate
    margin: float
    log_e_value: float  # log of the e-process (a lower bound of it); evidence against H0
    threshold: float  # reject when log_e_value >= threshold
    alpha: float
    rejected: bool
    least_favourable_stable_rate: float | None  # the stable rate the infimum settled on
    method: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def rate_excess_test(
    canary_events: float,
    canary_trials: float,
    stable_events: float,
    stable_trials: float,
    *,
    margin: float,
    alpha: float,
    independent: bool = True,
) -> RateTest:
    """Anytime-valid test of H0: p_canary <= p_stable + margin, on cumulative binomial counts.

    Rejecting means: the canary's event rate (errors, rejected inputs) exceeds the stable's by more than
    ``margin``, with probability of a false rejection <= ``alpha`` under continuous monitoring.

    Independent arms (canary traffic split, the default), universal-inference e-process (Wasserman et al.
    2020) with the stable rate ``s`` as nuisance parameter::

        E_t = inf_s  M_c(s) * M_s(s)
        M_c(s) = N_c / sup_{q <= s + margin} L_c(q)               canary: mixture / best null fit
        M_s(s) = (1 - w) + w * mean_j L_s(r_j s) / L_s(s)         stable: is s too high?  (r_j < 1)

    where ``L`` are binomial likelihoods and ``N_c`` the mixture likelihood (Robbins 1970) over a near
    log-uniform prior of the canary's rate. If H0 holds with true stable rate s*, then
    E_t <= M_c(s*) M_s(s*) <= (N_c / L_c(p_c*)) M_s(s*), a product of two independent non-negative
    martingales with mean 1: by Ville's inequality P(exists t: E_t >= 1/alpha) <= alpha. The
    ``(1 - w)`` term keeps the price of not knowing s small (M_s >= 1 - w), while the one-sided mixture
    grows when the stable's data say its rate is below s, stopping the infimum from escaping upwards.

    The infimum is evaluated on a grid of s with a rigorous lower bound on every cell
    (:func:`_pair_e_value`), so grid resolution never makes the test anti-conservative.

    Dependent arms (``independent=False``, the shadow phase where both models answer the same requests
    and their errors may be correlated): union bound instead of a product. An anytime-valid upper
    confidence bound U for the stable rate at alpha/2, then the canary's e-process against
    ``q <= U + margin`` at alpha/2. Valid under any dependence between the arms, less powerful.
    """
    _check_alpha(alpha)
    if not 0.0 <= margin < 1.0:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    _check_counts("canary", canary_events, canary_trials)
    _check_counts("stable", stable_events, stable_trials)
    x_c, n_c = float(canary_events), float(canary_trials)
    x_s, n_s = float(stable_events), float(stable_trials)
    p_c, p_s = _rate(x_c, n_c), _rate(x_s, n_s)
    log_n_c = _log_beta_mixture(x_c, n_c, _log_uniform_beta_prior(max(margin, _CANARY_RATE_FLOOR), 0.99))
    log_n_s = _log_beta_mixture(x_s, n_s, _log_uniform_beta_prior(*_STABLE_RATE_RANGE))
    mle_c = p_c if p_c is not None else 0.0
    mle_s = p_s if p_s is not None else 0.0
    if independent:

        def null_interval(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return np.zeros_like(s), np.minimum(s + margin, 1.0)

        grid = _nuisance_grid(1.0 - margin)
        stable_factor = _stable_factor_downward(x_s, n_s)
        log_e, s_star = _pair_e_value(
            x_c, n_c, log_n_c, stable_factor, grid, null_interval(grid), null_interval
        )
        threshold = math.log(1.0 / alpha)
        method = "universal-inference mixture e-process, independent arms (product over roles)"
    else:
        upper = _upper_confidence_bound(x_s, n_s, log_n_s, mle_s, math.log(2.0 / alpha))
        s_star = upper
        null_edge = min(upper + margin, 1.0)
        log_e = log_n_c - float(_loglik(min(null_edge, mle_c), x_c, n_c))
        threshold = math.log(2.0 / alpha)
        method = "union bound: stable upper confidence sequence + canary mixture e-process, dependent arms"
    return RateTest(
        canary_events=x_c,
        canary_trials=n_c,
        stable_events=x_s,
        stable_trials=n_s,
        canary_rate=p_c,
        stable_rate=p_s,
        difference=(p_c - p_s) if p_c is not None and p_s is not None else None,
        margin=margin,
        log_e_value=log_e,
        threshold=threshold,
        alpha=alpha,
        rejected=bool(log_e >= threshold),
        least_favourable_stable_rate=s_star,
        method=method,
    )


StableFactor = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _stable_factor_downward(x_s: float, n_s: float) -> StableFactor:
    """log M_s(s) = log((1 - w) + w mean_j L_s(r_j s) / L_s(s)), alternatives r_j s below s.

    For each s a test martingale of "the stable's rate is s" that grows when the data say the rate is
    lower (the direction in which an infimum over s would otherwise escape). Each ratio
    r^x ((1 - r s) / (1 - s))^(n - x) increases with s, so a cell's lower bound is its left end.
    """

    def bound(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        s = lo[:, None]
        terms = np.broadcast_to(xlogy(x_s, _DOWNWARD_RATIOS), (len(lo), len(_DOWNWARD_RATIOS)))
        if n_s > x_s:  # (n - x) log((1 - r s) / (1 - s)); +inf at s = 1, which such data rule out
            with np.errstate(divide="ignore"):
                terms = terms + (n_s - x_s) * (np.log1p(-_DOWNWARD_RATIOS * s) - np.log1p(-s))
        return np.logaddexp(math.log(1.0 - _NUISANCE_SPREAD), math.log(_NUISANCE_SPREAD) + _logmeanexp(terms))

    return bound


def _stable_factor_mixture(x_s: float, n_s: float, log_n_s: float) -> StableFactor:
    """log M_s(s) = log((1 - w) + w N_s / L_s(s)) with a two-sided mixture N_s; least at the stable's MLE."""
    mle_s = x_s / n_s if n_s > 0 else 0.0

    def bound(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            ratio = log_n_s - _loglik(np.clip(mle_s, lo, hi), x_s, n_s)  # +inf where L_s = 0
        return np.logaddexp(math.log(1.0 - _NUISANCE_SPREAD), math.log(_NUISANCE_SPREAD) + ratio)

    return bound


def _pair_e_value(
    x_c: float,
    n_c: float,
    log_n_c: float,
    stable_factor: StableFactor,
    grid: np.ndarray,
    grid_null: tuple[np.ndarray, np.ndarray],
    null_interval: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
) -> tuple[float, float]:
    """Rigorous lower bound of inf_s log(M_c(s) M_s(s)) over the stable's parameter s, and its argmin.

    ``null_interval(s)`` gives, for stable parameters s, the interval [lo(s), hi(s)] of canary parameters
    allowed by H0; both ends must be non-decreasing in s (``grid_null`` holds them on ``grid``, which must
    cover the parameter range). With ``N_c`` the canary's mixture likelihood::

        M_c(s) = N_c / sup_{lo(s) <= q <= hi(s)} L_c(q)        canary: mixture / best null fit
        M_s(s) = a test martingale of "the stable's parameter is s"   (``stable_factor``)

    On a grid cell [s1, s2] every null interval lies inside [lo(s1), hi(s2)], which bounds M_c from below
    over the cell; ``stable_factor`` bounds M_s from below over the cell. The cells around the minimum are
    then split finely; cells elsewhere keep their (valid, looser) bound. The result never exceeds the true
    infimum, so the grid can only make the test conservative.
    """
    mle_c = x_c / n_c if n_c > 0 else 0.0
    low, high = grid_null

    def cell_bounds(g: np.ndarray, g_low: np.ndarray, g_high: np.ndarray) -> np.ndarray:
        log_m_c = log_n_c - _loglik(np.clip(mle_c, g_low[:-1], g_high[1:]), x_c, n_c)
        return log_m_c + stable_factor(g[:-1], g[1:])

    with np.errstate(divide="ignore"):
        bounds = cell_bounds(grid, low, high)
        for _ in range(_REFINE_ROUNDS):
            # Replace the cells around the minimum by finer ones (the same span, so the rest stays valid).
            k = int(np.argmin(bounds))
            lo_i, hi_i = max(k - 1, 0), min(k + 2, len(grid) - 1)
            fine = np.linspace(grid[lo_i], grid[hi_i], _REFINE_POINTS)
            fine_low, fine_high = null_interval(fine)
            fine_bounds = cell_bounds(fine, fine_low, fine_high)
            bounds = np.concatenate((bounds[:lo_i], fine_bounds, bounds[hi_i:]))
            grid = np.concatenate((grid[:lo_i], fine, grid[hi_i + 1 :]))
            low = np.concatenate((low[:lo_i], fine_low, low[hi_i + 1 :]))
            high = np.concatenate((high[:lo_i], fine_high, high[hi_i + 1 :]))
    k = int(np.argmin(bounds))
    return float(bounds[k]), float(grid[k])


def _bisect_log_ratio(
    k: np.ndarray,
    n: np.ndarray,
    log_mix: np.ndarray,
    log_threshold: float,
    start: np.ndarray,
    end: np.ndarray,
) -> np.ndarray:
    """Point p between ``start`` (inside) and ``end`` (0 or 1) where log_mix - loglik(p) crosses a threshold.

    The log-likelihood is concave with its maximum at ``start`` (the MLE), so the ratio is monotone on
    the segment. Bisection runs on the logit scale (resolution ~1e-4 relative, also for tiny rates) and
    returns the outer end of the final bracket, so the confidence set is only ever widened.
    """
    start = np.clip(start.astype(float), _LOGIT_EDGE, 1.0 - _LOGIT_EDGE)
    end = end.astype(float)
    inside = np.log(start / (1.0 - start))
    outside = np.where(end > start, _LOGIT_SPAN, -_LOGIT_SPAN)
    with np.errstate(divide="ignore", invalid="ignore"):
        end_inside = log_mix - _loglik(end, k, n) < log_threshold
        for _ in range(_BISECTION_STEPS):
            mid = 0.5 * (inside + outside)
            ok = log_mix - _loglik(1.0 / (1.0 + np.exp(-mid)), k, n) < log_threshold
            inside = np.where(ok, mid, inside)
            outside = np.where(ok, outside, mid)
    return np.where(end_inside, end, 1.0 / (1.0 + np.exp(-outside)))


def _upper_confidence_bound(x: float, n: float, log_n: float, mle: float, log_threshold: float) -> float:
    """Anytime-valid upper bound of a rate: sup{p >= mle: N / L(p) < 1/alpha} (Robbins 1970)."""
    bound = _bisect_log_ratio(
        np.array([x]), np.array([n]), np.array([log_n]), log_threshold, np.array([mle]), np.array([1.0])
    )
    return float(bound[0])


# --- One-sample tests of a proportion against a known value ---------------------------------------


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _alternatives(p0: float, greater: bool) -> np.ndarray:
    """One-sided alternatives to p0, log-spaced offsets on the logit scale."""
    sign = 1.0 if greater else -1.0
    return 1.0 / (1.0 + np.exp(-(_logit(p0) + sign * _LOGIT_OFFSETS)))


def proportion_log_e(
    events: np.ndarray | float, trials: np.ndarray | float, p0: float, *, greater: bool
) -> np.ndarray:
    """log e-process against a known proportion: H0 p <= p0 (``greater``) or H0 p >= p0.

    Mixture of likelihood ratios L(p_j)/L(p0) over one-sided alternatives p_j (Robbins 1970; the mixture
    SPRT). Each ratio with p_j > p0 is a supermartingale under any p <= p0 (monotone likelihood ratio),
    so the mixture is one too. The value is monotone in ``events`` (non-decreasing when ``greater``),
    which makes tests over nested thresholds (quantiles) valid simultaneously.
    """
    if not 0.0 < p0 < 1.0:
        raise ValueError(f"p0 must be in (0, 1), got {p0}")
    k = np.asarray(events, dtype=float)
    n = np.asarray(trials, dtype=float)
    alt = _alternatives(p0, greater)
    return _log_mixture(k, n, alt) - _loglik(p0, k, n)


# --- Histograms ---------------------------------------------------------------------------------


def cumulative_counts(hist: Histogram, name: str = "histogram") -> tuple[np.ndarray, np.ndarray]:
    """Sorted upper bounds (ending with +Inf) and cumulative counts of a Prometheus-style histogram.

    Like Prometheus' ``ensureMonotonic``, small decreases between buckets (which ``increase()`` over a
    window can produce) are flattened. An empty histogram gives ``([inf], [0])``.
    """
    if not hist.buckets:
        return np.array([INF]), np.array([0.0])
    bounds = np.array(sorted(hist.buckets), dtype=float)
    counts = np.array([hist.buckets[b] for b in bounds], dtype=float)
    if np.any(np.isnan(bounds)):
        raise ValueError(f"{name}: a bucket bound is NaN")
    if bounds[-1] != INF:
        raise ValueError(f"{name}: the +Inf bucket is missing (bounds {bounds.tolist()})")
    if not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise ValueError(f"{name}: bucket counts must be finite and >= 0, got {counts.tolist()}")
    return bounds, np.maximum.accumulate(counts)


def align_histograms(
    a: Histogram, b: Histogram, names: tuple[str, str] = ("stable", "canary")
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Common bounds and the two cumulative count arrays on them.

    Cumulative counts at a shared ``le`` are exact, so histograms with different bucket layouts are
    compared exactly on the coarser layout made of the bounds they share (+Inf always is).
    """
    bounds_a, cum_a = cumulative_counts(a, names[0])
    bounds_b, cum_b = cumulative_counts(b, names[1])
    if np.array_equal(bounds_a, bounds_b):
        return bounds_a, cum_a, cum_b
    common = np.intersect1d(bounds_a, bounds_b)
    return common, cum_a[np.searchsorted(bounds_a, common)], cum_b[np.searchsorted(bounds_b, common)]


def bin_counts(cumulative: np.ndarray) -> np.ndarray:
    """Per-bucket counts from cumulative counts."""
    return np.diff(np.asarray(cumulative, dtype=float), prepend=0.0)


def histogram_quantile(q: float, bounds: np.ndarray, cumulative: np.ndarray) -> float:
    """Quantile from cumulative buckets, exactly as Prometheus' ``histogram_quantile`` (bucketQuantile).

    Linear interpolation inside the bucket; 0 is the lower edge of the first bucket when its bound is
    positive; if the quantile falls in the +Inf bucket the highest finite bound is returned; NaN when
    there are no observations or fewer than two buckets.
    """
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    bounds = np.asarray(bounds, dtype=float)
    cumulative = np.maximum.accumulate(np.asarray(cumulative, dtype=float))
    if len(bounds) < 2 or bounds[-1] != INF or cumulative[-1] == 0:
        return math.nan
    rank = q * cumulative[-1]
    b = int(np.searchsorted(cumulative[:-1], rank, side="left"))
    if b == len(bounds) - 1:
        return float(bounds[-2])
    if b == 0 and bounds[0] <= 0:
        return float(bounds[0])
    start, count = 0.0, cumulative[b]
    if b > 0:
        start = bounds[b - 1]
        count -= cumulative[b - 1]
        rank -= cumulative[b - 1]
    return float(start + (bounds[b] - start) * (rank / count))


# --- Latency ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MannWhitney:
    """Rank comparison of two binned samples (ties = same bucket)."""

    prob_canary_greater: float  # P(X_canary > X_stable) + P(tie) / 2, 0.5 = no shift
    u_statistic: float
    z: float
    p_value: float  # two-sided, normal approximation with tie correction: a fixed-sample figure


def mann_whitney_binned(stable_bins: np.ndarray, canary_bins: np.ndarray) -> MannWhitney | None:
    """Mann-Whitney U of canary vs stable on per-bucket counts, every bucket being one tied value.

    U = sum_i c_i (S_<i + s_i / 2); variance with the tie correction
    n_c n_s / 12 ((N + 1) - sum (t^3 - t) / (N (N - 1))); continuity-corrected normal p-value, the same
    as ``scipy.stats.mannwhitneyu(method="asymptotic")`` on the bucket indices. Not anytime-valid: it is
    reported as an effect size, the decision uses :func:`quantile_ratio_test`. None without data.
    """
    s = np.asarray(stable_bins, dtype=float)
    c = np.asarray(canary_bins, dtype=float)
    n_s, n_c = s.sum(), c.sum()
    if n_s == 0 or n_c == 0:
        return None
    below = np.cumsum(s) - s
    u = float(np.sum(c * (below + 0.5 * s)))
    total = n_s + n_c
    ties = c + s
    tie_term = float(np.sum(ties**3 - ties)) / (total * (total - 1)) if total > 1 else 0.0
    var = n_c * n_s / 12.0 * ((total + 1) - tie_term)
    mean = n_c * n_s / 2.0
    if var <= 0:
        z, p = 0.0, 1.0
    else:
        z = (abs(u - mean) - 0.5) / math.sqrt(var)
        z = max(z, 0.0)
        p = float(min(1.0, 2.0 * ndtr(-z)))
        z = math.copysign(z, u - mean)
    return MannWhitney(prob_canary_greater=u / (n_c * n_s), u_statistic=u, z=z, p_value=p)


@dataclass(frozen=True)
class QuantileRatioTest:
    """Outcome of :func:`quantile_ratio_test`."""

    quantile: float
    ratio_limit: float
    stable_count: float
    canary_count: float
    stable_estimate: float | None  # histogram_quantile, seconds
    canary_estimate: float | None
    ratio_estimate: float | None
    stable_upper_bound: float | None  # anytime-valid: Q_stable <= this (None: not established yet)
    canary_lower_bound: float | None  # anytime-valid: Q_canary > this
    alpha: float
    rejected: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def quantile_ratio_test(
    bounds: np.ndarray,
    stable_cumulative: np.ndarray,
    canary_cumulative: np.ndarray,
    *,
    quantile: float,
    ratio_limit: float,
    alpha: float,
) -> QuantileRatioTest:
    """Anytime-valid test of H0: Q_canary(q) <= ratio_limit * Q_stable(q) from shared histogram buckets.

    The practical limit is part of the hypothesis, so a tiny but significant slowdown never rejects.
    For a bucket bound v, ``Q_stable(q) <= v`` holds iff the stable's share of observations above v is
    <= 1 - q, and ``Q_canary(q) > u`` iff the canary's share above u is > 1 - q: both are one-sample
    proportion tests (:func:`proportion_log_e`) at alpha/2 each. Because the exceedance counts are
    nested in the bound and the e-values monotone in them, each side is valid simultaneously over all
    bounds (the argument behind quantile confidence sequences, Howard et al. 2021 Sec. 4). The test
    rejects when the smallest established stable upper bound v and the largest established canary lower
    bound u satisfy u >= ratio_limit * v: then Q_c > u >= limit * v >= limit * Q_s unless one of the two
    one-sided claims is false, which has probability <= alpha. (Bounds within 0.1 % of ratio_limit * v
    count, for exporters that round their bucket bounds.) Detection needs a bucket bound above the stable
    quantile and one above ratio_limit times it: buckets spaced by at most the limit keep it sharp.
    """
    _check_alpha(alpha)
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    if ratio_limit <= 0:
        raise ValueError(f"ratio_limit must be > 0, got {ratio_limit}")
    bounds = np.asarray(bounds, dtype=float)
    cum_s = np.asarray(stable_cumulative, dtype=float)
    cum_c = np.asarray(canary_cumulative, dtype=float)
    n_s, n_c = float(cum_s[-1]), float(cum_c[-1])
    tail = 1.0 - quantile
    log_threshold = math.log(2.0 / alpha)
    finite = bounds[:-1]
    stable_upper = canary_lower = None
    if len(finite) and n_s > 0:
        exceed_s = n_s - cum_s[:-1]
        ok_s = proportion_log_e(exceed_s, n_s, tail, greater=False) >= log_threshold
        if ok_s.any():
            stable_upper = float(finite[np.argmax(ok_s)])  # smallest bound established above Q_stable
    if len(finite) and n_c > 0:
        exceed_c = n_c - cum_c[:-1]
        ok_c = proportion_log_e(exceed_c, n_c, tail, greater=True) >= log_threshold
        if ok_c.any():
            canary_lower = float(finite[len(ok_c) - 1 - np.argmax(ok_c[::-1])])  # largest bound below Q_c
    rejected = (
        stable_upper is not None
        and canary_lower is not None
        and canary_lower >= ratio_limit * stable_upper * (1.0 - _BOUND_ROUNDING)
    )
    est_s = histogram_quantile(quantile, bounds, cum_s) if n_s > 0 else math.nan
    est_c = histogram_quantile(quantile, bounds, cum_c) if n_c > 0 else math.nan
    ratio = est_c / est_s if math.isfinite(est_s) and math.isfinite(est_c) and est_s > 0 else math.nan
    return QuantileRatioTest(
        quantile=quantile,
        ratio_limit=ratio_limit,
        stable_count=n_s,
        canary_count=n_c,
        stable_estimate=_finite_or_none(est_s),
        canary_estimate=_finite_or_none(est_c),
        ratio_estimate=_finite_or_none(ratio),
        stable_upper_bound=stable_upper,
        canary_lower_bound=canary_lower,
        alpha=alpha,
        rejected=bool(rejected),
    )


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


# --- Prediction distributions ---------------------------------------------------------------------


def psi_two_sample(stable_bins: np.ndarray, canary_bins: np.ndarray, pseudo_count: float = 0.5) -> float:
    """Population stability index  sum (c_i - s_i) ln(c_i / s_i)  of two binned samples.

    Shares are smoothed with ``pseudo_count`` per bucket (Jeffreys) so an empty bucket gives a large but
    finite value. PSI is the symmetrised Kullback-Leibler divergence (Yurdakul 2018).
    """
    s = np.asarray(stable_bins, dtype=float) + pseudo_count
    c = np.asarray(canary_bins, dtype=float) + pseudo_count
    s, c = s / s.sum(), c / c.sum()
    return float(np.sum((c - s) * np.log(c / s)))


def ks_two_sample(stable_bins: np.ndarray, canary_bins: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and asymptotic p-value on binned samples.

    D = max |F_c - F_s| over bucket bounds; p-value from Kolmogorov's limiting distribution of
    sqrt(n_c n_s / (n_c + n_s)) D (Smirnov 1948; ``scipy.stats.kstwobign``). With binned (tied) data the
    p-value is conservative. Fixed-sample figure, reported as evidence.
    """
    s = np.asarray(stable_bins, dtype=float)
    c = np.asarray(canary_bins, dtype=float)
    n_s, n_c = s.sum(), c.sum()
    if n_s == 0 or n_c == 0:
        return math.nan, math.nan
    d = float(np.max(np.abs(np.cumsum(c) / n_c - np.cumsum(s) / n_s)))
    en = n_s * n_c / (n_s + n_c)
    return d, float(np.clip(kolmogorov(math.sqrt(en) * d), 0.0, 1.0))


def _psi2(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """PSI between Bernoulli(p) and Bernoulli(q): (p - q) (logit p - logit q)."""
    return (p - q) * (np.log(p / (1.0 - p)) - np.log(q / (1.0 - q)))


def _psi2_interval_low_half(q: np.ndarray, limit: float) -> tuple[np.ndarray, np.ndarray]:
    """Outer ends of {p : psi2(p, q) <= limit} for q in (0, 1/2], by bisection on the logit scale."""
    lq = np.log(q / (1.0 - q))

    def divergence(t: np.ndarray) -> np.ndarray:
        return (1.0 / (1.0 + np.exp(-t)) - q) * (t - lq)

    ends = []
    for side in (-1.0, 1.0):
        inside, outside = lq.copy(), lq + side * _PSI2_LOGIT_SPAN
        whole_side = divergence(outside) <= limit  # the interval reaches 0 (or 1) on this side
        for _ in range(_PSI2_BISECTION_STEPS):
            mid = 0.5 * (inside + outside)
            ok = divergence(mid) <= limit
            inside, outside = np.where(ok, mid, inside), np.where(ok, outside, mid)
        edge = 1.0 / (1.0 + np.exp(-outside))
        ends.append(np.where(whole_side, 0.0 if side < 0 else 1.0, edge))
    return ends[0], ends[1]


def psi2_null_interval(q: np.ndarray, limit: float) -> tuple[np.ndarray, np.ndarray]:
    """Canary shares p allowed by psi2(p, q) <= limit, for each stable share q: (lower, upper) arrays.

    The ends are non-decreasing in q (d psi2/dq has the sign of q - p) and are returned slightly widened
    (outer end of the bisection bracket), which keeps tests built on them conservative.
    """
    q = np.asarray(q, dtype=float)
    low = np.empty_like(q)
    high = np.empty_like(q)
    edge = q <= 0.0
    top = q >= 1.0
    half = ~edge & ~top & (q <= 0.5)
    mirror = ~edge & ~top & (q > 0.5)
    low[edge], high[edge] = 0.0, 0.0
    low[top], high[top] = 1.0, 1.0
    if half.any():
        low[half], high[half] = _psi2_interval_low_half(q[half], limit)
    if mirror.any():  # psi2(p, q) = psi2(1 - p, 1 - q)
        lo_m, hi_m = _psi2_interval_low_half(1.0 - q[mirror], limit)
        low[mirror], high[mirror] = 1.0 - hi_m, 1.0 - lo_m
    return low, high


@functools.lru_cache(maxsize=16)
def _share_grid(limit: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grid of stable shares on [0, 1] (logit-spaced) with the null intervals at each point, cached."""
    grid = np.concatenate(([0.0], 1.0 / (1.0 + np.exp(-np.linspace(-30, 30, _NUISANCE_POINTS))), [1.0]))
    low, high = psi2_null_interval(grid, limit)
    return grid, low, high


def _psi2_e_value(x_c: float, n_c: float, x_s: float, n_s: float, limit: float) -> float:
    """Anytime-valid log e-value against H0: psi2(p_canary, p_stable) <= limit (two binomial shares)."""
    grid, low, high = _share_grid(limit)

    def null_interval(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return psi2_null_interval(s, limit)

    log_n_c = float(_log_mixture_jeffreys(x_c, n_c))
    stable_factor = _stable_factor_mixture(x_s, n_s, float(_log_mixture_jeffreys(x_s, n_s)))
    log_e, _ = _pair_e_value(x_c, n_c, log_n_c, stable_factor, grid, (low, high), null_interval)
    return log_e


@dataclass(frozen=True)
class DistributionTest:
    """Outcome of :func:`distribution_shift_test`."""

    bins: int
    stable_count: float
    canary_count: float
    psi: float | None
    limit: float
    split_index: int | None  # bucket whose upper bound splits the strongest two-group comparison
    split_psi: float | None  # PSI of the two groups (<= PSI of all buckets)
    log_e_value: float  # best split's log e-value
    threshold: float  # log((buckets - 1) / alpha): Bonferroni over the splits
    ks_statistic: float | None
    ks_p_value: float | None
    alpha: float
    rejected: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def distribution_shift_test(
    stable_bins: np.ndarray, canary_bins: np.ndarray, *, limit: float, alpha: float
) -> DistributionTest:
    """Anytime-valid test of H0: PSI(canary, stable) <= limit on per-bucket counts.

    PSI is an f-divergence (symmetrised KL), so merging buckets can only lower it (data-processing
    inequality): for every bucket bound b, PSI >= psi2 of the two groups {<= b} and {> b}. H0 therefore
    implies psi2_b <= limit for every b, and each of the (B - 1) two-group nulls is a comparison of two
    binomial shares, tested with the same nuisance-infimum e-process as the error rate
    (:func:`_pair_e_value`, Jeffreys mixtures) at alpha / (B - 1). A split whose point estimate is within
    the limit cannot reject (its e-value is <= 1 at the estimate) and is skipped. The smoothed PSI over all
    buckets and a binned KS statistic are reported as evidence.
    """
    _check_alpha(alpha)
    if limit <= 0:
        raise ValueError(f"limit must be > 0, got {limit}")
    s = np.asarray(stable_bins, dtype=float)
    c = np.asarray(canary_bins, dtype=float)
    n_s, n_c = float(s.sum()), float(c.sum())
    splits = len(s) - 1
    threshold = math.log(max(splits, 1) / alpha)
    if n_s == 0 or n_c == 0 or splits < 1:
        return DistributionTest(
            len(s), n_s, n_c, None, limit, None, None, -math.inf, threshold, None, None, alpha, False
        )
    x_c, x_s = np.cumsum(c)[:-1], np.cumsum(s)[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        share_c = np.clip(x_c / n_c, 1e-12, 1 - 1e-12)
        point = np.nan_to_num(_psi2(share_c, np.clip(x_s / n_s, 1e-12, 1 - 1e-12)))
    best_i, best_log_e = None, -math.inf
    # Any subset of the splits may be evaluated (the threshold already pays for all of them): the ones
    # with the largest two-group PSI carry the evidence.
    for i in [i for i in np.argsort(point)[::-1][:_SPLITS_EVALUATED] if point[i] > limit]:
        log_e = _psi2_e_value(float(x_c[i]), n_c, float(x_s[i]), n_s, limit)
        if log_e > best_log_e:
            best_i, best_log_e = int(i), log_e
    if best_i is None and splits:
        best_i = int(np.argmax(point))
    d, p = ks_two_sample(s, c)
    return DistributionTest(
        bins=len(s),
        stable_count=n_s,
        canary_count=n_c,
        psi=psi_two_sample(s, c),
        limit=limit,
        split_index=best_i,
        split_psi=float(point[best_i]) if best_i is not None else None,
        log_e_value=best_log_e,
        threshold=threshold,
        ks_statistic=d,
        ks_p_value=p,
        alpha=alpha,
        rejected=bool(best_log_e >= threshold),
    )


# --- Shadow: paired differential test -------------------------------------------------------------


@dataclass(frozen=True)
class DisagreementTest:
    """Outcome of :func:`disagreement_test`."""

    pairs: float
    tolerance: float  # requested |candidate - stable| tolerance
    tolerance_bound: float | None  # bucket bound actually used (>= tolerance; None: no bucket fits)
    beyond: float  # pairs with |diff| > tolerance_bound
    share_beyond: float | None
    limit: float
    log_e_value: float
    threshold: float
    alpha: float
    rejected: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def disagreement_test(
    bounds: np.ndarray, cumulative: np.ndarray, *, tolerance: float, limit: float, alpha: float
) -> DisagreementTest:
    """Anytime-valid differential test on paired |candidate - stable| predictions (shadow traffic).

    H0: the share of mirrored requests whose predictions differ by more than ``tolerance`` is <= ``limit``.
    The count above the smallest bucket bound >= tolerance is used (it can only be smaller than the
    count above the tolerance, so the test stays valid), with the mixture e-process of
    :func:`proportion_log_e`.
    """
    _check_alpha(alpha)
    if not 0.0 < limit < 1.0:
        raise ValueError(f"limit must be in (0, 1), got {limit}")
    bounds = np.asarray(bounds, dtype=float)
    cum = np.asarray(cumulative, dtype=float)
    pairs = float(cum[-1])
    idx = int(np.searchsorted(bounds, tolerance, side="left"))
    usable = idx < len(bounds) - 1  # the +Inf bucket cannot serve as a tolerance
    bound = float(bounds[idx]) if usable else None
    beyond = float(pairs - cum[idx]) if usable else 0.0
    log_e = float(proportion_log_e(beyond, pairs, limit, greater=True)) if usable and pairs > 0 else 0.0
    threshold = math.log(1.0 / alpha)
    return DisagreementTest(
        pairs=pairs,
        tolerance=tolerance,
        tolerance_bound=bound,
        beyond=beyond,
        share_beyond=beyond / pairs if pairs > 0 and usable else None,
        limit=limit,
        log_e_value=log_e,
        threshold=threshold,
        alpha=alpha,
        rejected=bool(usable and log_e >= threshold),
    )

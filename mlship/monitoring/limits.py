"""Monitoring limits that mlship.yaml does not (yet) expose, in one place with their reasons."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    # Served-data window the drift statistics are computed over.
    drift_window: str = "1h"
    # Shares are clamped to this before PSI's log ratio (an empty bin would otherwise be infinite).
    psi_epsilon: float = 1e-4
    # Chi-square is only trusted when every bin expects at least this many observations (Cochran).
    min_expected_per_bin: float = 5.0
    # Kolmogorov-Smirnov distance between served and training predictions that matters in practice:
    # at high traffic any difference is significant, so significance alone would page on noise.
    prediction_ks_threshold: float = 0.1
    # Share of prediction requests rejected as invalid input (4xx) over rejection_window.
    rejection_ratio: float = 0.05
    rejection_window: str = "15m"
    # Share of re-checked rows whose online features differ from the offline pipeline's.
    skew_mismatch_ratio: float = 0.01
    skew_window: str = "1h"
    # Online quality (outcomes joined to predictions): window, the least outcomes in it before the online
    # RMSE is judged, and the ratio to the offline (held-out) RMSE above which quality regressed. The
    # RMSE of n normal errors has a relative standard error of about 1/sqrt(2n): +-10% at 50 outcomes,
    # +-5% at 200. The offline RMSE itself comes from ~89 held-out rows (+-7.5%) and may be optimistic:
    # with 50 outcomes a model exactly as good as a 10%-optimistic estimate crossed 1.25 in ~8% of
    # windows; 200 keeps such false alarms rare (<1%), at the cost of judging only busy versions.
    quality_window: str = "1h"
    min_outcomes: int = 200
    online_rmse_ratio: float = 1.25
    # Non-finite predictions: any in this window pages.
    non_finite_window: str = "10m"
    # Window of the canary-versus-stable comparison.
    canary_window: str = "10m"
    # Hosts: free disk share, available memory share.
    disk_free_ratio: float = 0.10
    memory_available_ratio: float = 0.10


LIMITS = Limits()

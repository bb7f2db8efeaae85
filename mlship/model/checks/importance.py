"""All features are beneficial (ML Test Score, Data 2): permutation importance on held-out rows.

A feature's importance is how much the held-out RMSE grows when its column is shuffled. Each repeat
draws a bootstrap sample of the held-out rows and shuffles the column within it, so ``se`` (the standard
deviation over repeats) covers both the shuffle and which rows happened to be held out - with the shuffle
alone, a pure-noise column often looks significant on a small test set. Verdicts:

* ``beneficial`` - importance - 2 se > 0: shuffling it measurably hurts the model;
* ``harmful``    - importance + 2 se < -harm_tolerance x RMSE: the model is measurably better with the
  column shuffled;
* ``no measurable benefit`` otherwise: a candidate for removal (it costs, see ``feature_cost``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.metrics import root_mean_squared_error

BENEFICIAL = "beneficial"
HARMFUL = "harmful"
NO_BENEFIT = "no measurable benefit"
DEFAULT_REPEATS = 50
DEFAULT_HARM_TOLERANCE = 0.01  # 1 % of the held-out RMSE


@dataclass(frozen=True)
class FeatureBenefit:
    feature: str
    importance: float  # mean increase of held-out RMSE when shuffled
    se: float  # bootstrap standard error (standard deviation over the repeats)
    relative: float  # importance / held-out RMSE
    verdict: str


def feature_benefits(
    estimator: Any,
    x: np.ndarray,
    y: np.ndarray,
    names: list[str],
    *,
    n_repeats: int = DEFAULT_REPEATS,
    seed: int = 0,
    harm_tolerance: float = DEFAULT_HARM_TOLERANCE,
) -> list[FeatureBenefit]:
    """Permutation importance of every input column of ``x`` (held-out rows), with a verdict each."""
    if x.shape[1] != len(names):
        raise ValueError(f"{x.shape[1]} columns but {len(names)} feature names")
    if n_repeats < 2:
        raise ValueError("n_repeats must be at least 2 to estimate a standard error")
    rmse = float(root_mean_squared_error(y, estimator.predict(x)))
    rng = np.random.default_rng(seed)
    drops = np.empty((n_repeats, x.shape[1]))
    for r in range(n_repeats):
        rows = rng.integers(0, len(x), len(x))
        xb, yb = x[rows], y[rows]
        base = root_mean_squared_error(yb, estimator.predict(xb))
        for j in range(x.shape[1]):
            shuffled = xb.copy()
            shuffled[:, j] = rng.permutation(shuffled[:, j])
            drops[r, j] = root_mean_squared_error(yb, estimator.predict(shuffled)) - base
    out = []
    for name, mean, std in zip(names, drops.mean(axis=0), drops.std(axis=0, ddof=1), strict=True):
        se = float(std)
        if mean - 2 * se > 0:
            verdict = BENEFICIAL
        elif mean + 2 * se < -harm_tolerance * rmse:
            verdict = HARMFUL
        else:
            verdict = NO_BENEFIT
        out.append(
            FeatureBenefit(
                feature=name,
                importance=round(float(mean), 4),
                se=round(se, 4),
                relative=round(float(mean) / rmse, 5),
                verdict=verdict,
            )
        )
    return out


def as_records(benefits: list[FeatureBenefit]) -> list[dict[str, Any]]:
    return [asdict(b) for b in benefits]

"""The model is tested for considerations of inclusion (ML Test Score, Model 6 and 7).

Quality on every evaluation slice (sex, age band: ``training.slices``) against the whole held-out set:
a slice whose RMSE exceeds the overall RMSE by more than ``max_gap`` (relative) is served noticeably
worse than the population, and fails. Slices too small to judge are reported, never silently passed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlship.model import training

MIN_SLICE_ROWS = 10


@dataclass(frozen=True)
class SliceGap:
    slice: str
    n: int
    rmse: float | None
    gap: float | None  # rmse / overall rmse - 1
    verdict: str  # ok | too wide | too few rows


def slice_gaps(
    frame: pd.DataFrame, y_true: np.ndarray, y_pred: np.ndarray, *, max_gap: float
) -> tuple[float, list[SliceGap]]:
    """(overall RMSE, one SliceGap per slice)."""
    overall = training.evaluate(y_true, y_pred)["rmse"]
    out = []
    for name, mask in training.slices(frame).items():
        n = int(mask.sum())
        if n < MIN_SLICE_ROWS:
            out.append(SliceGap(name, n, None, None, "too few rows"))
            continue
        rmse = training.evaluate(y_true[mask], y_pred[mask])["rmse"]
        gap = round(rmse / overall - 1, 4)
        out.append(SliceGap(name, n, rmse, gap, "too wide" if gap > max_gap else "ok"))
    return overall, out


def as_records(gaps: list[SliceGap]) -> list[dict[str, Any]]:
    return [asdict(g) for g in gaps]

"""Model quality gate (ML Test Score, Infra 4: "the model is validated before it serves").

A candidate is blessed only if, on the same held-out rows as the model it would replace:
  * its RMSE is not worse than the current model's beyond ``gate.metric_tolerance`` (relative);
  * no evaluation slice (sex, age band) is worse beyond ``gate.slice_tolerance``;
  * its predictions agree with the current model's on the fixed reference set (differential test);
  * it predicts finite values, without raising, on edge inputs drawn from the schema's valid ranges;
  * no simpler model (linear regression, training mean) is better, on the held-out rows nor in
    repeated K-fold cross-validation of the recipe, with no tolerance (ML Test Score, Model 5;
    ``checks/baseline.py``) - checked for a first model too.
The verdict, with every figure, is stored with the model; `mlship canary start` refuses a model
that is not blessed unless forced.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from mlship.config import GateConfig
from mlship.model import data, features, training
from mlship.model.checks import baseline
from mlship.model.registry import ModelRecord

# A slice with fewer held-out rows than this is reported as too small to judge, never silently passed.
MIN_SLICE_ROWS = 5


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str
    figures: dict[str, Any]


def _predict(record: ModelRecord, frame: Any) -> tuple[np.ndarray, np.ndarray]:
    """Predictions for the rows the model's feature code can handle, and the mask of those rows."""
    estimator = record.load_estimator()
    version = record.metadata["feature_version"]
    try:
        return estimator.predict(features.transform(frame, version)), np.ones(len(frame), dtype=bool)
    except features.FeatureError:
        matrix, kept = features.transform_for_training(frame, version)
        preds = np.full(len(frame), np.nan)
        if kept.any():
            preds[kept] = estimator.predict(matrix)
        return preds, kept


def stability_check(record: ModelRecord) -> Check:
    edges = record.schema.edge_rows()
    preds, kept = _predict(record, edges)
    failures = int((~kept).sum())
    non_finite = int((~np.isfinite(preds[kept])).sum())
    passed = failures == 0 and non_finite == 0
    detail = (
        f"{len(edges)} edge rows: all predicted, all finite"
        if passed
        else f"{failures} of {len(edges)} edge rows raised in feature code, "
        f"{non_finite} non-finite predictions"
    )
    return Check(
        "numeric stability on schema edges",
        passed,
        detail,
        {"rows": len(edges), "raised": failures, "non_finite": non_finite},
    )


def simpler_model_check(candidate: ModelRecord) -> Check:
    comparison = baseline.compare(
        candidate.load_estimator(),
        candidate.metadata["feature_version"],
        seed=int(candidate.metadata.get("split_seed", 42)),
        test_size=float(candidate.metadata.get("test_size", 0.2)),
    )
    return Check(
        "not worse than a simpler model",
        comparison.passed,
        f"candidate {comparison.describe()}",
        comparison.as_record(),
    )


def validate(candidate: ModelRecord, current: ModelRecord | None, cfg: GateConfig) -> dict[str, Any]:
    """Run every check; returns the verdict (JSON-serialisable), not yet stored."""
    seed = int(candidate.metadata.get("split_seed", 42))
    test_size = float(candidate.metadata.get("test_size", 0.2))
    split = data.split(data.load_frame(), seed=seed, test_size=test_size)
    x_test, y_test = split.x_test, split.y_test
    checks = [stability_check(candidate)]
    cand_pred, cand_ok = _predict(candidate, x_test)
    coverage = float(cand_ok.mean())
    checks.append(
        Check(
            "feature code covers the held-out rows",
            coverage == 1.0,
            f"{coverage:.1%} of {len(x_test)} held-out rows could be scored",
            {"coverage": round(coverage, 4)},
        )
    )
    checks.append(simpler_model_check(candidate))
    if current is not None:
        cur_pred, cur_ok = _predict(current, x_test)
        both = cand_ok & cur_ok
        cand_rmse = training.evaluate(y_test[both], cand_pred[both])["rmse"]
        cur_rmse = training.evaluate(y_test[both], cur_pred[both])["rmse"]
        limit = cur_rmse * (1 + cfg.metric_tolerance)
        checks.append(
            Check(
                "held-out RMSE not worse",
                cand_rmse <= limit,
                f"candidate {cand_rmse:.2f} vs current {cur_rmse:.2f} (limit {limit:.2f})",
                {"candidate_rmse": cand_rmse, "current_rmse": cur_rmse, "limit": round(limit, 4)},
            )
        )
        worst: dict[str, Any] = {}
        failing = []
        too_small = {}
        for name, mask in training.slices(x_test).items():
            m = mask & both
            if m.sum() < MIN_SLICE_ROWS:
                too_small[name] = int(m.sum())
                continue
            c = training.evaluate(y_test[m], cand_pred[m])["rmse"]
            s = training.evaluate(y_test[m], cur_pred[m])["rmse"]
            ratio = c / s if s else float("inf")
            worst[name] = {
                "candidate_rmse": c,
                "current_rmse": s,
                "ratio": round(ratio, 4),
                "n": int(m.sum()),
            }
            if ratio > 1 + cfg.slice_tolerance:
                failing.append(name)
        checks.append(
            Check(
                "no slice worse",
                not failing,
                ("all slices within tolerance" if not failing else f"worse slices: {', '.join(failing)}")
                + (f"; too few rows to judge: {', '.join(too_small)}" if too_small else ""),
                {"slices": worst, "tolerance": cfg.slice_tolerance, "too_few_rows": too_small},
            )
        )
        rel = np.abs(cand_pred[both] - cur_pred[both]) / np.maximum(np.abs(cur_pred[both]), 1e-9)
        agreement = float((rel <= cfg.agreement_tolerance).mean()) if both.any() else 0.0
        checks.append(
            Check(
                "predictions agree with the current model",
                agreement >= cfg.agreement_min,
                f"{agreement:.1%} of reference rows within {cfg.agreement_tolerance:.0%} "
                f"(need {cfg.agreement_min:.0%})",
                {"agreement": round(agreement, 4), "rows": int(both.sum())},
            )
        )
    return {
        "candidate": candidate.tag,
        "against": current.tag if current else None,
        "blessed": all(c.passed for c in checks),
        "checks": [asdict(c) for c in checks],
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": cfg.model_dump(),
    }

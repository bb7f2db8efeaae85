"""The loaded model: estimator, schema and metadata read from a BentoML model directory."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from mlship.model import features
from mlship.model.schema import Schema

MODEL_FILE = "model.joblib"
SCHEMA_FILE = "schema.json"
STALENESS_FILE = "staleness.json"  # written by `mlship model staleness` (mlship/model/registry.py)


@dataclass
class ModelRuntime:
    name: str
    version: str
    estimator: Any
    schema: Schema
    metadata: dict[str, Any]
    max_age_days: float | None = None  # from the measured staleness curve, when there is one

    @property
    def feature_version(self) -> str:
        return str(self.metadata.get("feature_version", features.LATEST))

    @property
    def trained_at(self) -> float:
        stamp = self.metadata.get("trained_at")
        return datetime.fromisoformat(stamp).timestamp() if stamp else 0.0

    @classmethod
    def from_directory(cls, path: Path, *, name: str, version: str, metadata: dict[str, Any]) -> ModelRuntime:
        schema = Schema.from_json((path / SCHEMA_FILE).read_text(encoding="utf-8"))
        estimator = joblib.load(path / MODEL_FILE)
        max_age = None
        if (path / STALENESS_FILE).exists():
            max_age = json.loads((path / STALENESS_FILE).read_text(encoding="utf-8")).get("max_age_days")
        return cls(
            name=name,
            version=version,
            estimator=estimator,
            schema=schema,
            metadata=metadata,
            max_age_days=float(max_age) if max_age is not None else None,
        )

    def frame(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        """Validated request rows -> DataFrame in schema order (the training data's layout)."""
        return pd.DataFrame.from_records(rows, columns=self.schema.names)

    def raw_matrix(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Validated request rows -> float64 matrix, columns in features.RAW_FEATURES order (no DataFrame:
        the request path's layout; the skew check compares it against ``frame``'s)."""
        return np.array([[r[c] for c in features.RAW_FEATURES] for r in rows], dtype=np.float64)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Features through the same code as training, then the estimator."""
        return np.asarray(
            self.estimator.predict(features.transform(frame, self.feature_version)), dtype=float
        )

    def warm_up(self) -> None:
        """One prediction on the schema's centre row, so readiness means 'can predict'."""
        centre = self.schema.edge_rows().iloc[[0]]
        prediction = self.predict(centre)
        if not np.isfinite(prediction).all():
            raise RuntimeError(f"model {self.name}:{self.version} predicts non-finite values on a valid row")

    def describe(self) -> str:
        return json.dumps({"model": f"{self.name}:{self.version}", "feature_version": self.feature_version})

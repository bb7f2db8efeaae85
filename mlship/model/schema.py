"""The feature schema: single source of truth for names, types, valid ranges and reference distributions.

Derived from the training data and stored with every model. The server builds its pydantic request
model from it (so invalid inputs are rejected with a message naming the field), the metrics use its
bins (so drift is measured against the training reference) and the quality gate draws edge inputs
from its ranges.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, create_model

from mlship.model.data import CATEGORICAL, DESCRIPTIONS, TARGET

SCHEMA_VERSION = 1
# Valid range = training [min, max] widened by this share of the span on each side (never below 0
# for a feature that is never negative): plausible values just outside the sample stay valid.
RANGE_MARGIN = 0.10
N_FEATURE_BINS = 10
N_TARGET_BUCKETS = 20


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NumericFeature(_Frozen):
    kind: Literal["numeric"] = "numeric"
    name: str
    description: str = ""
    minimum: float
    maximum: float
    # Interior cut points of the training deciles: bin i holds edges[i-1] < x <= edges[i].
    bin_edges: list[float]
    reference_share: list[float]  # share of training rows per bin (len(bin_edges) + 1 values)


class CategoricalFeature(_Frozen):
    kind: Literal["categorical"] = "categorical"
    name: str
    description: str = ""
    allowed: list[int]
    reference_share: list[float]  # share of training rows per allowed value, same order


Feature = Annotated[NumericFeature | CategoricalFeature, Field(discriminator="kind")]


class TargetSpec(_Frozen):
    name: str
    minimum: float
    maximum: float
    # Upper bounds (`le`) of the prediction histogram: training-target quantiles, so every model
    # trained on this data shares them and canary/stable predictions compare bucket by bucket.
    buckets: list[float]


class Schema(_Frozen):
    schema_version: int = SCHEMA_VERSION
    dataset: str
    data_hash: str
    features: list[Feature]
    target: TargetSpec

    # --- construction -----------------------------------------------------------------------
    @classmethod
    def derive(cls, train: pd.DataFrame, *, dataset: str, data_hash: str) -> Schema:
        """Derive the schema from the training split (features and ``target`` columns)."""
        features: list[NumericFeature | CategoricalFeature] = []
        for name in [c for c in train.columns if c != TARGET]:
            col = train[name]
            if name in CATEGORICAL:
                allowed = sorted(int(v) for v in col.unique())
                share = [float((col == v).mean()) for v in allowed]
                features.append(
                    CategoricalFeature(
                        name=name,
                        description=DESCRIPTIONS.get(name, ""),
                        allowed=allowed,
                        reference_share=share,
                    )
                )
                continue
            lo, hi = float(col.min()), float(col.max())
            span = hi - lo
            minimum = lo - RANGE_MARGIN * span
            if lo >= 0:
                minimum = max(0.0, minimum)
            maximum = hi + RANGE_MARGIN * span
            quantiles = np.quantile(col.to_numpy(), np.linspace(0, 1, N_FEATURE_BINS + 1)[1:-1])
            edges = sorted({round(float(q), 6) for q in quantiles})
            bins = np.searchsorted(edges, col.to_numpy(), side="left")
            bin_share = np.bincount(bins, minlength=len(edges) + 1) / len(col)
            features.append(
                NumericFeature(
                    name=name,
                    description=DESCRIPTIONS.get(name, ""),
                    minimum=round(minimum, 6),
                    maximum=round(maximum, 6),
                    bin_edges=edges,
                    reference_share=[round(float(s), 6) for s in bin_share],
                )
            )
        y = train[TARGET].to_numpy()
        qs = np.quantile(y, np.linspace(0, 1, N_TARGET_BUCKETS + 1)[1:-1])
        target = TargetSpec(
            name=TARGET,
            minimum=float(y.min()),
            maximum=float(y.max()),
            buckets=sorted({round(float(q), 3) for q in qs}),
        )
        return cls(dataset=dataset, data_hash=data_hash, features=features, target=target)

    # --- persistence ------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Schema:
        return cls.model_validate_json(text)

    # --- use ---------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def feature(self, name: str) -> NumericFeature | CategoricalFeature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def bin_index(self, name: str, values: np.ndarray) -> np.ndarray:
        """Index of the training-reference bin of each value (drift metrics)."""
        f = self.feature(name)
        if isinstance(f, CategoricalFeature):
            lookup = {v: i for i, v in enumerate(f.allowed)}
            return np.array([lookup[int(v)] for v in values])
        return np.searchsorted(f.bin_edges, values, side="left")

    def request_model(self) -> type[BaseModel]:
        """Pydantic model of one input row: every field required, finite, in range; no extra fields."""
        fields: dict[str, Any] = {}
        for f in self.features:
            if isinstance(f, CategoricalFeature):
                choices = tuple(f.allowed)
                fields[f.name] = (
                    Literal[choices],
                    Field(description=f"{f.description}; one of {list(choices)}"),
                )
            else:
                fields[f.name] = (
                    float,
                    Field(
                        ge=f.minimum,
                        le=f.maximum,
                        description=f"{f.description}; valid range [{f.minimum}, {f.maximum}]",
                    ),
                )
        config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True, title="PatientFeatures")
        return create_model("PatientFeatures", __config__=config, **fields)

    def edge_rows(self) -> pd.DataFrame:
        """Rows at the edges and centre of every valid range (numeric-stability checks)."""
        rows: list[dict[str, float]] = []
        centre = {
            f.name: (f.allowed[0] if isinstance(f, CategoricalFeature) else (f.minimum + f.maximum) / 2)
            for f in self.features
        }
        rows.append(dict(centre))
        for f in self.features:
            values = f.allowed if isinstance(f, CategoricalFeature) else [f.minimum, f.maximum]
            for v in values:
                rows.append({**centre, f.name: v})
        for pick in ("minimum", "maximum"):
            rows.append(
                {
                    f.name: (f.allowed[0] if isinstance(f, CategoricalFeature) else getattr(f, pick))
                    for f in self.features
                }
            )
        return pd.DataFrame(rows, columns=self.names)

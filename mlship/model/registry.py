"""The model registry: BentoML's model store plus the files mlship keeps with each model.

Each model directory holds ``model.joblib`` (the estimator), ``schema.json`` (the feature schema
with reference distributions) and, once validated, ``gate.json`` (the quality gate's verdict).
Everything else (metrics, data hash, code version, search results) is BentoML metadata.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib

from mlship.errors import RefusedError
from mlship.model.schema import Schema

if TYPE_CHECKING:  # training imports scikit-learn: commands that only read the store do not need it
    from mlship.model.training import TrainedModel

MODEL_FILE = "model.joblib"
SCHEMA_FILE = "schema.json"
GATE_FILE = "gate.json"
STALENESS_FILE = "staleness.json"  # the recipe's staleness curve on timestamped data (Model 4)


@dataclass(frozen=True)
class ModelRecord:
    tag: str
    name: str
    version: str
    path: Path
    metadata: dict[str, Any]
    labels: dict[str, str]
    created: datetime

    @property
    def schema(self) -> Schema:
        return Schema.from_json((self.path / SCHEMA_FILE).read_text(encoding="utf-8"))

    def load_estimator(self) -> Any:
        return joblib.load(self.path / MODEL_FILE)

    @property
    def gate(self) -> dict[str, Any] | None:
        file = self.path / GATE_FILE
        return json.loads(file.read_text(encoding="utf-8")) if file.exists() else None

    @property
    def blessed(self) -> bool:
        """The quality gate blessed this very model (a verdict naming another model blesses nothing)."""
        gate = self.gate
        return bool(gate and gate.get("blessed") and gate.get("candidate") == self.tag)

    @property
    def staleness(self) -> dict[str, Any] | None:
        file = self.path / STALENESS_FILE
        return json.loads(file.read_text(encoding="utf-8")) if file.exists() else None

    @property
    def trained_at(self) -> datetime:
        return datetime.fromisoformat(self.metadata["trained_at"])


def _record(model: Any) -> ModelRecord:
    info = model.info
    return ModelRecord(
        tag=str(model.tag),
        name=model.tag.name,
        version=model.tag.version,
        path=Path(model.path),
        metadata=dict(info.metadata),
        labels=dict(info.labels),
        created=info.creation_time,
    )


def register(trained: TrainedModel, name: str) -> tuple[ModelRecord, bool]:
    """Save ``trained`` as ``name:version``; returns (record, created). Re-registering is a no-op."""
    import bentoml
    from bentoml.exceptions import NotFound

    tag = f"{name}:{trained.version}"
    with contextlib.suppress(NotFound):  # not registered yet: register it below
        return _record(bentoml.models.get(tag)), False
    metadata = {**trained.metadata, "trained_at": datetime.now(UTC).isoformat(timespec="seconds")}
    with bentoml.models.create(
        tag,
        labels={"variant": trained.variant, "feature_version": trained.metadata["feature_version"]},
        metadata=metadata,
        module="mlship.model.registry",
    ) as model:
        Path(model.path_of(MODEL_FILE)).write_bytes(trained.model_bytes)
        Path(model.path_of(SCHEMA_FILE)).write_text(trained.schema.to_json(), encoding="utf-8")
    return _record(bentoml.models.get(tag)), True


def get(tag: str) -> ModelRecord:
    """``name:version`` (or ``name`` / ``name:latest``) -> record; unknown -> RefusedError naming it."""
    import bentoml
    from bentoml.exceptions import BentoMLException

    try:
        return _record(bentoml.models.get(tag))
    except BentoMLException:
        known = ", ".join(r.tag for r in list_models()) or (
            "none (run `mlship model train`, or `mlship model import DIR` for a model trained elsewhere)"
        )
        raise RefusedError(f"unknown model {tag!r}; known models: {known}") from None


def resolve(name: str, version: str) -> ModelRecord:
    """A version may be given bare (``3f9a...``) or as a full tag."""
    return get(version if ":" in version else f"{name}:{version}")


NO_MODEL = "no model is registered: run `mlship model train` (or `make demo`, which trains every variant)"


def list_models(name: str | None = None) -> list[ModelRecord]:
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        models = bentoml.models.list(name)
    except NotFound:  # BentoML raises when nothing of that name was ever stored
        return []
    records = [_record(m) for m in models]
    return sorted(records, key=lambda r: r.created)


def _save(record: ModelRecord, name: str, body: dict[str, Any]) -> None:
    target = record.path / name
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=2, sort_keys=True), encoding="utf-8")
    tmp.replace(target)


def save_gate(record: ModelRecord, verdict: dict[str, Any]) -> None:
    """Store the quality gate's verdict with the model (written atomically)."""
    _save(record, GATE_FILE, verdict)


def save_staleness(record: ModelRecord, curve: dict[str, Any]) -> None:
    """Store the recipe's staleness curve (and the age limit it gives) with the model."""
    _save(record, STALENESS_FILE, curve)

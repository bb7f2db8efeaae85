"""Baseline for the service benchmark: the fastest honest server for the same work, without BentoML.

A pure ASGI app under uvicorn (uvloop and httptools when installed, as for BentoML's workers): the same
request validation (the schema's pydantic model, NaN/inf refused, 400 with the errors), the same numpy
row, feature code and estimator as mlship/serving/fastpath.py, and none of the monitoring (no metrics,
logs, request ids, skew check or mirroring). devtools/bench/floor_service.py mounts this same app in a
minimal BentoML service (BentoML's floor). Run by devtools/bench/service.py:

    MLSHIP_BENCH_MODEL_DIR=<model dir> uvicorn devtools.bench.bare_app:app --port PORT
"""

from __future__ import annotations

import gc
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlship import names
from mlship.model import features
from mlship.serving.runtime import ModelRuntime

_dir = Path(os.environ["MLSHIP_BENCH_MODEL_DIR"])
# BentoML's model.yaml carries the metadata (feature_version) the model was trained with.
_meta = yaml.safe_load((_dir / "model.yaml").read_text(encoding="utf-8")).get("metadata") or {}
RUNTIME = ModelRuntime.from_directory(_dir, name="bench", version=_dir.name, metadata=_meta)
ROW: type[BaseModel] = RUNTIME.schema.request_model()


class Batch(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    instances: list[ROW] = Field(min_length=1, max_length=names.MAX_BATCH_SIZE)  # type: ignore[valid-type]


_COLUMNS = list(features.RAW_FEATURES)
_VERSION = json.dumps(RUNTIME.version).encode()
# As mlship and the tuned floor do: objects alive after start-up leave the collector's generations,
# so full collections (the p99 stalls) do not walk the model (a fair baseline is tuned as users would).
gc.collect()
gc.freeze()


async def _send(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if scope["method"] != "POST" or path not in (names.ENDPOINT_PREDICT, names.ENDPOINT_PREDICT_BATCH):
        await _send(send, 404, b'{"error":"not found"}')
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    try:
        if path == names.ENDPOINT_PREDICT:
            rows = [ROW.model_validate_json(body).__dict__]
        else:
            rows = [r.__dict__ for r in Batch.model_validate_json(body).instances]  # type: ignore[attr-defined]
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        await _send(send, 400, json.dumps({"detail": errors}, default=str).encode())
        return
    raw = np.array([[r[c] for c in _COLUMNS] for r in rows], dtype=np.float64)
    predictions = RUNTIME.estimator.predict(features.transform_matrix(raw, RUNTIME.feature_version)).tolist()
    if path == names.ENDPOINT_PREDICT:
        answer = b'{"prediction":%s,"model_version":%s}' % (repr(predictions[0]).encode(), _VERSION)
    else:
        answer = b'{"predictions":%s,"model_version":%s}' % (json.dumps(predictions).encode(), _VERSION)
    await _send(send, 200, answer)

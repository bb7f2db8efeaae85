"""Baseline for the service benchmark: the same model behind a bare Starlette app (no BentoML).

Same request validation (the schema's pydantic model) and the same feature code and estimator as
bento/service.py, without BentoML's machinery (metrics, tracing, middleware).
Run by devtools/bench/service.py:

    MLSHIP_BENCH_MODEL_DIR=<model dir> uvicorn devtools.bench.bare_app:app --port PORT
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mlship.serving.runtime import ModelRuntime

_dir = Path(os.environ["MLSHIP_BENCH_MODEL_DIR"])
RUNTIME = ModelRuntime.from_directory(
    _dir, name="bench", version=_dir.name, metadata=json.loads(os.environ.get("MLSHIP_BENCH_META", "{}"))
)
REQUEST = RUNTIME.schema.request_model()


async def predict(request: Request) -> JSONResponse:
    try:
        row = REQUEST.model_validate_json(await request.body())
    except ValidationError as exc:
        return JSONResponse({"error": exc.errors(include_url=False, include_context=False)}, status_code=400)
    value = float(RUNTIME.predict(RUNTIME.frame([row.model_dump()]))[0])
    return JSONResponse({"prediction": value, "model_version": RUNTIME.version})


app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])

"""The prediction endpoints as one lean ASGI app: POST /predict and /predict_batch, all monitoring on.

BentoML's API route (IO descriptor, a DataFrame per row, a sync method in a thread pool, two ASGI
middlewares around it) spent about 90 % of a request's CPU outside the model (issue 13). This app does
the same work directly on the event loop:

* body size limit (413), JSON media type (415), request id (echoed or created);
* validation with the schema's own pydantic model (400 naming the field; NaN/inf refused), rejections
  counted by reason and field;
* the row as a numpy matrix (no DataFrame), the feature code of training (``features.transform_matrix``)
  and the estimator; a feature-code failure or a non-finite prediction is answered 500 (counted);
* after the answer is sent: drift and prediction metrics (children resolved once, ``HotMetrics``), a
  buffered access log, the training/serving skew check (every Nth request's rows, checked in batches),
  shadow mirroring and the ``on_prediction`` hooks.

It is installed as the innermost ASGI middleware of the BentoML service (bento/service.py): BentoML's
own middlewares (request metrics read by the canary and SLO rules, tracing, concurrency limit) still
wrap it; every other path and method goes on to BentoML's app. ``bentoml.mount_asgi_app`` was not
used because BentoML routes its API paths before mounted apps (``_bentoml_impl/server/app.py``,
``ServiceAppFactory.__call__`` appends mounts after the routes, BentoML 1.4.38), and the API methods
stay declared so the OpenAPI document (/docs.json) keeps describing the endpoints.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ValidationError

from mlship import names
from mlship.model import features
from mlship.model.schema import CategoricalFeature, Schema
from mlship.serving.logs import AccessLog
from mlship.serving.logs import request_id as request_id_var
from mlship.serving.metrics import HotMetrics, ServiceMetrics
from mlship.serving.middleware import ASGIApp, Message, Receive, Scope, Send, rejection_labels, request_id
from mlship.serving.runtime import ModelRuntime
from mlship.serving.shadow import ShadowMirror

# on_prediction hook: (request_id, model_version, role, rows, predictions). ``rows`` is the validated
# raw input, a float64 matrix with one row per prediction and columns in features.RAW_FEATURES order.
# Hooks run after the answer has been sent, on the event loop: they must be quick (queue, don't do I/O).
PredictionHook = Callable[[str, str, str, np.ndarray, np.ndarray], None]

_JSON = (b"content-type", b"application/json")
LOG = logging.getLogger("mlship.service")


@dataclass
class PredictApp:
    """POST /predict and /predict_batch; everything else goes to the wrapped app (404 standalone)."""

    schema: Schema
    batch_model: type[BaseModel]
    metrics: ServiceMetrics
    access_log: AccessLog
    role: str
    shadow: ShadowMirror | None = None
    skew_check_every: int = 20  # every Nth request's rows are re-checked offline
    skew_batch_rows: int = 32  # ... in one DataFrame per this many rows (pandas costs per call, not per row)
    # ... or as soon as the oldest waiting row is this old: at 2 req/s a full batch would take 5 minutes
    # and the skew alert would have nothing to judge for a new version's first minutes.
    skew_max_wait_s: float = 10.0
    clock: Callable[[], float] = time.monotonic  # the skew check's clock (tests move it)
    max_body_bytes: int = names.MAX_REQUEST_BYTES
    on_prediction: list[PredictionHook] = field(default_factory=list)
    runtime: ModelRuntime | None = None  # set by ``load``; until then the endpoints answer 503

    def __post_init__(self) -> None:
        self.row_model = self.schema.request_model()
        self.fields = frozenset([*self.schema.names, "instances"])
        # Raw matrix columns are features.RAW_FEATURES; the schema declares exactly those (tests/mltest).
        self.columns = list(features.RAW_FEATURES)
        self.hot = HotMetrics(
            self.metrics,
            [_bins(self.schema, name) for name in self.columns],
            (names.ENDPOINT_PREDICT, names.ENDPOINT_PREDICT_BATCH),
        )
        self._count = 0
        self._skew_rows: list[dict[str, Any]] = []
        self._skew_raw: list[np.ndarray] = []
        self._skew_since = 0.0  # monotonic time the oldest waiting row was sampled

    def load(self, runtime: ModelRuntime) -> None:
        self.runtime = runtime
        self._version_json = json.dumps(runtime.version)
        self._feature_version = runtime.feature_version

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """This app in front of ``app`` (BentoML builds middlewares as ``factory(app, **options)``)."""

        async def routed(scope: Scope, receive: Receive, send: Send) -> None:
            await self.dispatch(scope, receive, send, app)

        return routed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.dispatch(scope, receive, send, None)

    async def dispatch(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp | None) -> None:
        path = scope.get("path")
        if scope["type"] != "http" or scope["method"] != "POST" or path not in _ENDPOINTS:
            if app is not None:
                await app(scope, receive, send)
            elif scope["type"] == "http":
                await _answer(send, 404, b'{"error":"not found"}', [])
            return
        started = time.perf_counter()
        rid_in = media = length = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                rid_in = value
            elif key == b"content-type":
                media = value
            elif key == b"content-length":
                length = value
        rid = request_id(rid_in)
        token = request_id_var.set(rid)  # log lines of this request (skew warnings) carry its id
        try:
            status = await self._handle(path, scope, receive, send, rid, media, length)
        except Exception as exc:
            # Never return without an answer: BentoML's timeout middleware would hold the request for
            # `traffic.timeout` and no 5xx would be counted. (If the answer had started, this raises.)
            LOG.error("request failed", extra={"fields": {"error": type(exc).__name__}})
            await _answer(send, 500, b'{"error":"internal error"}', [(b"x-request-id", rid.encode())])
            status = 500
        finally:
            request_id_var.reset(token)
        if status:
            self.access_log.request(rid, "POST", path, status, time.perf_counter() - started)

    async def _handle(
        self,
        path: str,
        scope: Scope,
        receive: Receive,
        send: Send,
        rid: str,
        media: bytes | None,
        length: bytes | None,
    ) -> int:
        """Answer one request; returns its status (0: the client went away)."""
        rid_header = (b"x-request-id", rid.encode())
        if media is not None:
            kind = media.split(b";", 1)[0].strip().lower()
            if kind and kind != b"application/json" and not kind.endswith(b"+json"):
                self.hot.reject("unsupported_media_type", "(content-type)")
                shown = json.dumps(f"send the body as application/json, not {kind.decode('latin-1')[:64]}")
                await _answer(send, 415, b'{"error":' + shown.encode() + b"}", [rid_header])
                return 415
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            return await self._too_large(send, rid_header)
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return 0
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                return await self._too_large(send, rid_header)
            if not message.get("more_body", False):
                break
        runtime = self.runtime
        if runtime is None:
            await _answer(send, 503, b'{"error":"the model is loading"}', [rid_header])
            return 503
        single = path == names.ENDPOINT_PREDICT
        try:
            if single:
                values = list(self.row_model.model_validate_json(body).__dict__.values())
                rows = [dict(zip(self.schema.names, values, strict=True))]
            else:
                batch = self.batch_model.model_validate_json(body)
                rows = [r.__dict__ for r in batch.instances]  # type: ignore[attr-defined]
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_context=False, include_input=False)
            for reason, name in rejection_labels(errors, self.fields):
                self.hot.reject(reason, name)
            detail = json.dumps({"detail": errors}, default=str).encode()
            await _answer(send, 400, detail, [rid_header])
            return 400
        raw = runtime.raw_matrix(rows)
        try:
            predictions = np.asarray(
                runtime.estimator.predict(features.transform_matrix(raw, self._feature_version)), dtype=float
            )
        except features.FeatureError as exc:
            LOG.error("feature code failed", extra={"fields": {"error": str(exc)[:200]}})
            await _answer(send, 500, b'{"error":"the model could not score this input"}', [rid_header])
            return 500
        except Exception as exc:  # a broken model is answered (and counted by BentoML) as a 500 at once
            # Only the exception's type: its message may quote the input (privacy-safe logs).
            LOG.error("model failed", extra={"fields": {"error": type(exc).__name__}})
            await _answer(send, 500, b'{"error":"the model failed on this input"}', [rid_header])
            return 500
        as_list = predictions.tolist()
        if not np.isfinite(predictions).all():
            self.hot.nonfinite[path].inc()
            LOG.error("non-finite prediction", extra={"fields": {"rows": len(as_list)}})
            await _answer(send, 500, b'{"error":"the model answered a non-finite value"}', [rid_header])
            return 500
        if single:
            answer = b'{"prediction":%s,"model_version":%s}' % (
                repr(as_list[0]).encode(),
                self._version_json.encode(),
            )
        else:
            answer = b'{"predictions":%s,"model_version":%s}' % (
                json.dumps(as_list).encode(),
                self._version_json.encode(),
            )
        await _answer(send, 200, answer, [rid_header])
        # The answer is out: the rest is monitoring, off the client's latency.
        if single:
            self.hot.observe_row(raw[0].tolist(), as_list[0], path)
        else:
            self.hot.observe_rows(raw, predictions, path)
        if self._count % self.skew_check_every == 0:
            now = self.clock()
            if not self._skew_rows:
                self._skew_since = now
            self._skew_rows.extend(rows)
            self._skew_raw.append(raw)
            if len(self._skew_rows) >= self.skew_batch_rows or now - self._skew_since >= self.skew_max_wait_s:
                self._skew_check()
        self._count += 1
        if self.shadow is not None:
            self.shadow.after(path, body, answer)
        if self.on_prediction:
            self._run_hooks(rid, runtime.version, raw, predictions)
        return 200

    async def _too_large(self, send: Send, rid_header: tuple[bytes, bytes]) -> int:
        self.hot.reject("body_too_large", "(body)")
        message = json.dumps({"error": f"request body larger than {self.max_body_bytes} bytes"})
        await _answer(send, 413, message.encode(), [rid_header])
        return 413

    def flush_skew_check(self) -> None:
        """Check the sampled rows still waiting for a full batch (at shutdown, in tests)."""
        if self._skew_rows:
            self._skew_check()

    def _skew_check(self) -> None:
        """Recompute the features of sampled served rows through the offline (training) layout and
        compare them with the online ones."""
        rows, raw = self._skew_rows, np.vstack(self._skew_raw)
        self._skew_rows, self._skew_raw = [], []
        version = self._feature_version
        offline = pd.DataFrame(rows).astype({n: "float64" for n in self.schema.names})
        offline = offline.astype({"sex": "int64"}) if "sex" in offline else offline
        a = features.transform_matrix(raw, version)
        b = features.transform(offline.loc[:, self.schema.names], version)
        self.hot.skew_checks.inc(len(rows))
        mismatched = int((~np.isclose(a, b, rtol=0, atol=1e-9)).any(axis=1).sum())
        if mismatched:
            self.hot.skew_mismatches.inc(mismatched)
            LOG.warning("training/serving skew", extra={"fields": {"rows": mismatched}})

    def _run_hooks(self, rid: str, version: str, raw: np.ndarray, predictions: np.ndarray) -> None:
        for hook in self.on_prediction:
            try:
                hook(rid, version, self.role, raw, predictions)
            except Exception:  # a monitoring hook never fails a served prediction
                LOG.exception("on_prediction hook failed", extra={"fields": {"hook": repr(hook)[:100]}})


_ENDPOINTS = frozenset((names.ENDPOINT_PREDICT, names.ENDPOINT_PREDICT_BATCH))


def _bins(schema: Schema, name: str) -> tuple[str, list[float] | None, list[Any] | None]:
    f = schema.feature(name)
    if isinstance(f, CategoricalFeature):
        return name, None, list(f.allowed)
    return name, list(f.bin_edges), None


async def _answer(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [_JSON, (b"content-length", str(len(body)).encode()), *headers],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})

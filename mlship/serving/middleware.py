"""ASGI middleware around the BentoML app: request limits, request ids, access logs, rejection counts.

* Bodies over the size limit get 413 before anything is parsed (also enforced by the proxy).
* Every request gets an ``X-Request-ID`` (the caller's, or a new one) echoed in the response and
  carried by every log line of that request.
* Validation failures (BentoML answers 400 with pydantic's error list) are counted by error type and
  field in ``mlship_rejected_inputs_total``; the field is named, the value never logged.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from mlship import names
from mlship.serving.logs import request_id

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PREDICT_PATHS = (names.ENDPOINT_PREDICT, names.ENDPOINT_PREDICT_BATCH)
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]
) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class RequestGuard:
    """Size limit, request id, access log and rejection counting for the prediction endpoints."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        on_reject: Callable[[str, str], None],
        access_log: logging.Logger,
        fields: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.on_reject = on_reject
        self.access_log = access_log
        # Field label values come from this set only: a request naming 50,000 unknown fields must
        # not create 50,000 metric series (the server would spend its time rendering /metrics).
        self.fields = fields

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in PREDICT_PATHS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        rid = headers.get(b"x-request-id", b"").decode("latin-1")
        if not _REQUEST_ID_OK.match(rid):
            rid = uuid.uuid4().hex
        token = request_id.set(rid)
        rid_header = (b"x-request-id", rid.encode())
        started = time.perf_counter()
        state: dict[str, Any] = {"status": 500, "body": b""}

        media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if media_type and media_type != b"application/json" and not media_type.endswith(b"+json"):
            await self._unsupported(send, rid_header, state, media_type)
            self._log(scope, state, started)
            request_id.reset(token)
            return
        declared = headers.get(b"content-length")
        body = b""
        too_large = declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes
        while not too_large:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                request_id.reset(token)
                return
            body += message.get("body", b"")
            too_large = len(body) > self.max_body_bytes
            if not message.get("more_body", False):
                break
        if too_large:
            await self._too_large(send, rid_header, state)
            self._log(scope, state, started)
            request_id.reset(token)
            return
        scope["mlship.body"] = body
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def capture_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                message["headers"] = [*message.get("headers", []), rid_header]
            elif message["type"] == "http.response.body" and state["status"] == 400:
                state["body"] += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, replay, capture_send)
        finally:
            if state["status"] == 400:
                self._count_rejections(state["body"])
            self._log(scope, state, started)
            request_id.reset(token)

    async def _too_large(self, send: Send, rid_header: tuple[bytes, bytes], state: dict[str, Any]) -> None:
        state["status"] = 413
        self.on_reject("body_too_large", "(body)")
        await _send_json(
            send,
            413,
            {"error": f"request body larger than {self.max_body_bytes} bytes"},
            [rid_header],
        )

    async def _unsupported(
        self, send: Send, rid_header: tuple[bytes, bytes], state: dict[str, Any], media_type: bytes
    ) -> None:
        state["status"] = 415
        self.on_reject("unsupported_media_type", "(content-type)")
        shown = media_type.decode("latin-1")[:64]
        await _send_json(
            send, 415, {"error": f"send the body as application/json, not {shown}"}, [rid_header]
        )

    def _field(self, err: dict[str, Any]) -> str:
        loc = [str(p) for p in err.get("loc", []) if not str(p).isdigit()]
        if not loc:
            return "(body)"
        if loc[-1] in self.fields:
            return loc[-1]
        return "(extra)" if err.get("type") == "extra_forbidden" else "(other)"

    def _count_rejections(self, body: bytes) -> None:
        try:
            detail = json.loads(body or b"{}").get("detail") or []
        except (ValueError, AttributeError):
            detail = []
        if not isinstance(detail, list) or not detail:
            self.on_reject("invalid_request", "(body)")
            return
        for err in detail:
            self.on_reject(str(err.get("type", "invalid"))[:64], self._field(err))

    def _log(self, scope: Scope, state: dict[str, Any], started: float) -> None:
        status = state["status"]
        level = logging.ERROR if status >= 500 else logging.WARNING if status >= 400 else logging.INFO
        self.access_log.log(
            level,
            "request",
            extra={
                "fields": {
                    "method": scope.get("method"),
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                }
            },
        )

"""``POST /feedback`` on the model server: outcomes of served predictions, joined and stored once.

An ASGI route of its own in front of the BentoML app (every other path passes through untouched), so
the router reaches it like ``/predict``. The body is validated (mlship/feedback/validation.py); outcomes
are joined to their predictions in the shared store in one transaction, all or nothing. Answers:

* 200 ``{"accepted": n}``;
* 400 bad JSON, wrong shape, missing/unknown field, wrong type, non-finite, bad id or index,
  empty or too large batch; 404 unknown request id; 410 expired; 409 duplicate or ambiguous
  request id; 413 body too large;
  415 not JSON; 405 not POST (with ``Allow: POST``); 404 when the server has no feedback store;
  503 with ``Retry-After`` when the store cannot be written (locked past its busy timeout, disk error);
* every refusal names the field and is counted by reason in ``mlship_feedback_rejected_total``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from mlship import names
from mlship.feedback import validation
from mlship.feedback.metrics import FeedbackMetrics
from mlship.feedback.recorder import PredictionRecorder
from mlship.feedback.store import FeedbackStore, Joined, Outcome, Refusal
from mlship.feedback.validation import Problem

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

STATUS = {
    "unknown_request_id": 404,
    "ambiguous_request_id": 409,
    "expired": 410,
    "duplicate": 409,
    "body_too_large": 413,
    "unsupported_media_type": 415,
    "method_not_allowed": 405,
    "store_unavailable": 503,
}
RECHECK_AFTER_S = 0.3  # > the recorders' FLUSH_WAIT_S (0.2 s), the longest a served prediction waits
RETRY_AFTER_S = 5  # sent with a 503: the store's write lock is held for milliseconds, a retry soon succeeds
MESSAGES = {
    "unknown_request_id": "no served prediction has this request_id (send the X-Request-ID the prediction "
    "answered with, after the prediction returned)",
    "ambiguous_request_id": "this request_id was answered with more than one prediction (a reused "
    "X-Request-ID, or a request retried on two servers): its outcome cannot be joined; send a unique "
    "X-Request-ID with each prediction",
    "expired": "the prediction is older than the store's retention; its outcome is no longer accepted",
    "duplicate": "an outcome for this request_id (and index) is already stored",
}


async def _answer(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    if status == 405:
        headers.append((b"allow", b"POST"))  # RFC 9110 15.5.6: a 405 lists the methods allowed
    if status == 503:
        headers.append((b"retry-after", str(RETRY_AFTER_S).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class FeedbackEndpoint:
    def __init__(
        self,
        app: ASGIApp,
        *,
        store: FeedbackStore | None,
        recorder: PredictionRecorder | None,
        metrics: FeedbackMetrics,
        max_body_bytes: int = names.MAX_REQUEST_BYTES,
    ) -> None:
        self.app = app
        self.store = store
        self.recorder = recorder
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != names.ENDPOINT_FEEDBACK:
            await self.app(scope, receive, send)
            return
        status, body = await self._handle(scope, receive)
        await _answer(send, status, body)

    async def _handle(self, scope: Scope, receive: Receive) -> tuple[int, dict[str, Any]]:
        if scope.get("method") != "POST":
            return self._refuse([Problem(None, "(method)", "method_not_allowed", "send outcomes with POST")])
        if self.store is None:
            return 404, {"error": "this server records no feedback: start it with MLSHIP_FEEDBACK_DB set"}
        headers = dict(scope.get("headers") or [])
        media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if media_type and media_type != b"application/json" and not media_type.endswith(b"+json"):
            return self._refuse(
                [
                    Problem(
                        None, "(content-type)", "unsupported_media_type", "send the body as application/json"
                    )
                ]
            )
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return 400, {"error": "client disconnected"}
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                return self._refuse(
                    [
                        Problem(
                            None,
                            "(body)",
                            "body_too_large",
                            f"request body larger than {self.max_body_bytes} bytes; split the outcomes",
                        )
                    ]
                )
            if not message.get("more_body", False):
                break
        # Off the event loop: a 1 MB body takes a noticeable time to parse and check.
        outcomes, problems = await asyncio.to_thread(validation.parse, body)
        if problems:
            return self._refuse(problems)
        try:
            joined, refused = await asyncio.to_thread(self._store, self.store, outcomes)
            if any(r.reason == "unknown_request_id" for r in refused):
                # The prediction may have been answered by another server or worker a moment ago and
                # still be in its recorder's queue (written within FLUSH_WAIT_S): look once more.
                await asyncio.sleep(RECHECK_AFTER_S)
                joined, refused = await asyncio.to_thread(self._store, self.store, outcomes)
        except sqlite3.OperationalError as exc:  # locked past the busy timeout, disk full, I/O error
            return self._refuse(
                [
                    Problem(
                        None,
                        "(store)",
                        "store_unavailable",
                        f"the feedback store is unavailable ({str(exc)[:100]}); nothing was stored, "
                        f"retry after {RETRY_AFTER_S} s",
                    )
                ]
            )
        if refused:
            return self._refuse(
                [
                    Problem(
                        r.index if len(outcomes) > 1 else None, "request_id", r.reason, MESSAGES[r.reason]
                    )
                    for r in refused
                ]
            )
        self.metrics.joined(joined)
        return 200, {"accepted": len(joined)}

    def _store(self, store: FeedbackStore, outcomes: list[Outcome]) -> tuple[list[Joined], list[Refusal]]:
        if self.recorder is not None:
            # Predictions this process served a moment ago may still be queued: write them first.
            self.recorder.flush(timeout=1.0)
        return store.add_outcomes(outcomes)

    def _refuse(self, problems: list[Problem]) -> tuple[int, dict[str, Any]]:
        # Each (reason, field) once per refused request: the counter counts submissions, so one body
        # with a thousand bad items cannot inflate it a thousandfold.
        for reason, fld in dict.fromkeys((p.reason, p.field) for p in problems):
            self.metrics.reject(reason, fld)
        first = problems[0]
        where = f"item {first.index}: " if first.index is not None else ""
        return STATUS.get(first.reason, 400), {
            "error": f"{where}{first.field}: {first.message}",
            "problems": [p.as_json() for p in problems[: validation.MAX_PROBLEMS]],
        }

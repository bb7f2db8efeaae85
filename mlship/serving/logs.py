"""Structured JSON logs: one object per line, with request id and model version.

Privacy by default: no raw feature values are ever logged (only field names and error types).
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import sys
import time
from contextvars import ContextVar
from typing import Any

request_id: ContextVar[str] = ContextVar("request_id", default="-")


class JsonFormatter(logging.Formatter):
    def __init__(self, static: dict[str, str]) -> None:
        super().__init__()
        self.static = static

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": request_id.get(),
            **self.static,
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
        return json.dumps(entry, separators=(",", ":"), default=str)


class StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is when the record is emitted (not when the handler was made)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


def json_logger(name: str, static: dict[str, str]) -> logging.Logger:
    """A logger writing JSON lines to stdout with ``static`` fields (model_version, role) on every line."""
    logger = logging.getLogger(name)
    logger.handlers.clear()
    handler = StdoutHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(static))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


class DropClientErrors(logging.Filter):
    """Drop BentoML's traceback for request validation errors: pydantic embeds the rejected input
    values in it (privacy), and the rejection is already logged as JSON and counted, value-free."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return type(exc).__name__ != "ValidationError"


def install_privacy_filters() -> None:
    for name in ("bentoml._internal.server.http_app", "bentoml.serve", "_bentoml_impl.server.app"):
        logging.getLogger(name).addFilter(DropClientErrors())


class AccessLog:
    """The prediction endpoints' access log: the same JSON lines as ``json_logger``, written in batches.

    One ``logging`` call per request costs a LogRecord, a formatter pass and a write(2) on the request
    path; here a request appends one pre-formatted line and the lines go out in one write when
    ``max_lines`` are pending or ``max_delay_s`` after the first pending one (and at exit). Lines at
    error level are written at once. Only method, path, status and duration are logged: never a
    feature value (privacy).
    """

    def __init__(
        self,
        logger: logging.Logger,
        static: dict[str, str],
        *,
        max_lines: int = 256,
        max_delay_s: float = 0.5,
    ) -> None:
        self.logger = logger
        self.static = static
        self.max_lines = max_lines
        self.max_delay_s = max_delay_s
        self._pending: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._second = -1
        self._stamp = ""
        atexit.register(self.flush)

    def _ts(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((now - second) * 1000):03d}Z"

    def request(self, rid: str, method: str, path: str, status: int, duration_s: float) -> None:
        level = logging.ERROR if status >= 500 else logging.WARNING if status >= 400 else logging.INFO
        if not self.logger.isEnabledFor(level):
            return
        entry = {
            "ts": self._ts(time.time()),
            "level": logging.getLevelName(level).lower(),
            "logger": self.logger.name,
            "msg": "request",
            "request_id": rid,
            **self.static,
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(duration_s * 1000, 3),
        }
        self._pending.append(json.dumps(entry, separators=(",", ":")))
        if level >= logging.ERROR or len(self._pending) >= self.max_lines:
            self.flush()
        elif self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(self.max_delay_s, self.flush)
            except RuntimeError:  # no event loop (called from a thread): write now
                self.flush()

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        lines, self._pending = self._pending, []
        try:
            sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()
        except (OSError, ValueError):  # stdout closed at shutdown: nothing left to write to
            return

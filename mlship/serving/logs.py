"""Structured JSON logs: one object per line, with request id and model version.

Privacy by default: no raw feature values are ever logged (only field names and error types).
"""

from __future__ import annotations

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

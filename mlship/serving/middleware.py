"""ASGI types and the request-level rules of the prediction endpoints (mlship/serving/fastpath.py).

* Every request gets an ``X-Request-ID`` (the caller's when it is well-formed, or a new one) echoed in
  the response and carried by every log line of that request.
* Validation failures are counted by pydantic error type and field in ``mlship_rejected_inputs_total``;
  the field is named, the value never logged. Field label values come from the schema only.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any

from mlship import names

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PREDICT_PATHS = (names.ENDPOINT_PREDICT, names.ENDPOINT_PREDICT_BATCH)
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


# New ids: 16 random hex digits drawn once per process, then a counter (32 hex digits in all). Unique
# across processes and restarts like a uuid4, without a getrandom(2) call per request.
_ID_PREFIX = os.urandom(8).hex()
_ids = itertools.count(int.from_bytes(os.urandom(4), "big"))


def request_id(given: bytes | None) -> str:
    """The caller's request id when it is safe to echo and log, else a new unique one (32 hex digits)."""
    if given:
        rid = given.decode("latin-1")
        if _REQUEST_ID_OK.match(rid):
            return rid
    return f"{_ID_PREFIX}{next(_ids) & 0xFFFFFFFFFFFFFFFF:016x}"


def rejection_labels(errors: Iterable[Mapping[str, Any]], fields: frozenset[str]) -> list[tuple[str, str]]:
    """(reason, field) label pairs for pydantic's error list; an empty list counts as one invalid body.

    A request naming 50,000 unknown fields must not create 50,000 metric series (the server would
    spend its time rendering /metrics): unknown names become "(extra)" or "(other)".
    """
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if not isinstance(p, int) and not str(p).isdigit()]
        if not loc:
            field = "(body)"
        elif loc[-1] in fields:
            field = loc[-1]
        else:
            field = "(extra)" if err.get("type") == "extra_forbidden" else "(other)"
        out.append((str(err.get("type", "invalid"))[:64], field))
    return out or [("invalid_request", "(body)")]

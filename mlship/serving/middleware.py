"""ASGI types and the request-level rules of the prediction endpoints (mlship/serving/fastpath.py).

* Every POST to a prediction endpoint gets an ``X-Request-ID`` (the caller's when it is well-formed, or
  a new random one) echoed in the response and carried by every log line of that request; other methods
  are BentoML's (405).
* Validation failures are counted by pydantic error type and field in ``mlship_rejected_inputs_total``;
  the field is named, the value never logged. Field label values come from the schema only.
"""

from __future__ import annotations

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


# New ids are 128 random bits: outcomes are joined by request id (POST /feedback), so an id must not be
# guessable from another (a counter would let anyone holding one id post outcomes for its neighbours).


def request_id(given: bytes | None) -> str:
    """The caller's request id when it is safe to echo and log, else a new unique one (32 hex digits)."""
    if given:
        rid = given.decode("latin-1")
        if _REQUEST_ID_OK.fullmatch(rid):
            return rid
    return os.urandom(16).hex()


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

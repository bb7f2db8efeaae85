"""Validation of outcome submissions: one outcome object, or a list of them, each error naming its field.

Accepted body: ``{"request_id": "<X-Request-ID of the prediction>", "outcome": <finite number>}`` with an
optional ``"index"`` (the row within a ``/predict_batch`` request, default 0), or a JSON list of such
objects (at most ``MAX_OUTCOMES_PER_REQUEST``). Every problem is reported with the item's position, the
field and a reason; the reasons are the label values of ``mlship_feedback_rejected_total``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from mlship import names
from mlship.feedback.store import Outcome

MAX_OUTCOMES_PER_REQUEST = 1000
# Problems reported for one body: enough to fix a batch, bounded so that a hostile body (one object
# with 75,000 unknown keys, 1,000 bad items) costs no more to answer than a small one.
MAX_PROBLEMS = 100
# What the server accepts as X-Request-ID; used with fullmatch (``$`` would let "r1\n" through).
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
FIELDS = frozenset({"request_id", "outcome", "index"})

# Every reason a submission can be refused for (label values of the rejection counter, fixed set).
REASONS = (
    "bad_json",
    "wrong_shape",
    "empty_batch",
    "batch_too_large",
    "missing_field",
    "unknown_field",
    "wrong_type",
    "non_finite",
    "bad_request_id",
    "bad_index",
    "unknown_request_id",
    "ambiguous_request_id",
    "expired",
    "duplicate",
    "body_too_large",
    "unsupported_media_type",
    "method_not_allowed",
    "store_unavailable",
)


@dataclass(frozen=True)
class Problem:
    index: int | None  # position in the submitted list; None for the body as a whole
    field: str
    reason: str
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "reason": self.reason, "error": self.message}


def parse(body: bytes) -> tuple[list[Outcome], list[Problem]]:
    """The outcomes of a request body, or every problem found in it (then no outcome is returned)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return [], [Problem(None, "(body)", "bad_json", f"the body is not JSON: {str(exc)[:200]}")]
    except RecursionError:  # arrays/objects nested deeper than the interpreter's recursion limit
        return [], [Problem(None, "(body)", "bad_json", "the body is nested too deeply to be an outcome")]
    items = data if isinstance(data, list) else [data]
    if isinstance(data, list):
        if not data:
            return [], [Problem(None, "(body)", "empty_batch", "the list of outcomes is empty")]
        if len(data) > MAX_OUTCOMES_PER_REQUEST:
            return [], [
                Problem(
                    None,
                    "(body)",
                    "batch_too_large",
                    f"{len(data)} outcomes in one request; send at most {MAX_OUTCOMES_PER_REQUEST}",
                )
            ]
    outcomes: list[Outcome] = []
    problems: list[Problem] = []
    for index, item in enumerate(items):
        at = index if isinstance(data, list) else None
        found = check_item(item, at)
        if isinstance(found, Outcome):
            outcomes.append(found)
        else:
            problems.extend(found)
            if len(problems) >= MAX_PROBLEMS:
                break
    return ([] if problems else outcomes), problems[:MAX_PROBLEMS]


def check_item(item: Any, at: int | None) -> Outcome | list[Problem]:
    if not isinstance(item, dict):
        return [
            Problem(
                at,
                "(body)",
                "wrong_shape",
                'expected an object {"request_id": ..., "outcome": ...} or a list of them, '
                f"got {type(item).__name__}",
            )
        ]
    problems: list[Problem] = []
    unknown = [k for k in item if k not in FIELDS]
    if unknown:  # one problem per item, however many unknown keys it has
        shown = ", ".join(repr(str(k)[:40]) for k in unknown[:3]) + (" ..." if len(unknown) > 3 else "")
        problems.append(
            Problem(
                at,
                "(extra)",
                "unknown_field",
                f"{len(unknown)} unknown field(s) {shown}; allowed: index, outcome, request_id",
            )
        )
    rid = item.get("request_id")
    if "request_id" not in item:
        problems.append(Problem(at, "request_id", "missing_field", "request_id is required"))
    elif not isinstance(rid, str):
        problems.append(
            Problem(at, "request_id", "wrong_type", f"request_id must be a string, got {type(rid).__name__}")
        )
    elif not REQUEST_ID.fullmatch(rid):
        problems.append(
            Problem(
                at,
                "request_id",
                "bad_request_id",
                "request_id must be 1-128 characters of A-Z a-z 0-9 . _ : -",
            )
        )
    value = item.get("outcome")
    if "outcome" not in item:
        problems.append(Problem(at, "outcome", "missing_field", "outcome is required"))
    elif isinstance(value, bool) or not isinstance(value, int | float):
        problems.append(
            Problem(at, "outcome", "wrong_type", f"outcome must be a number, got {type(value).__name__}")
        )
    elif not _finite(value):
        problems.append(Problem(at, "outcome", "non_finite", "outcome must be a finite number"))
    idx = item.get("index", 0)
    if isinstance(idx, bool) or not isinstance(idx, int):
        problems.append(
            Problem(at, "index", "wrong_type", f"index must be an integer, got {type(idx).__name__}")
        )
    elif not 0 <= idx < names.MAX_BATCH_SIZE:
        problems.append(Problem(at, "index", "bad_index", f"index must be in [0, {names.MAX_BATCH_SIZE})"))
    if problems:
        return problems
    return Outcome(str(rid), int(idx), float(value))  # type: ignore[arg-type]  # checked above


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an integer literal with hundreds of digits: beyond any float
        return False

"""One row of the campaign's table: a case, what was expected, what was observed, pass/fail/skip."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["pass", "fail", "skip"]
AREAS = ("load", "faults", "api", "cli", "scans")


@dataclass
class CaseResult:
    area: str
    case: str
    expected: str
    observed: str
    status: Status
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verdict(area: str, case: str, *, expected: str, observed: str, ok: bool, **figures: Any) -> CaseResult:
    """A pass/fail row; ``figures`` keeps the numbers behind ``observed`` for the JSON report."""
    return CaseResult(area, case, expected, observed, "pass" if ok else "fail", figures)


def skipped(area: str, case: str, *, expected: str, why: str) -> CaseResult:
    """A case that could not run here, with the reason (never counted as a pass)."""
    return CaseResult(area, case, expected, why, "skip")


def errored(area: str, case: str, *, expected: str, exc: BaseException) -> CaseResult:
    """A case whose own machinery failed: a failure, with the error as the observation."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return CaseResult(area, case, expected, f"error: {type(exc).__name__}: {first}", "fail")

"""The paper's scoring rules: per test 1 point when automated, 0.5 when done manually and documented, else
0; a section's score is the sum of its tests; the final score is the minimum over the four sections."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from mlship.score.evidence import FAILED, CheckResult, Evidence, ManualResult
from mlship.score.rubric import Band, Item, Rubric, Section

AUTOMATED_POINTS = 1.0
MANUAL_POINTS = 0.5


@dataclass(frozen=True)
class ItemScore:
    item: Item
    points: float
    status: str  # automated | manual | none
    checks: list[CheckResult]
    live: CheckResult | None
    manual: ManualResult | None
    reason: str


@dataclass(frozen=True)
class SectionScore:
    section: Section
    items: list[ItemScore]

    @property
    def score(self) -> float:
        return sum(i.points for i in self.items)


@dataclass(frozen=True)
class Score:
    sections: list[SectionScore]
    band: Band
    evidence: Evidence
    generated_at: str

    @property
    def final(self) -> float:
        return min(s.score for s in self.sections)

    @property
    def weakest(self) -> list[str]:
        return [s.section.id for s in self.sections if s.score == self.final]

    @property
    def items(self) -> list[ItemScore]:
        return [i for s in self.sections for i in s.items]

    def count(self, status: str) -> int:
        return sum(1 for i in self.items if i.status == status)


def score_item(item: Item, evidence: Evidence) -> ItemScore:
    checks = [evidence.check(c) for c in item.automated]
    automated = bool(checks) and all(c.passed for c in checks)
    live = evidence.live_check(item.live) if item.live is not None else None
    if not checks:
        reason = "no automated check"
    elif not automated:
        reason = "; ".join(f"{c.target}: {c.status}" for c in checks if not c.passed)
    elif live is not None and live.status == FAILED:
        automated = False
        reason = f"live: {live.detail}"
    else:
        reason = "every automated check passed in the latest run"
    manual = evidence.manual(item.manual) if item.manual else None
    if automated:
        return ItemScore(item, AUTOMATED_POINTS, "automated", checks, live, manual, reason)
    if manual is not None and manual.documented:
        return ItemScore(item, MANUAL_POINTS, "manual", checks, live, manual, f"{reason}; {manual.detail}")
    if manual is not None:
        reason = f"{reason}; {manual.detail}"
    return ItemScore(item, 0.0, "none", checks, live, manual, reason)


def score(rubric: Rubric, evidence: Evidence) -> Score:
    sections = [SectionScore(s, [score_item(i, evidence) for i in s.items]) for s in rubric.sections]
    final = min(s.score for s in sections)
    return Score(
        sections=sections,
        band=rubric.band(final),
        evidence=evidence,
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )

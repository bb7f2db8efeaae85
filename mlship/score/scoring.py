"""The paper's scoring rules, with proxies kept apart.

Per item: **automated** (1 point) when every piece of its automated evidence passed - and, for an item
the rubric marks ``live_required``, one of them is a live check that passed against a running system;
**proxy** (0.5 at most) when the evidence stands in for the property rather than testing it - declared
in the evidence map with its reason, or said by a figure's own verdict; **manual** (0.5) when only a
documented procedure with results exists; **missing** (0) otherwise. A section's score is the sum of its
items; the final score is the minimum over the four sections.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from mlship.score.evidence import CheckResult, Evidence, ManualResult
from mlship.score.evidence_map import EvidenceMap, ItemEvidence, LiveEvidence
from mlship.score.rubric import Band, Item, Rubric, Section

AUTOMATED = "automated"
PROXY = "proxy"
MANUAL = "manual"
MISSING = "missing"
STATUSES = (AUTOMATED, PROXY, MANUAL, MISSING)
POINTS = {AUTOMATED: 1.0, PROXY: 0.5, MANUAL: 0.5, MISSING: 0.0}


@dataclass(frozen=True)
class ItemScore:
    item: Item
    declared: ItemEvidence | None
    status: str
    checks: list[CheckResult]  # automated evidence
    proxy_checks: list[CheckResult]  # the proxy tier's evidence
    manual: ManualResult | None
    reason: str

    @property
    def points(self) -> float:
        return POINTS[self.status]

    @property
    def how(self) -> str:
        return self.declared.how if self.declared else "no evidence declared in the evidence map"


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


def _failures(results: list[CheckResult]) -> str:
    return "; ".join(f"{c.kind} {c.target}: {c.status} ({c.detail})" for c in results if not c.counts)


def score_item(item: Item, declared: ItemEvidence | None, evidence: Evidence) -> ItemScore:
    if declared is None:
        return ItemScore(item, None, MISSING, [], [], None, "no evidence declared in the evidence map")
    checks = [evidence.check(item.id, e) for e in declared.automated]
    proxy_checks = [evidence.check(item.id, e) for e in declared.proxy.evidence] if declared.proxy else []
    manual = evidence.manual(declared.manual) if declared.manual else None
    reasons: list[str] = []

    automated_ok = bool(checks) and all(c.counts for c in checks)
    if not checks:
        reasons.append("no automated evidence")
    elif not automated_ok:
        reasons.append(_failures(checks))
    live_ok = any(
        c.passed for c, e in zip(checks, declared.automated, strict=True) if isinstance(e, LiveEvidence)
    )
    if automated_ok and item.live_required and not live_ok:
        automated_ok = False
        reasons.append("a monitoring item needs a live check that passed against a running system")
    if automated_ok:
        proxied = [c for c in checks if c.status == PROXY]
        if not proxied:
            return ItemScore(
                item, declared, AUTOMATED, checks, proxy_checks, manual, "all automated evidence passed"
            )
        why = "; ".join(f"{c.target}: {c.proxy_reason}" for c in proxied)
        return ItemScore(item, declared, PROXY, checks, proxy_checks, manual, f"proxy: {why}")
    if declared.proxy is not None:
        if all(c.counts for c in proxy_checks):
            reasons.insert(0, f"proxy: {declared.proxy.reason}")
            return ItemScore(item, declared, PROXY, checks, proxy_checks, manual, "; ".join(reasons))
        reasons.append(f"proxy evidence: {_failures(proxy_checks)}")
    if manual is not None:
        reasons.append(manual.detail)
        if manual.documented:
            return ItemScore(item, declared, MANUAL, checks, proxy_checks, manual, "; ".join(reasons))
    return ItemScore(item, declared, MISSING, checks, proxy_checks, manual, "; ".join(reasons))


def score(rubric: Rubric, evidence_map: EvidenceMap, evidence: Evidence) -> Score:
    sections = [
        SectionScore(s, [score_item(i, evidence_map.get(i.id), evidence) for i in s.items])
        for s in rubric.sections
    ]
    final = min(s.score for s in sections)
    return Score(
        sections=sections,
        band=rubric.band(final),
        evidence=evidence,
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )

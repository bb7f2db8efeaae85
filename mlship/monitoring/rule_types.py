"""Rule objects: recording rules and alerts, rendered to Prometheus rule-file dictionaries.

An alert keeps its ``signals``: the un-thresholded expressions its condition is built from. The live
check evaluates them against the real Prometheus, because an alert expression is rightly empty while
nothing is wrong, but the quantities it compares must have data whenever traffic flows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["page", "ticket"]
DEFAULT_RUNBOOK_BASE_URL = "https://github.com/mlship/mlship/blob/main/docs/runbooks"


def runbook_slug(alert: str) -> str:
    """``CanaryRolloutStuck`` -> ``canary-rollout-stuck`` (the runbook file name without .md)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", alert).lower()


@dataclass(frozen=True)
class Recording:
    record: str
    expr: str
    labels: dict[str, str] = field(default_factory=dict)

    def render(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"record": self.record, "expr": self.expr}
        if self.labels:
            rule["labels"] = dict(self.labels)
        return rule


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    severity: Severity
    summary: str
    description: str
    signals: tuple[str, ...]
    for_: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [s for s in self.signals if s not in self.expr]
        if not self.signals or missing:
            raise ValueError(
                f"alert {self.name}: every signal must appear in its expression, missing {missing}"
            )

    def render(self, runbook_base_url: str) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": self.name, "expr": self.expr}
        if self.for_:
            rule["for"] = self.for_
        rule["labels"] = {"severity": self.severity, **self.labels}
        rule["annotations"] = {
            "summary": self.summary,
            "description": self.description,
            "runbook_url": f"{runbook_base_url.rstrip('/')}/{runbook_slug(self.name)}.md",
        }
        return rule


@dataclass(frozen=True)
class Group:
    """One Prometheus rule group, written to ``<file>.yml``."""

    name: str
    file: str
    rules: tuple[Recording | Alert, ...]

    @property
    def alerts(self) -> list[Alert]:
        return [r for r in self.rules if isinstance(r, Alert)]

    @property
    def recordings(self) -> list[Recording]:
        return [r for r in self.rules if isinstance(r, Recording)]

    def render(self, runbook_base_url: str) -> dict[str, Any]:
        rendered = [r.render(runbook_base_url) if isinstance(r, Alert) else r.render() for r in self.rules]
        return {"name": self.name, "rules": rendered}

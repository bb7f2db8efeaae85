"""The campaign's table: printed with rich, written as JSON (every figure) and Markdown (the table)."""

from __future__ import annotations

import json
import platform
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from devtools.reliability.result import CaseResult

STATUS_STYLE = {"pass": "[green]pass[/]", "fail": "[bold red]FAIL[/]", "skip": "[yellow]skip[/]"}


@dataclass
class Report:
    mode: str  # "full" or "short"
    results: list[CaseResult] = field(default_factory=list)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    seconds: float = 0.0
    area_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        counts = Counter(r.status for r in self.results)
        return {status: counts.get(status, 0) for status in ("pass", "fail", "skip")}

    @property
    def failed(self) -> list[CaseResult]:
        return [r for r in self.results if r.status == "fail"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "started_at": self.started_at,
            "seconds": round(self.seconds, 1),
            "area_seconds": self.area_seconds,
            "host": {"cpus": _cpus(), "python": platform.python_version()},
            "counts": self.counts,
            "cases": [r.to_dict() for r in self.results],
        }


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


def table(report: Report) -> Table:
    out = Table(
        title=f"reliability campaign ({report.mode}): "
        + ", ".join(f"{n} {s}" for s, n in report.counts.items()),
        title_justify="left",
        show_lines=True,
    )
    for column, ratio in (("area", 1), ("case", 3), ("expected", 4), ("observed", 6), ("result", 1)):
        out.add_column(column, ratio=ratio, overflow="fold")
    for r in report.results:
        out.add_row(r.area, r.case, r.expected, r.observed, STATUS_STYLE[r.status])
    return out


def print_table(report: Report, console: Console | None = None) -> None:
    (console or Console()).print(table(report))


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def markdown(report: Report) -> str:
    counts = ", ".join(f"{n} {s}" for s, n in report.counts.items())
    lines = [
        f"# mlship reliability campaign ({report.mode})",
        "",
        f"Started {report.started_at}, {report.seconds:.0f} s, {_cpus()} CPUs: {counts}.",
        "",
        "| area | case | expected | observed | result |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in report.results:
        cells = (r.area, r.case, r.expected, r.observed, r.status.upper() if r.status == "fail" else r.status)
        lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def write(report: Report, json_path: Path) -> tuple[Path, Path]:
    """Write ``json_path`` and the Markdown table next to it (same name, ``.md``)."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    md_path = json_path.with_suffix(".md")
    json_path.write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")
    md_path.write_text(markdown(report), encoding="utf-8")
    return json_path, md_path

"""The score as a rich table (terminal), JSON (``--json``) and a self-contained HTML page (``--html``).

JSON shape (``schema_version`` 1)::

    {"schema_version": 1, "generated_at": ISO-8601,
     "final": {"score": float, "weakest": [section id], "band": "(3, 5]", "interpretation": str},
     "automated": int, "manual": int, "none": int,         # how many of the 28 tests
     "inputs": {"junit": [path], "junit_started": ISO-8601 | null, "junit_counts": {outcome: n},
                "figures_dir": path, "bench_dir": path,
                "prometheus": {"url": str | null, "checked": bool, "detail": str}},
     "sections": [{"id": "data", "title": str, "score": float,
                   "items": [{"id": "data-1", "test": str, "how": str, "points": 0 | 0.5 | 1,
                              "status": "automated" | "manual" | "none", "reason": str,
                              "checks": [{"kind": "pytest" | "figure" | "bench", "target": str,
                                          "status": "passed" | "failed" | "skipped" | "not run" | "missing",
                                          "detail": str}],
                              "live": {... same keys, status also "not checked"} | null,
                              "manual": {"path": str, "status": "documented" | "missing" | "incomplete",
                                         "detail": str} | null}]}]}
"""

from __future__ import annotations

import html
from dataclasses import asdict
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mlship.score.scoring import Score

SCHEMA_VERSION = 1
_STYLE = {"automated": "green", "manual": "yellow", "none": "red"}


def to_dict(score: Score) -> dict[str, Any]:
    ev = score.evidence
    run = ev.run
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": score.generated_at,
        "final": {
            "score": score.final,
            "weakest": score.weakest,
            "band": score.band.label,
            "interpretation": score.band.text,
        },
        "automated": score.count("automated"),
        "manual": score.count("manual"),
        "none": score.count("none"),
        "inputs": {
            "junit": [str(p) for p in (run.paths if run else ev.junit_paths)],
            "junit_found": run is not None,
            "junit_started": run.started.isoformat() if run and run.started else None,
            "junit_counts": run.counts if run else {},
            "figures_dir": str(ev.figures_dir),
            "bench_dir": str(ev.bench_dir),
            "prometheus": {"url": ev.live.url, "checked": ev.live.reachable, "detail": ev.live.detail},
        },
        "sections": [
            {
                "id": s.section.id,
                "title": s.section.title,
                "score": s.score,
                "items": [
                    {
                        "id": i.item.id,
                        "test": i.item.test,
                        "how": i.item.how,
                        "points": i.points,
                        "status": i.status,
                        "reason": i.reason,
                        "checks": [asdict(c) for c in i.checks],
                        "live": asdict(i.live) if i.live else None,
                        "manual": asdict(i.manual) if i.manual else None,
                    }
                    for i in s.items
                ],
            }
            for s in score.sections
        ],
    }


def _points(points: float) -> str:
    return f"{points:g}"


def print_table(score: Score, console: Console) -> None:
    ev = score.evidence
    run = ev.run
    if run is None:
        console.print(f"[yellow]no test report at {', '.join(map(str, ev.junit_paths))}: run `make test`[/]")
    else:
        started = run.started.strftime("%Y-%m-%d %H:%M:%S %Z") if run.started else "unknown time"
        counts = ", ".join(f"{n} {k}" for k, n in sorted(run.counts.items()))
        console.print(f"test report: {', '.join(map(str, run.paths))} ({started}; {counts})")
    console.print(f"live checks: {ev.live.detail}" + ("" if ev.live.reachable else " - not checked"))
    for section in score.sections:
        table = Table(
            title=f"{section.section.title}: {_points(section.score)} / 7", title_justify="left", expand=True
        )
        table.add_column("#", no_wrap=True)
        table.add_column("test (Breck et al. 2017)", ratio=3)
        table.add_column("pts", no_wrap=True, justify="right")
        table.add_column("evidence", ratio=5)
        for i in section.items:
            lines = [f"{c.kind} {c.target}: {c.status}" for c in i.checks]
            if i.live is not None:
                lines.append(f"live {i.live.target}: {i.live.status}")
            if i.manual is not None:
                lines.append(f"manual {i.manual.path}: {i.manual.status}")
            if not lines:
                lines.append(f"{i.reason}: {i.item.how}")
            style = _STYLE[i.status]
            table.add_row(
                i.item.id, escape(i.item.test), f"[{style}]{_points(i.points)}[/]", escape("\n".join(lines))
            )
        console.print(table)
    sections = ", ".join(f"{s.section.id} {_points(s.score)}" for s in score.sections)
    console.print(
        f"[bold]ML Test Score {_points(score.final)}[/] (minimum of {sections}); "
        f"{score.count('automated')} of 28 automated, {score.count('manual')} manual"
    )
    console.print(f"{score.band.label}: {score.band.text}")


_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:75rem;color:#222}
h1{margin-bottom:.2rem} .final{font-size:1.3rem;margin:.5rem 0 1.5rem}
table{border-collapse:collapse;width:100%;margin-bottom:1.5rem;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.35rem .5rem;vertical-align:top;text-align:left}
th{background:#f3f3f3} td.pts{text-align:right;font-weight:bold;white-space:nowrap}
.automated{background:#e6f4ea} .manual{background:#fff4d6} .none{background:#fde8e8}
ul{margin:0;padding-left:1.1rem} .passed{color:#137333} .failed,.missing{color:#b3261e}
.notrun,.skipped,.notchecked{color:#8a6d00} .muted{color:#666;font-size:.85rem}
"""


def to_html(score: Score) -> str:
    d = to_dict(score)
    e = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>mlship ML Test Score</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>ML Test Score</h1>",
        "<p class='muted'>Rubric: Breck, Cai, Nielsen, Salib, Sculley, <i>The ML Test Score: A Rubric for ML "
        "Production Readiness and Technical Debt Reduction</i>, IEEE Big Data 2017. One point per test "
        "automated, half a point when done manually and documented; the final score is the minimum over "
        "the four sections.</p>",
        f"<p class='final'><b>{d['final']['score']:g}</b> &mdash; {e(d['final']['band'])}: "
        f"{e(d['final']['interpretation'])}<br><span class='muted'>{d['automated']} of 28 automated, "
        f"{d['manual']} manual; weakest: {e(', '.join(d['final']['weakest']))}</span></p>",
        "<table><tr><th>section</th><th>score</th></tr>",
        *(f"<tr><td>{e(s['title'])}</td><td>{s['score']:g}</td></tr>" for s in d["sections"]),
        "</table>",
    ]
    inputs = d["inputs"]
    parts.append(
        f"<p class='muted'>Test report: {e(', '.join(inputs['junit']))}"
        f" ({'found' if inputs['junit_found'] else 'not found'}; started {e(str(inputs['junit_started']))}; "
        f"{e(str(inputs['junit_counts']))}). Live: {e(inputs['prometheus']['detail'])}"
        f"{'' if inputs['prometheus']['checked'] else ' (not checked)'}."
        f" Generated {e(d['generated_at'])}.</p>"
    )
    for s in d["sections"]:
        parts.append(f"<h2>{e(s['title'])}: {s['score']:g} / 7</h2>")
        parts.append("<table><tr><th>#</th><th>test</th><th>pts</th><th>how mlship covers it</th>")
        parts.append("<th>evidence</th></tr>")
        for i in s["items"]:
            evidence = [
                f"<li class='{c['status'].replace(' ', '')}'>{e(c['kind'])} <code>{e(c['target'])}</code>: "
                f"{e(c['status'])} <span class='muted'>{e(c['detail'])}</span></li>"
                for c in [*i["checks"], *([i["live"]] if i["live"] else [])]
            ]
            if i["manual"]:
                m = i["manual"]
                evidence.append(f"<li>manual <code>{e(m['path'])}</code>: {e(m['status'])}</li>")
            if not evidence:
                evidence.append(f"<li class='missing'>{e(i['reason'])}</li>")
            parts.append(
                f"<tr class='{i['status']}'><td>{e(i['id'])}</td><td>{e(i['test'])}</td>"
                f"<td class='pts'>{i['points']:g}</td><td>{e(i['how'])}</td>"
                f"<td><ul>{''.join(evidence)}</ul></td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)

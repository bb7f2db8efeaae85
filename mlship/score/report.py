"""The score as a rich table (terminal), JSON (``--json``) and a self-contained HTML page (``--html``).

JSON shape (``schema_version`` 2)::

    {"schema_version": 2, "generated_at": ISO-8601,
     "final": {"score": float, "weakest": [section id], "band": "(3, 5]", "interpretation": str},
     "automated": int, "proxy": int, "manual": int, "missing": int,      # how many of the 28 items
     "inputs": {"evidence_map": path, "commit": str | null, "tree_problem": str | null,
                "junit": [path], "junit_found": bool, "junit_commit": str | null,
                "junit_started": ISO-8601 | null, "junit_counts": {outcome: n}, "run_problem": str | null,
                "figures_dir": path, "bench_dir": path,
                "prometheus": {"url": str | null, "checked": bool, "detail": str}},
     "sections": [{"id": "data", "title": str, "score": float,
                   "items": [{"id": "data-1", "test": str, "how": str, "points": 0 | 0.5 | 1,
                              "status": "automated" | "proxy" | "manual" | "missing", "reason": str,
                              "live_required": bool,
                              "checks": [CHECK], "proxy_checks": [CHECK],
                              "manual": {"path": str, "status": "documented" | "missing" | "incomplete",
                                         "detail": str} | null}]}]}

    CHECK = {"kind": "pytest" | "figure" | "bench" | "live", "target": str,
             "status": "passed" | "proxy" | "failed" | "skipped" | "not run" | "missing" | "not checked"
                       | "not bound",
             "detail": str, "proxy_reason": str}

Changes from schema 1: ``none`` became ``missing``; ``proxy`` (count and status) is new; ``live`` checks
are entries of ``checks`` (kind ``live``); ``proxy_checks`` and ``inputs.commit`` / ``*_problem`` are new.
"""

from __future__ import annotations

import html
from dataclasses import asdict
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mlship.score.scoring import STATUSES, ItemScore, Score

SCHEMA_VERSION = 2
_STYLE = {"automated": "green", "proxy": "cyan", "manual": "yellow", "missing": "red"}


def to_dict(score: Score, evidence_map_path: str = "") -> dict[str, Any]:
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
        **{status: score.count(status) for status in STATUSES},
        "inputs": {
            "evidence_map": evidence_map_path,
            "commit": ev.tree.commit,
            "tree_problem": ev.tree_problem,
            "junit": [str(p) for p in (run.paths if run else ev.junit_paths)],
            "junit_found": run is not None,
            "junit_commit": run.commit if run else None,
            "junit_started": run.started.isoformat() if run and run.started else None,
            "junit_counts": run.counts if run else {},
            "run_problem": ev.run_problem,
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
                        "how": i.how,
                        "points": i.points,
                        "status": i.status,
                        "reason": i.reason,
                        "live_required": i.item.live_required,
                        "checks": [asdict(c) for c in i.checks],
                        "proxy_checks": [asdict(c) for c in i.proxy_checks],
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


def evidence_lines(i: ItemScore) -> list[str]:
    lines = [f"{c.kind} {c.target}: {c.status}" for c in i.checks]
    if i.proxy_checks:
        lines += [f"(proxy) {c.kind} {c.target}: {c.status}" for c in i.proxy_checks]
    if i.manual is not None:
        lines.append(f"manual {i.manual.path}: {i.manual.status}")
    if i.status != "automated":
        lines.append(f"-> {i.reason}")
    return lines


def print_table(score: Score, console: Console) -> None:
    ev = score.evidence
    run = ev.run
    console.print(f"commit: {ev.tree.commit or 'none'}")
    if ev.run_problem:
        console.print(f"[yellow]test run not counted: {escape(ev.run_problem)}[/]")
    if run is not None:
        started = run.started.strftime("%Y-%m-%d %H:%M:%S %Z") if run.started else "unknown time"
        counts = ", ".join(f"{n} {k}" for k, n in sorted(run.counts.items()))
        console.print(f"test report: {', '.join(map(str, run.paths))} ({started}; {counts})")
    console.print(
        f"live checks: {ev.live.detail}" + ("" if ev.live.reachable else " - not checked, not evidenced")
    )
    for section in score.sections:
        table = Table(
            title=f"{section.section.title}: {_points(section.score)} / 7", title_justify="left", expand=True
        )
        table.add_column("#", no_wrap=True)
        table.add_column("test (Breck et al. 2017)", ratio=3)
        table.add_column("status", no_wrap=True)
        table.add_column("pts", no_wrap=True, justify="right")
        table.add_column("evidence", ratio=5)
        for i in section.items:
            style = _STYLE[i.status]
            table.add_row(
                i.item.id,
                escape(i.item.test),
                f"[{style}]{i.status}[/]",
                f"[{style}]{_points(i.points)}[/]",
                escape("\n".join(evidence_lines(i))),
            )
        console.print(table)
    sections = ", ".join(f"{s.section.id} {_points(s.score)}" for s in score.sections)
    counts = ", ".join(f"{score.count(s)} {s}" for s in STATUSES)
    console.print(f"[bold]ML Test Score {_points(score.final)}[/] (minimum of {sections}); {counts}")
    console.print(f"{score.band.label}: {score.band.text}")


_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:75rem;color:#222}
h1{margin-bottom:.2rem} .final{font-size:1.3rem;margin:.5rem 0 1.5rem}
table{border-collapse:collapse;width:100%;margin-bottom:1.5rem;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.35rem .5rem;vertical-align:top;text-align:left}
th{background:#f3f3f3} td.pts{text-align:right;font-weight:bold;white-space:nowrap}
.automated{background:#e6f4ea} .proxy{background:#e3f2fd}
.manual{background:#fff4d6} .missing{background:#fde8e8}
ul{margin:0;padding-left:1.1rem} .passed{color:#137333} .failed,.missing-c,.notbound{color:#b3261e}
.notrun,.skipped,.notchecked,.proxy-c{color:#8a6d00} .muted{color:#666;font-size:.85rem}
"""


def _check_li(c: dict[str, Any], prefix: str = "") -> str:
    e = html.escape
    css = c["status"].replace(" ", "") + ("-c" if c["status"] in ("missing", "proxy") else "")
    return (
        f"<li class='{css}'>{prefix}{e(c['kind'])} <code>{e(c['target'])}</code>: "
        f"{e(c['status'])} <span class='muted'>{e(c['detail'])}</span></li>"
    )


def to_html(score: Score, evidence_map_path: str = "") -> str:
    d = to_dict(score, evidence_map_path)
    e = html.escape
    counts = ", ".join(f"{d[s]} {s}" for s in STATUSES)
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>mlship ML Test Score</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>ML Test Score</h1>",
        "<p class='muted'>Rubric: Breck, Cai, Nielsen, Salib, Sculley, <i>The ML Test Score: A Rubric for ML "
        "Production Readiness and Technical Debt Reduction</i>, IEEE Big Data 2017. One point per test "
        "automated, half a point for a proxy (evidence that stands in for the property) or a documented "
        "manual procedure; the final score is the minimum over the four sections.</p>",
        f"<p class='final'><b>{d['final']['score']:g}</b> &mdash; {e(d['final']['band'])}: "
        f"{e(d['final']['interpretation'])}<br><span class='muted'>{e(counts)}; "
        f"weakest: {e(', '.join(d['final']['weakest']))}</span></p>",
        "<table><tr><th>section</th><th>score</th></tr>",
        *(f"<tr><td>{e(s['title'])}</td><td>{s['score']:g}</td></tr>" for s in d["sections"]),
        "</table>",
    ]
    inputs = d["inputs"]
    problem = inputs["run_problem"]
    parts.append(
        f"<p class='muted'>Commit {e(str(inputs['commit']))}. Evidence map {e(inputs['evidence_map'])}. "
        f"Test report: {e(', '.join(inputs['junit']))}"
        f" ({'found' if inputs['junit_found'] else 'not found'}; started {e(str(inputs['junit_started']))}; "
        f"{e(str(inputs['junit_counts']))})"
        + (f" <b>not counted: {e(problem)}</b>" if problem else "")
        + f". Live: {e(inputs['prometheus']['detail'])}"
        f"{'' if inputs['prometheus']['checked'] else ' (not checked: not evidenced)'}."
        f" Generated {e(d['generated_at'])}.</p>"
    )
    for s in d["sections"]:
        parts.append(f"<h2>{e(s['title'])}: {s['score']:g} / 7</h2>")
        parts.append("<table><tr><th>#</th><th>test</th><th>status</th><th>pts</th>")
        parts.append("<th>how this project covers it</th><th>evidence</th></tr>")
        for i in s["items"]:
            evidence = [_check_li(c) for c in i["checks"]]
            evidence += [_check_li(c, "(proxy) ") for c in i["proxy_checks"]]
            if i["manual"]:
                m = i["manual"]
                evidence.append(f"<li>manual <code>{e(m['path'])}</code>: {e(m['status'])}</li>")
            if i["status"] != "automated":
                evidence.append(f"<li class='muted'>{e(i['reason'])}</li>")
            parts.append(
                f"<tr class='{i['status']}'><td>{e(i['id'])}</td><td>{e(i['test'])}</td>"
                f"<td>{e(i['status'])}</td><td class='pts'>{i['points']:g}</td><td>{e(i['how'])}</td>"
                f"<td><ul>{''.join(evidence)}</ul></td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)

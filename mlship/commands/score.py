"""`mlship score`: the ML Test Score (Breck et al., 2017) of a project, from the evidence it declares."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mlship.config import load_config
from mlship.errors import ExitCode
from mlship.paths import state_dir

app = typer.Typer(help="The ML Test Score of this project.")


@app.command("score")
def score_cmd(
    as_json: Annotated[
        bool, typer.Option("--json", help="print the score as JSON (shape: mlship/score/report.py)")
    ] = False,
    html_path: Annotated[
        Path | None, typer.Option("--html", help="also write a readable HTML report here")
    ] = None,
    evidence: Annotated[
        Path,
        typer.Option(
            "--evidence",
            help="the project's evidence map (which tests, figures, benches, live checks evidence each item)",
        ),
    ] = Path("mlship-score.yaml"),
    junit: Annotated[
        list[Path] | None,
        typer.Option(help="JUnit XML report(s) of the test run (default: <state_dir>/reports/junit.xml)"),
    ] = None,
    prometheus: Annotated[
        str | None, typer.Option(help="Prometheus for live checks (default: the local environment's)")
    ] = None,
    live: Annotated[
        bool, typer.Option("--live/--no-live", help="check the running Prometheus (without: not evidenced)")
    ] = True,
    fail_under: Annotated[
        float | None,
        typer.Option(help=f"exit {int(ExitCode.SCORE_TOO_LOW)} when the final score is below this"),
    ] = None,
) -> None:
    """Score the 28 tests of the ML Test Score from the evidence map, the test run, benchmarks, Prometheus.

    An item earns 1 point when its automated evidence all passed on this commit (monitoring items: with a
    live check against the running system), 0.5 for a proxy or a documented manual procedure, else 0; the
    final score is the minimum over the four sections.
    """
    from mlship.progress import status
    from mlship.score import evidence_map, report, rubric, scoring
    from mlship.score.evidence import Evidence, LiveState

    console = Console()
    loaded = rubric.load()
    declared = evidence_map.load(evidence, loaded)
    root = evidence.resolve().parent
    config = load_config()
    url = prometheus or f"http://127.0.0.1:{config.local.prometheus_port}"
    live_state = LiveState.probe(url if live else None)
    try:
        found = Evidence(
            root=root,
            evidence_map=declared,
            junit_paths=junit or [state_dir() / "reports" / "junit.xml"],
            bench_dir=state_dir() / "bench",
            live=live_state,
        )
        with status("collecting the tests the evidence map names (pytest --collect-only)"):
            result = scoring.score(loaded, declared, found)
    finally:
        live_state.close()
    if html_path is not None:
        html_path.parent.mkdir(parents=True, exist_ok=True)
        html_path.write_text(report.to_html(result, str(evidence)), encoding="utf-8")
    if as_json:
        typer.echo(json.dumps(report.to_dict(result, str(evidence)), indent=2))
    else:
        report.print_table(result, console)
        if html_path is not None:
            console.print(f"HTML report: {html_path}")
    if fail_under is not None and result.final < fail_under:
        raise typer.Exit(ExitCode.SCORE_TOO_LOW)

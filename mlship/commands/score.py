"""`mlship score`: the ML Test Score (Breck et al., 2017) of this system, from real evidence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mlship.config import load_config
from mlship.errors import ExitCode
from mlship.paths import project_root, state_dir

app = typer.Typer(help="The ML Test Score of this system.")


@app.command("score")
def score_cmd(
    as_json: Annotated[
        bool, typer.Option("--json", help="print the score as JSON (shape: mlship/score/report.py)")
    ] = False,
    html_path: Annotated[
        Path | None, typer.Option("--html", help="also write a readable HTML report here")
    ] = None,
    junit: Annotated[
        list[Path] | None,
        typer.Option(
            help="JUnit XML report(s) of the latest test run (default: <state_dir>/reports/junit.xml)"
        ),
    ] = None,
    prometheus: Annotated[
        str | None, typer.Option(help="Prometheus for live checks (default: the local environment's)")
    ] = None,
    live: Annotated[bool, typer.Option("--live/--no-live", help="check the running Prometheus")] = True,
    fail_under: Annotated[
        float | None,
        typer.Option(help=f"exit {int(ExitCode.SCORE_TOO_LOW)} when the final score is below this"),
    ] = None,
) -> None:
    """Score the 28 tests of the ML Test Score from the latest test run, benchmarks and live Prometheus.

    A test earns 1 point when every automated check covering it passed in the latest run, 0.5 when only its
    documented manual procedure exists, else 0; the final score is the minimum over the four sections.
    """
    from mlship.score import report, rubric, scoring
    from mlship.score.evidence import Evidence, LiveState

    console = Console()
    config = load_config()
    url = prometheus or f"http://127.0.0.1:{config.local.prometheus_port}"
    live_state = LiveState.probe(url if live else None)
    try:
        evidence = Evidence(
            repo=project_root(),
            junit_paths=junit or [state_dir() / "reports" / "junit.xml"],
            bench_dir=state_dir() / "bench",
            live=live_state,
        )
        result = scoring.score(rubric.load(), evidence)
    finally:
        live_state.close()
    if html_path is not None:
        html_path.parent.mkdir(parents=True, exist_ok=True)
        html_path.write_text(report.to_html(result), encoding="utf-8")
    if as_json:
        typer.echo(json.dumps(report.to_dict(result), indent=2))
    else:
        report.print_table(result, console)
        if html_path is not None:
            console.print(f"HTML report: {html_path}")
    if fail_under is not None and result.final < fail_under:
        raise typer.Exit(ExitCode.SCORE_TOO_LOW)

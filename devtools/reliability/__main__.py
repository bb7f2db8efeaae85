"""`make reliability` (``python -m devtools.reliability [--short]``): the reliability and security campaign.

One table (case, expected, observed, pass/fail), also written as JSON and Markdown. Exit code 1 when a
case fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mlship.config import load_config
from mlship.paths import state_dir, use_project_bentoml_home

app = typer.Typer(help="Reliability and security campaign.")
console = Console()


@app.command()
def reliability(
    short: Annotated[
        bool, typer.Option("--short", help="the shortened campaign `make test` runs (2-3 minutes)")
    ] = False,
    report_path: Annotated[
        Path | None,
        typer.Option("--report", help="JSON report path; the Markdown table is written next to it (.md)"),
    ] = None,
) -> None:
    """Load, faults, bad input and security scans against a local environment of its own.

    That environment runs on free loopback ports with its state in .mlship/reliability/ (never yours).

    Trains the baseline, candidate and buggy demo models if the registry has none.

    Prints one table (case, expected, observed, pass/fail), also written as JSON and Markdown.

    Exit code 1 when a case fails.
    """
    # The project's model store, as the `mlship` CLI uses it, chosen before BentoML is first imported:
    # the campaign's servers read the models from it after MLSHIP_STATE_DIR moves to the campaign's
    # own state (without this the models were trained into BentoML's default ~/bentoml).
    use_project_bentoml_home()
    from devtools.reliability import campaign, report
    from mlship.model.releases import Releases

    settings = campaign.SHORT if short else campaign.FULL
    project_state = state_dir()
    target = report_path or project_state / "reports" / f"reliability{'-short' if short else ''}.json"
    target = target.resolve()
    config = load_config()
    progress = campaign.console_progress(Console(stderr=True))
    models = campaign.ensure_models(config, progress)
    env = campaign.isolated_environment(config, project_state / "reliability" / "env")
    try:
        progress(f"local environment on {env.proxy_url} (stable {models.baseline})")
        env.up(models.baseline)
        Releases.load().record(models.baseline, "initial")
        result = campaign.run_campaign(env, models, settings, progress=progress)
    finally:
        env.down()
    # Not a terminal (CI logs, a file): wide enough that each row stays readable.
    report.print_table(result, console if console.is_terminal else Console(width=180))
    json_path, md_path = report.write(result, target)
    console.print(f"report: {json_path} and {md_path} ({result.seconds:.0f}s)")
    if result.failed:
        failed = "; ".join(f"{r.area}/{r.case}" for r in result.failed)
        Console(stderr=True).print(f"[bold red]{len(result.failed)} case(s) failed:[/] {failed}")
        raise typer.Exit(1)


if __name__ == "__main__":
    app()

"""`mlship load`: replay patient rows through the proxy and report what came back."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from mlship.config import load_config
from mlship.local import load as loadgen
from mlship.local.environment import LocalEnvironment
from mlship.model import registry

app = typer.Typer()
console = Console()


def _parse_shifts(values: list[str]) -> dict[str, float]:
    shifts = {}
    for item in values:
        name, sep, delta = item.partition("=")
        try:
            if not sep:
                raise ValueError
            shifts[name.strip()] = float(delta)
        except ValueError:
            raise typer.BadParameter(f"--shift expects FEATURE=DELTA (e.g. bmi=5), got {item!r}") from None
    return shifts


@app.command()
def load(
    rps: Annotated[float, typer.Option(min=0.1, max=5000, help="requests per second")] = 20.0,
    duration: Annotated[float, typer.Option(min=0.1, max=86400, help="seconds")] = 10.0,
    url: Annotated[str | None, typer.Option(help="target (default: the local proxy)")] = None,
    shift: Annotated[list[str] | None, typer.Option(help="FEATURE=DELTA: shift a feature (drift)")] = None,
    invalid_share: Annotated[float, typer.Option(min=0.0, max=0.99, help="share of invalid requests")] = 0.0,
    outcome_share: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="share of answered requests whose true target goes to /feedback (default: config)",
        ),
    ] = None,
    outcome_delay: Annotated[
        float | None,
        typer.Option(
            min=1.0,  # a sooner outcome can reach another server before the prediction is stored (404)
            max=3600,
            help="seconds between answer and outcome, at least 1 (default: config)",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Replay patient rows at a constant rate; report sent/ok/4xx/5xx and latency percentiles."""
    config = load_config()
    target = url or LocalEnvironment(config).proxy_url
    loadgen.require_target(target, explicit=url is not None)
    rows, targets = loadgen.traffic_population(seed=config.model.seed, test_size=config.model.test_size)
    share = config.feedback.outcome_share if outcome_share is None else outcome_share
    outcomes = (
        loadgen.Outcomes(
            targets=targets,
            share=share,
            delay_s=config.feedback.outcome_delay_s if outcome_delay is None else outcome_delay,
            duplicate_every=round(1 / invalid_share) if invalid_share > 0 else 0,
        )
        if share > 0
        else None
    )
    shifts = _parse_shifts(shift or [])
    if shifts:
        models = registry.list_models(config.model.name)
        if not models:
            raise typer.BadParameter("--shift needs a registered model's schema: run `mlship model train`")
        try:
            rows = loadgen.shift_rows(rows, shifts, models[-1].schema.features)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
    total = int(rps * duration)
    if as_json:
        report = loadgen.run_load(
            target, rows, rps=rps, duration_s=duration, invalid_share=invalid_share, outcomes=outcomes
        )
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    with Progress(
        TextColumn("[bold]load[/] {task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(f"{rps:g} req/s to {target}", total=total)
        report = loadgen.run_load(
            target,
            rows,
            rps=rps,
            duration_s=duration,
            invalid_share=invalid_share,
            on_tick=lambda r: progress.update(task, completed=r.sent),
            outcomes=outcomes,
        )
    print_report(report)


def print_report(report: loadgen.LoadReport) -> None:
    table = Table(title=f"load: {report.target}", title_justify="left")
    for col in ("sent", "ok", "4xx", "5xx", "failed", "req/s", "p50 ms", "p90 ms", "p99 ms", "versions"):
        table.add_column(col, justify="right")
    lat = report.latency_ms
    table.add_row(
        str(report.sent),
        str(report.ok),
        str(report.client_errors),
        str(report.server_errors),
        str(report.failed),
        f"{report.achieved_rps:g}",
        str(lat.get("p50", "-")),
        str(lat.get("p90", "-")),
        str(lat.get("p99", "-")),
        ", ".join(f"{v}:{n}" for v, n in sorted(report.versions.items())),
    )
    console.print(table)
    if report.outcomes_sent:
        console.print(
            f"outcomes sent to /feedback: {report.outcomes_sent} ({report.outcomes_accepted} accepted, "
            f"{report.outcomes_refused} refused, {report.outcomes_failed} failed); "
            "online quality: `mlship feedback report`"
        )

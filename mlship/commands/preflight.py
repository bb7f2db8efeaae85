"""`mlship preflight`: run a stack's rendered model pods in Docker as their spec says, before `pulumi up`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mlship.config import load_config
from mlship.errors import ExitCode
from mlship.progress import status

app = typer.Typer(help="Run a stack's model pods locally before deploying them.")
console = Console()
err = Console(stderr=True, soft_wrap=True)


@app.command("preflight")
def preflight(
    stack: Annotated[str, typer.Option("--stack", "-s", help="Pulumi stack: dev, staging, prod, ...")],
    program: Annotated[
        Path | None, typer.Option(help="Pulumi program directory (default: the repository's pulumi/)")
    ] = None,
    image_repository: Annotated[
        str | None, typer.Option(help="run this image repository instead of the stack's (same tags)")
    ] = None,
    canary: Annotated[
        str | None,
        typer.Option(help="also run VERSION as the model's canary (what `mlship canary start` deploys)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the report as JSON on stdout")] = False,
) -> None:
    """Render STACK and run each model pod (stable, canary) in Docker exactly as its spec says.

    Checks the image, the security context, every probe, one valid and one invalid prediction, the
    metrics the ServiceMonitor scrapes, and a graceful stop. Exit code 6 names the failing check.
    """
    from mlship.k8s import preflight as runner
    from mlship.paths import project_root

    program = program or project_root() / "pulumi"
    release = (load_config().model.name, canary) if canary is not None else None
    with status(f"preflight of stack {stack}: rendering, then running its model pods in Docker"):
        report = runner.preflight(stack, program, image_repository=image_repository, canary=release)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for pod in report.pods:
            table = Table(title=f"{pod.deployment} ({pod.image})", title_justify="left")
            for column in ("check", "result", "detail", "s"):
                table.add_column(column)
            for check in pod.checks:
                mark = "[green]ok[/]" if check.ok else "[red]FAILED[/]"
                table.add_row(check.name, mark, check.detail.splitlines()[0][:90], f"{check.seconds:.1f}")
            console.print(table)
    if not report.ok:
        failures = report.failures() or ["no model pod in the rendered stack"]
        err.print(
            f"[bold red]preflight failed[/] ({len(failures)}): "
            + "; ".join(f.splitlines()[0] for f in failures)
        )
        raise typer.Exit(ExitCode.VALIDATION_FAILED)
    err.print(
        f"preflight of {stack} passed: {len(report.pods)} pod(s) in {report.seconds:.0f}s; "
        f"next: `pulumi up -s {stack}`"
    )

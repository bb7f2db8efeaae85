"""`mlship local up|down|status`: the local environment (real processes on loopback)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mlship.config import load_config
from mlship.local.environment import LocalEnvironment
from mlship.model.releases import Releases

app = typer.Typer(
    help="The local environment: BentoML servers behind HAProxy, Prometheus.", no_args_is_help=True
)
console = Console()
err = Console(stderr=True)


@app.command()
def up(
    model: Annotated[
        str | None, typer.Option("--model", help="version to serve as stable (first start only)")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="serve a --model the quality gate has not blessed (recorded)")
    ] = False,
) -> None:
    """Start (or complete) the local environment; running twice is harmless.

    A --model must be blessed by the quality gate (`mlship model validate`), unless --force. With a canary
    rollout active, its canary and routing (weights, mirroring) are restored too, whatever restarted.
    """
    from mlship.canary.backends.local import local_up

    env = LocalEnvironment(load_config())
    restored = local_up(env, model, force=force)
    stable = next(s for s in restored.statuses if s.name == "stable")
    if stable.version:
        Releases.load().record(stable.version, "initial")
    _print(env)
    if restored.warning:
        err.print(f"warning: the canary rollout was not restored: {restored.warning}", soft_wrap=True)
    if restored.rollout is not None:
        rollout = restored.rollout
        where = "shadow (mirrored traffic)" if rollout.phase == "shadow" else f"{rollout.weight}% of traffic"
        console.print(f"rollout {rollout.rollout_id} active: canary {rollout.canary_version} at {where}")
        if restored.record is not None:
            console.print(f"restored: found {restored.record.found}; {restored.record.action}")
        console.print(f"resume it with `mlship canary run {rollout.canary_version}`")


@app.command()
def down() -> None:
    """Stop exactly the processes mlship started."""
    env = LocalEnvironment(load_config())
    stopped = env.down()
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@app.command("status")
def status_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Show each component: running, ready, version, address, log file."""
    env = LocalEnvironment(load_config())
    if as_json:
        typer.echo(json.dumps(env.status_dict(), indent=2))
        return
    _print(env)


def _print(env: LocalEnvironment) -> None:
    table = Table(title="local environment", title_justify="left")
    for col in ("component", "state", "version", "address", "log"):
        table.add_column(col)
    for s in env.status():
        state = "[green]ready[/]" if s.ready else "[yellow]starting[/]" if s.running else "[dim]stopped[/]"
        table.add_row(s.name, state, s.version or "", s.url or "", s.log or "")
    console.print(table)
    console.print(f"predict: POST {env.proxy_url}/predict    Prometheus: {env.prometheus_url}")

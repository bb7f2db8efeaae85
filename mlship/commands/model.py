"""`mlship model train|list|show`: the model registry (BentoML model store)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from mlship.config import load_config
from mlship.errors import ExitCode
from mlship.model import registry, training
from mlship.progress import status

app = typer.Typer(help="Train, list and inspect registered models.", no_args_is_help=True)
console = Console()


@app.command()
def train(
    variant: Annotated[str, typer.Option(help=f"one of {', '.join(training.VARIANTS)}")] = "baseline",
    seed: Annotated[
        int | None, typer.Option(help="split/training seed (default: model.seed in mlship.yaml)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Train on the bundled diabetes data and register the model (same data + seed = same version)."""
    config = load_config()
    if variant not in training.VARIANTS:
        raise typer.BadParameter(f"unknown variant {variant!r}; choose from {', '.join(training.VARIANTS)}")
    with status(f"training {variant}"):
        trained = training.train(
            variant,
            seed=config.model.seed if seed is None else seed,
            test_size=config.model.test_size,
            name=config.model.name,
        )
        record, created = registry.register(trained, config.model.name)
    if as_json:
        typer.echo(
            json.dumps({"tag": record.tag, "created": created, "metadata": record.metadata}, default=str)
        )
        return
    verb = "registered" if created else "already registered"
    m = record.metadata["metrics"]
    console.print(f"{verb} [bold]{record.tag}[/] ({variant}): held-out RMSE {m['rmse']}, R2 {m['r2']}")


@app.command("list")
def list_cmd(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Registered models, oldest first, with variant, metrics and quality-gate verdict."""
    config = load_config()
    records = registry.list_models(config.model.name)
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "tag": r.tag,
                        "variant": r.labels.get("variant"),
                        "metrics": r.metadata.get("metrics"),
                        "blessed": r.blessed,
                        "created": r.created.isoformat(),
                    }
                    for r in records
                ],
                indent=2,
            )
        )
        return
    if not records:
        console.print(registry.NO_MODEL)
        return
    table = Table(title=f"models: {config.model.name}", title_justify="left")
    for col in ("version", "variant", "algorithm", "rmse", "r2", "gate", "created"):
        table.add_column(col)
    for r in records:
        gate = r.gate
        verdict = "-" if gate is None else ("[green]blessed[/]" if gate.get("blessed") else "[red]vetoed[/]")
        m = r.metadata.get("metrics", {})
        table.add_row(
            r.version,
            r.labels.get("variant", ""),
            r.metadata.get("algorithm", ""),
            str(m.get("rmse", "")),
            str(m.get("r2", "")),
            verdict,
            r.created.strftime("%Y-%m-%d %H:%M:%S"),
        )
    console.print(table)


@app.command()
def show(version: str) -> None:
    """Metadata, schema and gate verdict of one model."""
    config = load_config()
    record = registry.resolve(config.model.name, version)
    typer.echo(
        json.dumps(
            {
                "tag": record.tag,
                "labels": record.labels,
                "metadata": record.metadata,
                "gate": record.gate,
                "schema": record.schema.model_dump(mode="json"),
            },
            indent=2,
            default=str,
        )
    )


@app.command()
def validate(
    candidate: Annotated[str, typer.Argument(help="version (or tag) to validate")],
    against: Annotated[
        str | None, typer.Option(help="version to compare with (default: the current stable release)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Quality gate: bless or veto CANDIDATE; the verdict is stored with the model. Exit 9 on veto."""
    from mlship.model import gate
    from mlship.model.releases import Releases

    config = load_config()
    record = registry.resolve(config.model.name, candidate)
    reference = against or Releases.load().stable
    current = registry.resolve(config.model.name, reference) if reference else None
    if current is not None and current.tag == record.tag:
        current = None
    with status(f"validating {record.tag}" + (f" against {current.tag}" if current else "")):
        verdict = gate.validate(record, current, config.gate)
    registry.save_gate(record, verdict)
    if as_json:
        typer.echo(json.dumps(verdict, indent=2))
    else:
        table = Table(
            title=f"quality gate: {record.tag}" + (f" vs {current.tag}" if current else ""),
            title_justify="left",
        )
        table.add_column("check")
        table.add_column("result")
        table.add_column("detail")
        for check in verdict["checks"]:
            table.add_row(
                check["name"], "[green]pass[/]" if check["passed"] else "[red]FAIL[/]", check["detail"]
            )
        console.print(table)
        console.print("[bold green]BLESSED[/]" if verdict["blessed"] else "[bold red]VETOED[/]")
    if not verdict["blessed"]:
        raise typer.Exit(ExitCode.MODEL_VETOED)


@app.command("export")
def export_cmd(
    version: Annotated[str, typer.Argument(help="version (or tag) to export")],
    out: Annotated[Path, typer.Option(help="folder for the archive and its SHA256SUMS line")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Write a model with its quality-gate verdict as one archive (for another machine's registry)."""
    from mlship.model import transfer

    config = load_config()
    done = transfer.export_model(registry.resolve(config.model.name, version), out)
    _transferred(done, "exported", as_json)


@app.command("import")
def import_cmd(
    source: Annotated[Path, typer.Argument(help="the folder `mlship model export` wrote, or its archive")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Import an exported model after checking it against SHA256SUMS; its gate verdict comes with it."""
    from mlship.model import transfer

    done = transfer.import_model(source)
    _transferred(done, "imported" if done.created else "already registered", as_json)


def _transferred(done: Any, verb: str, as_json: bool) -> None:
    if as_json:
        typer.echo(
            json.dumps({"tag": done.tag, "archive": str(done.archive), "blessed": done.blessed, "verb": verb})
        )
        return
    gate = (
        "[green]blessed[/]" if done.blessed else "[red]not blessed[/] (`mlship canary start` needs --force)"
    )
    console.print(f"{verb} [bold]{done.tag}[/] ({done.archive}): {gate}")

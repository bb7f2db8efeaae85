"""`mlship model train|list|show|validate|spec|review|staleness`: the model registry (BentoML model store)."""

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


@app.command()
def spec(
    version: Annotated[str, typer.Argument(help="version (or tag) whose spec to print")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The model's spec (what decides what it learns, and the commit of its code) and the spec's hash.

    A reviewer reads this, then records the review with the hash: `mlship model review VERSION --by NAME
    --spec-hash HASH`.
    """
    from mlship.model import approval

    record = registry.resolve(load_config().model.name, version)
    body = {"model": record.tag, "spec_hash": approval.spec_hash(record), "spec": approval.spec(record)}
    if as_json:
        typer.echo(json.dumps(body, indent=2, default=str))
        return
    console.print_json(json.dumps(body["spec"], default=str))
    console.print(f"spec hash of {record.tag}: [bold]{body['spec_hash']}[/]")


@app.command()
def review(
    version: Annotated[str, typer.Argument(help="version (or tag) whose spec was reviewed")],
    by: Annotated[str, typer.Option("--by", help="the reviewer (name or email); not the model's author")],
    spec_hash: Annotated[
        str, typer.Option("--spec-hash", help="the hash `mlship model spec VERSION` showed the reviewer")
    ],
    note: Annotated[str, typer.Option(help="what was reviewed, a link to the discussion")] = "",
) -> None:
    """Record that BY reviewed VERSION's spec (ML Test Score, Model 1); `canary start` requires it.

    Refused (nothing recorded) when BY trained the model or wrote its commit, when the spec's hash is not
    the one given (it changed since it was read), or when the model was trained from uncommitted code.
    """
    from mlship.model import approval
    from mlship.paths import project_root

    record = registry.resolve(load_config().model.name, version)
    done = approval.review(record, by, seen_hash=spec_hash, note=note, root=project_root())
    console.print(
        f"review of {record.tag} recorded: {done.reviewer}, spec {done.spec_hash[:12]}, commit {done.commit}"
    )


@app.command()
def staleness(
    version: Annotated[str, typer.Argument(help="version (or tag) whose recipe to measure")],
    data_file: Annotated[
        Path, typer.Option("--data", help="CSV with the model's features, target and a timestamp")
    ],
    time_column: Annotated[str, typer.Option(help="the timestamp column")],
    window_days: Annotated[float, typer.Option(help="training window length")] = 90.0,
    test_days: Annotated[float, typer.Option(help="newest days scored")] = 30.0,
    ages: Annotated[
        str, typer.Option(help="training-window ages in days, comma-separated")
    ] = "0,15,30,60,90",
    tolerance: Annotated[float, typer.Option(help="relative RMSE growth at which a model is stale")] = 0.05,
) -> None:
    """Measure how VERSION's recipe degrades with the age of its data, on timestamped data (Model 4).

    Stores the curve with the model (staleness.json); its server then exports the age at which the curve
    crosses TOLERANCE as `mlship_model_max_age_seconds`, the limit `ModelStale` fires at for that model.
    """
    import pandas as pd

    from mlship.model.checks import staleness as measure

    record = registry.resolve(load_config().model.name, version)
    try:
        frame = pd.read_csv(data_file)
        age_list = [float(a) for a in ages.split(",") if a.strip()]
        with status(f"training the recipe of {record.tag} on aged windows"):
            points = measure.measure_by_time(
                record.load_estimator(),
                record.metadata["feature_version"],
                frame,
                time_column,
                ages_days=age_list,
                window_days=window_days,
                test_days=test_days,
            )
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from None
    limit = measure.max_age_days(points, tolerance)
    registry.save_staleness(
        record,
        {
            "time_basis": "timestamps",
            "data": str(data_file),
            "time_column": time_column,
            "tolerance": tolerance,
            "max_age_days": limit,
            "points": measure.as_records(points),
        },
    )
    for p in points:
        console.print(f"  age {p.age_days:>5g} d: RMSE {p.rmse:.2f} ({p.degradation:+.1%})")
    if limit is None:
        console.print(f"no measured age degrades by {tolerance:.0%}: no limit stored beyond the curve")
    else:
        console.print(
            f"stale after [bold]{limit:g} days[/] (RMSE +{tolerance:.0%}); stored with {record.tag}"
        )


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

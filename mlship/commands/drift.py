"""`mlship drift --against training`: per-feature drift of served data, read from Prometheus."""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mlship.config import load_config
from mlship.errors import ExitCode
from mlship.monitoring.drift_report import DriftReport, collect, registry_kinds
from mlship.promclient import Prometheus

app = typer.Typer(help="Drift of served data against the training reference.")
console = Console()
_DURATION = re.compile(r"^[1-9][0-9]*[smhdw]$")


class Against(StrEnum):
    training = "training"


def _window(value: str) -> str:
    if not _DURATION.match(value):
        raise typer.BadParameter(f"{value!r} is not a Prometheus duration such as 30m, 1h or 1d")
    return value


@app.command("drift")
def drift_cmd(
    against: Annotated[
        Against, typer.Option("--against", help="reference to compare served data with")
    ] = Against.training,
    window: Annotated[
        str, typer.Option("--window", callback=_window, help="served data over this Prometheus duration")
    ] = "1h",
    prometheus_url: Annotated[
        str | None,
        typer.Option("--prometheus-url", help="Prometheus to read (default: the local environment's)"),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="machine-readable output (schema: docs/monitoring.md)")
    ] = False,
    fail_on_drift: Annotated[
        bool,
        typer.Option("--fail-on-drift", help=f"exit {int(ExitCode.DRIFT_FOUND)} when any verdict is drift"),
    ] = False,
) -> None:
    """Per feature and model version: PSI, chi-square and KS against the training data, with a verdict.

    Drift: PSI over drift.psi_threshold and the test (KS numeric, chi-square categorical) under drift.p_value.
    """
    config = load_config()
    url = prometheus_url or f"http://127.0.0.1:{config.local.prometheus_port}"
    prometheus = Prometheus(url)
    try:
        report = collect(prometheus, config, window=window, kinds=registry_kinds(config.model.name))
    finally:
        prometheus.close()
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print(report)
    if fail_on_drift and report.drift:
        raise typer.Exit(ExitCode.DRIFT_FOUND)


_STYLE = {"drift": "bold red", "no drift": "green", "insufficient data": "yellow"}


def _p(value: float) -> str:
    return f"{value:.2e}" if value < 1e-3 else f"{value:.3f}"


def _print(report: DriftReport) -> None:
    table = Table(
        title=f"drift against {report.against}, last {report.window} "
        f"(PSI > {report.psi_threshold} and p < {report.p_value})",
        title_justify="left",
    )
    for column in (
        "role",
        "version",
        "feature",
        "kind",
        "n",
        "PSI",
        "test",
        "statistic",
        "p-value",
        "verdict",
    ):
        table.add_column(
            column, justify="right" if column in ("n", "PSI", "statistic", "p-value") else "left"
        )
    for version in report.versions:
        for f in version.features:
            used = f.ks if f.test == "ks" and f.ks is not None else f.chi2
            table.add_row(
                version.role,
                version.model_version,
                f.feature,
                f.kind,
                f"{f.observations:.0f}",
                f"{f.psi:.3f}",
                "KS" if f.test == "ks" else f"chi2 (df {f.chi2.df})",
                f"{used.statistic:.3f}",
                _p(f.p_value),
                f"[{_STYLE[f.verdict]}]{f.verdict}[/]",
            )
        if version.predictions is not None:
            p = version.predictions
            table.add_row(
                version.role,
                version.model_version,
                "(predictions)",
                "numeric",
                f"{p.observations:.0f}",
                "",
                "KS",
                f"{p.ks.statistic:.3f}",
                _p(p.ks.p_value),
                f"[{_STYLE[p.verdict]}]{p.verdict}[/]",
            )
    console.print(table)
    if any(f.kind == "unknown" for v in report.versions for f in v.features):
        console.print(
            "[dim]kind unknown: model version not in the local registry, chi-square used for every feature[/]"
        )

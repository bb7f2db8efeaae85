"""Panel helpers on top of grafana-foundation-sdk: one style for every mlship dashboard.

Panels read the data source chosen in the dashboard's variables (``datasource`` for Prometheus,
``loki`` for Loki), so the same JSON works with whatever the Grafana instance names them.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import (
    bargauge,
    dashboard,
    heatmap,
    logs,
    loki,
    prometheus,
    stat,
    table,
    timeseries,
)
from grafana_foundation_sdk.builders.common import GraphThresholdsStyleConfig, VizLegendOptions
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.common import (
    BarGaugeDisplayMode,
    GraphThresholdsStyleMode,
    LegendDisplayMode,
    LegendPlacement,
    LogsSortOrder,
    VizOrientation,
)
from grafana_foundation_sdk.models.dashboard import DataSourceRef, Threshold, ThresholdsMode
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from mlship import names
from mlship.monitoring import promql as q

PROMETHEUS = DataSourceRef(type_val="prometheus", uid="${datasource}")
LOKI = DataSourceRef(type_val="loki", uid="${loki}")
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    instant: bool = False
    heatmap: bool = False


def prometheus_variable() -> dashboard.DatasourceVariable:
    return dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus")


def loki_variable() -> dashboard.DatasourceVariable:
    return dashboard.DatasourceVariable("loki").label("Loki").type("loki")


def base(title: str, uid: str, description: str, tags: Sequence[str] = ()) -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["mlship", *tags])
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
        .readonly()
        .with_variable(prometheus_variable())
    )


def _targets(queries: Sequence[Query]) -> list[cogbuilder.Builder[cogvariants.Dataquery]]:
    targets: list[cogbuilder.Builder[cogvariants.Dataquery]] = []
    for ref, query in zip(string.ascii_uppercase, queries, strict=False):
        target = (
            prometheus.Dataquery()
            .ref_id(ref)
            .expr(query.expr)
            .legend_format(query.legend)
            .datasource(PROMETHEUS)
        )
        target = target.instant() if query.instant else target.range()
        if query.heatmap:
            target = target.format(PromQueryFormat.HEATMAP)
        targets.append(target)
    return targets


def _thresholds(limit: float | None) -> dashboard.ThresholdsConfig:
    steps = [Threshold(value=None, color="green")]
    if limit is not None:
        steps.append(Threshold(value=limit, color="red"))
    return dashboard.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps)


def graph(
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    unit: str = "short",
    limit: float | None = None,
    width: int = 12,
    height: int = 8,
    minimum: float | None = None,
) -> timeseries.Panel:
    """Time series; ``limit`` draws the alert threshold as a dashed red line."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .targets(_targets(queries))
        .unit(unit)
        .span(width)
        .height(height)
        .legend(
            VizLegendOptions()
            .display_mode(LegendDisplayMode.TABLE)
            .placement(LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
        .thresholds(_thresholds(limit))
    )
    if limit is not None:
        panel = panel.thresholds_style(GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.DASHED))
    if minimum is not None:
        panel = panel.min(minimum)
    return panel


def single(
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    unit: str = "short",
    limit: float | None = None,
    width: int = 6,
    height: int = 5,
) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .targets(_targets(queries))
        .unit(unit)
        .span(width)
        .height(height)
        .thresholds(_thresholds(limit))
    )


def bars(
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    unit: str = "short",
    limit: float | None = None,
    width: int = 12,
    height: int = 8,
) -> bargauge.Panel:
    return (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .targets(_targets(queries))
        .unit(unit)
        .span(width)
        .height(height)
        .orientation(VizOrientation.HORIZONTAL)
        .display_mode(BarGaugeDisplayMode.GRADIENT)
        .thresholds(_thresholds(limit))
    )


def histogram_heatmap(
    title: str, description: str, expr: str, *, width: int = 12, height: int = 8
) -> heatmap.Panel:
    """Buckets of a Prometheus histogram over time (``expr`` sums rate(..._bucket) by le)."""
    return (
        heatmap.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .targets(_targets([Query(expr, "{{le}}", heatmap=True)]))
        .calculate(False)
        .span(width)
        .height(height)
    )


def grid(
    title: str, description: str, queries: Sequence[Query], *, width: int = 12, height: int = 6
) -> table.Panel:
    return (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .targets(_targets(queries))
        .span(width)
        .height(height)
    )


def log_graph(title: str, description: str, expr: str, legend: str, *, width: int = 12) -> timeseries.Panel:
    target = loki.Dataquery().ref_id("A").expr(expr).legend_format(legend).datasource(LOKI)
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(LOKI)
        .with_target(target)
        .unit("short")
        .span(width)
        .height(8)
    )


def log_lines(title: str, description: str, expr: str) -> logs.Panel:
    target = loki.Dataquery().ref_id("A").expr(expr).max_lines(500).datasource(LOKI)
    return (
        logs.Panel()
        .title(title)
        .description(description)
        .datasource(LOKI)
        .with_target(target)
        .span(24)
        .height(12)
        .show_time(True)
        .wrap_log_message(True)
        .sort_order(LogsSortOrder.DESCENDING)
    )


# --- PromQL shared by the dashboards ----------------------------------------------------------


def with_version(expr: str) -> str:
    """Attach ``model_version`` to a per-instance series (BentoML's metrics do not carry it).

    Joined per scrape target: a target serves exactly one model version, so the join stays valid
    while a rolling update runs two versions side by side.
    """
    info = q.sel(names.METRIC_MODEL_INFO, q.MODEL_JOB)
    versions = f"max by (namespace, instance, model_version) ({info})"
    return f"{expr}\n* on (namespace, instance) group_left (model_version)\n{versions}"

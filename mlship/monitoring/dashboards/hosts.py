"""Hosts: node exporter's view of every machine (up, CPU, memory, disk)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from mlship.monitoring import promql as q
from mlship.monitoring.dashboards.panels import RATE, Query, base, graph
from mlship.monitoring.host_rules import DISK_FREE, MEMORY_FREE
from mlship.monitoring.limits import LIMITS


def build() -> dashboard.Dashboard:
    cpu = q.sel("node_cpu_seconds_total", q.NODE_JOB, 'mode="idle"')
    load = q.sel("node_load1", q.NODE_JOB)
    cores = q.sel("node_cpu_seconds_total", q.NODE_JOB, 'mode="idle"')
    return (
        base("mlship / Hosts", "mlship-hosts", "Machines running mlship, from node exporter.", ["hosts"])
        .with_panel(
            graph(
                "Hosts up",
                "1 when Prometheus scrapes the host's node exporter.",
                [Query(q.sel("up", q.NODE_JOB), "{{instance}}")],
                minimum=0,
            )
        )
        .with_panel(
            graph(
                "CPU busy",
                "Share of CPU time not idle, per host.",
                [Query(f"1 - avg by (instance) (rate({cpu}[{RATE}]))", "{{instance}}")],
                unit="percentunit",
                minimum=0,
            )
        )
        .with_panel(
            graph(
                "Load per core",
                "1-minute load average divided by the number of cores.",
                [Query(f"{load}\n/ on (instance)\ncount by (instance) ({cores})", "{{instance}}")],
                minimum=0,
            )
        )
        .with_panel(
            graph(
                "Memory available",
                "Share of memory available without swapping; dashed: the HostMemoryLow limit.",
                [Query(MEMORY_FREE, "{{instance}}")],
                unit="percentunit",
                limit=LIMITS.memory_available_ratio,
                minimum=0,
            )
        )
        .with_panel(
            graph(
                "Disk free",
                "Free share of each real filesystem; dashed: the HostDiskAlmostFull limit.",
                [Query(DISK_FREE, "{{instance}} {{mountpoint}}")],
                unit="percentunit",
                limit=LIMITS.disk_free_ratio,
                minimum=0,
                width=24,
            )
        )
    )

"""Host rules from node exporter: node down, disk almost full or filling up, memory pressure."""

from __future__ import annotations

from mlship.monitoring import promql as q
from mlship.monitoring.limits import LIMITS, Limits
from mlship.monitoring.rule_types import Alert, Group, Recording

# Pseudo and in-memory filesystems are not disks that can fill up.
REAL_FS = 'fstype!~"tmpfs|ramfs|devtmpfs|squashfs|overlay|nsfs|fuse\\\\..*"'
DISK_FREE = "mlship:node_filesystem_avail:ratio"
MEMORY_FREE = "mlship:node_memory_available:ratio"


def host_group(limits: Limits = LIMITS) -> Group:
    fs = (q.NODE_JOB, REAL_FS)
    avail = q.sel("node_filesystem_avail_bytes", *fs)
    writable = f"{q.sel('node_filesystem_readonly', *fs)} == 0"
    up = q.sel("up", q.NODE_JOB)
    filling = f"predict_linear({avail}[6h], 24 * 3600)"
    disk_limit = q.number(limits.disk_free_ratio)
    memory_limit = q.number(limits.memory_available_ratio)
    rules: list[Recording | Alert] = [
        Recording(DISK_FREE, f"{avail}\n/\n{q.sel('node_filesystem_size_bytes', *fs)}"),
        Recording(
            MEMORY_FREE,
            f"{q.sel('node_memory_MemAvailable_bytes', q.NODE_JOB)}\n/\n"
            f"{q.sel('node_memory_MemTotal_bytes', q.NODE_JOB)}",
        ),
        Alert(
            name="HostDown",
            expr=f"{up} == 0",
            for_="2m",
            severity="page",
            summary="Host {{ $labels.instance }} is down",
            description="Prometheus cannot scrape node exporter on {{ $labels.instance }} for 2 minutes.",
            signals=(up,),
        ),
        Alert(
            name="HostDiskAlmostFull",
            expr=f"{DISK_FREE} < {disk_limit}\nand\n{writable}",
            for_="15m",
            severity="ticket",
            summary="Disk {{ $labels.mountpoint }} on {{ $labels.instance }} is almost full",
            description=(
                "Only {{ $value | humanizePercentage }} of {{ $labels.mountpoint }} "
                "on {{ $labels.instance }} "
                f"is free (limit {q.number(limits.disk_free_ratio * 100)}%)."
            ),
            signals=(DISK_FREE,),
        ),
        Alert(
            name="HostDiskFillingUp",
            expr=f"{filling} < 0\nand\n{DISK_FREE} < 0.4\nand\n{writable}",
            for_="1h",
            severity="ticket",
            summary="Disk {{ $labels.mountpoint }} on {{ $labels.instance }} will be full within 24 hours",
            description=(
                "At the rate of the last 6 hours, {{ $labels.mountpoint }} on {{ $labels.instance }} "
                "runs out of space within 24 hours."
            ),
            signals=(filling, DISK_FREE),
        ),
        Alert(
            name="HostMemoryLow",
            expr=f"{MEMORY_FREE} < {memory_limit}",
            for_="15m",
            severity="ticket",
            summary="Host {{ $labels.instance }} is short of memory",
            description=(
                "Only {{ $value | humanizePercentage }} of memory is available on {{ $labels.instance }} "
                f"(limit {q.number(limits.memory_available_ratio * 100)}%)."
            ),
            signals=(MEMORY_FREE,),
        ),
    ]
    return Group(name="mlship-hosts", file="hosts", rules=tuple(rules))

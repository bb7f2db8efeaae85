"""Publish the rollout's state as Prometheus metrics (textfile collector of the node exporter).

The local environment's node exporter reads ``*.prom`` files from its textfile directory, so the
canary dashboard and the rollout alerts see the rollout's phase, weight and verdicts next to the
router's and servers' own metrics. On Kubernetes the weights live in the HTTPRoute and the runner's
verdicts are in its decision log.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlship import names
from mlship.canary.state import RolloutState

PHASES = ("shadow", "progressing", "promoted", "rolled_back", "expired")
DECISIONS = ("wait", "advance", "rollback")
DIFFERENCE_RESULTS = ("repaired", "failed")
FILE_NAME = "mlship_canary.prom"


def render(state: RolloutState) -> str:
    labels = f'canary_version="{state.canary_version}",stable_version="{state.stable_version}"'
    lines = [
        "# HELP mlship_canary_weight Canary share of user traffic, percent.",
        "# TYPE mlship_canary_weight gauge",
        f"mlship_canary_weight{{{labels}}} {state.weight if state.active else 0}",
        "# HELP mlship_canary_phase Rollout phase (1 for the current phase).",
        "# TYPE mlship_canary_phase gauge",
        *(f'mlship_canary_phase{{{labels},phase="{p}"}} {int(state.phase == p)}' for p in PHASES),
        "# HELP mlship_canary_step Index of the current traffic step (-1: shadow phase).",
        "# TYPE mlship_canary_step gauge",
        f"mlship_canary_step{{{labels}}} {state.step_index}",
        "# HELP mlship_canary_verdicts_total Judge decisions during the rollout.",
        "# TYPE mlship_canary_verdicts_total counter",
        *(
            f'mlship_canary_verdicts_total{{{labels},decision="{d}"}} {state.verdict_counts.get(d, 0)}'
            for d in DECISIONS
        ),
        "# HELP mlship_canary_step_started_timestamp_seconds Unix time the current step began.",
        "# TYPE mlship_canary_step_started_timestamp_seconds gauge",
        f"mlship_canary_step_started_timestamp_seconds{{{labels}}} {state.step_started_at:.3f}",
        "# HELP mlship_canary_rollout_active 1 while a rollout is in shadow or progressing.",
        "# TYPE mlship_canary_rollout_active gauge",
        f"mlship_canary_rollout_active{{{labels}}} {int(state.active)}",
        f"# HELP {names.METRIC_CANARY_ROUTING_DIFFERENCES} Differences found between the rollout and the "
        "routing in effect, by result (repaired, or failed: the rollout paused).",
        f"# TYPE {names.METRIC_CANARY_ROUTING_DIFFERENCES} counter",
        *(
            f'{names.METRIC_CANARY_ROUTING_DIFFERENCES}{{{labels},result="{r}"}} '
            f"{state.routing_differences.get(r, 0)}"
            for r in DIFFERENCE_RESULTS
        ),
        f"# HELP {names.METRIC_CANARY_ROUTING_IN_SYNC} 1 while the routing in effect is the rollout's, "
        "0 while the rollout is paused because it could not be read or repaired.",
        f"# TYPE {names.METRIC_CANARY_ROUTING_IN_SYNC} gauge",
        f"{names.METRIC_CANARY_ROUTING_IN_SYNC}{{{labels}}} {int(not state.paused)}",
    ]
    return "\n".join(lines) + "\n"


class TextfilePublisher:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def publish(self, state: RolloutState) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".{FILE_NAME}.{os.getpid()}"
        tmp.write_text(render(state), encoding="utf-8")
        tmp.replace(self.directory / FILE_NAME)

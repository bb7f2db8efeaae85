"""Logs (Loki): errors and warnings by model version, and the lines themselves.

The model servers write one JSON object per line (``mlship.serving.logs``) with ``level``,
``model_version``, ``role``, ``request_id``. The log collector (Alloy, ``mlship.k8s.components.
monitoring``) labels each model pod's stream with its ``role`` (stable or canary), ``model``,
``namespace`` and ``pod``; other pods have no role label.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from mlship import names
from mlship.monitoring.dashboards.panels import base, log_graph, log_lines, loki_variable

STREAM = f'{{{names.LABEL_ROLE}=~"{names.ROLE_STABLE}|{names.ROLE_CANARY}"}}'


def count_by_version(level: str) -> str:
    return f'sum by (model_version, role) (count_over_time({STREAM} | json | level="{level}" [$__auto]))'


def build() -> dashboard.Dashboard:
    return (
        base("mlship / Logs", "mlship-logs", "Model server logs from Loki, by model version.", ["logs"])
        .with_variable(loki_variable())
        .with_panel(
            log_graph(
                "Errors by model version",
                "Log lines at level error (5xx answers, failed feature code, crashes).",
                count_by_version("error"),
                "{{role}} {{model_version}}",
            )
        )
        .with_panel(
            log_graph(
                "Warnings by model version",
                "Log lines at level warning (rejected inputs, training/serving skew).",
                count_by_version("warning"),
                "{{role}} {{model_version}}",
            )
        )
        .with_panel(
            log_lines(
                "Errors and warnings",
                "Newest first; every line carries request_id, model_version and role.",
                f'{STREAM} | json | level=~"error|warning"',
            )
        )
    )

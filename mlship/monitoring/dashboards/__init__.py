"""Grafana dashboards as code (grafana-foundation-sdk, Grafana 11.6 schema).

``dashboards()`` returns file name -> dashboard JSON: the Pulumi program ships them as ConfigMaps
for Grafana's dashboard sidecar, the repository keeps the default rendering under
``mlship/monitoring/generated/dashboards``.
"""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from mlship.config import Config
from mlship.monitoring.dashboards import canary, hosts, logs, model_data, service


def _json(board: Dashboard) -> dict[str, Any]:
    model = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    for number, panel in enumerate(model.get("panels", []), start=1):
        panel["id"] = number  # stable ids: links and "view panel" URLs survive regeneration
    return model


def dashboards(config: Config | None = None) -> dict[str, dict[str, Any]]:
    """File name -> Grafana dashboard JSON model."""
    config = config or Config()
    boards = {
        "mlship-service.json": service.build(config),
        "mlship-canary.json": canary.build(config),
        "mlship-model-data.json": model_data.build(config),
        "mlship-hosts.json": hosts.build(),
        "mlship-logs.json": logs.build(),
    }
    return {name: _json(board) for name, board in boards.items()}

"""Small PromQL building blocks shared by the rules and the dashboards."""

from __future__ import annotations

import math

from mlship import names

# Labels every aggregation keeps: Kubernetes namespaces separate environments sharing one
# Prometheus (the label is simply absent locally, which PromQL treats as empty).
SCOPE = ("namespace",)
BY_ROLE = (*SCOPE, names.LABEL_ROLE)
BY_VERSION = (*BY_ROLE, names.LABEL_MODEL_VERSION)
BY_FEATURE = (*BY_VERSION, names.LABEL_FEATURE)
BY_BIN = (*BY_FEATURE, names.LABEL_BIN)

MODEL_JOB = f'job="{names.JOB_MODEL}"'
NODE_JOB = f'job="{names.JOB_NODE}"'
PREDICT_ENDPOINTS = f'endpoint=~"{names.ENDPOINT_PREDICT}|{names.ENDPOINT_PREDICT_BATCH}"'
# HTTP codes that mean "the input was rejected" (validation 400, body too large 413, 422).
REJECTED_CODES = 'http_response_code=~"400|413|422"'
SERVER_ERROR_CODES = 'http_response_code=~"5.."'
SUCCESS_CODES = 'http_response_code=~"2.."'


def by(labels: tuple[str, ...]) -> str:
    return f"by ({', '.join(labels)})"


def on(labels: tuple[str, ...]) -> str:
    return f"on ({', '.join(labels)})"


def sel(metric: str, *matchers: str) -> str:
    """``metric{m1, m2}``; matchers are already-rendered ``label op "value"`` strings."""
    return f"{metric}{{{', '.join(matchers)}}}" if matchers else metric


def number(value: float) -> str:
    """A float as PromQL reads it, without binary noise (14.4 * 0.005 -> 0.072)."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return format(value, ".10g")


def go_float(value: float) -> str:
    """A bucket bound formatted as Go and prometheus_client format the ``le`` label."""
    from prometheus_client.utils import floatToGoString

    return floatToGoString(value)


def duration(seconds: float) -> str:
    """Seconds -> the shortest exact Prometheus duration (3600 -> 1h, 90 -> 90s)."""
    total = math.ceil(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if total % size == 0:
            return f"{total // size}{unit}"
    return f"{total}s"


def zero_filled(expr: str, like: str) -> str:
    """``expr``, or 0 for every series of ``like`` that ``expr`` lacks.

    Counters for rare events (5xx, rejections, skew mismatches) only exist once the event happened;
    without this a ratio would be empty instead of 0 while the service is healthy.
    """
    return f"({expr} or 0 * {like})"

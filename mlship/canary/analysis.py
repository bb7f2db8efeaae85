"""Read a rollout's signals from Prometheus and turn them into an Observation for the judge.

Counts are `increase()` over the rollout's (or the step's) elapsed time, so they are cumulative since
the rollout began whatever happened to the counters before. The error rate comes from the router: it
also counts connection failures and timeouts that the canary itself never reports. In the shadow
phase the candidate's traffic is the stable server's mirrored calls, and the paired |difference|
histogram gives a direct differential test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from string import Template

from mlship import names
from mlship.canary.judge import judged_steps
from mlship.canary.observation import INF, Histogram, Observation, RoleCounts
from mlship.canary.state import RolloutState
from mlship.k8s.naming import BACKEND_INDEX, ROUTED_ENDPOINTS
from mlship.promclient import Prometheus

# Prometheus needs two samples inside a window; below this there is no data yet.
MIN_WINDOW_S = 6


@dataclass(frozen=True)
class Queries:
    """PromQL per signal, as templates with ``$role`` (stable|canary) and ``$w`` (window, seconds)."""

    requests: str
    errors: str
    rejected: str
    latency: str
    predictions: str
    shadow_requests: str
    shadow_errors: str
    # Paired |candidate - stable| per mirrored request; None where the mirror cannot pair them (a
    # gateway's RequestMirror discards the candidate's answer, so only the distributions are compared).
    shadow_diff: str | None

    def render(self, name: str, role: str, window: int) -> str:
        return Template(getattr(self, name)).substitute(role=role, w=f"{window}s")


# Router servers are named by slot: `stable` and `stable-2` both serve the stable role.
_ROUTER = f'proxy="{names.HAPROXY_BACKEND}",server=~"$role(-[0-9]+)?"'
_R = names.METRIC_ROUTER_RESPONSES
_C = names.METRIC_ROUTER_CONN_ERRORS
_E = names.METRIC_ROUTER_RESP_ERRORS
LOCAL = Queries(
    requests=f"sum(increase({_R}{{{_ROUTER}}}[$w])) + sum(increase({_C}{{{_ROUTER}}}[$w]))",
    errors=(
        f'sum(increase({_R}{{{_ROUTER},code="5xx"}}[$w])) + sum(increase({_C}{{{_ROUTER}}}[$w]))'
        f" + sum(increase({_E}{{{_ROUTER}}}[$w]))"
    ),
    rejected=f'sum(increase({names.METRIC_REJECTED}{{role="$role"}}[$w]))',
    latency=(
        f"sum by (le) (increase({names.METRIC_BENTO_DURATION}_bucket"
        f'{{role="$role",endpoint="{names.ENDPOINT_PREDICT}",http_response_code="200"}}[$w]))'
    ),
    predictions=f'sum by (le) (increase({names.METRIC_PREDICTION}_bucket{{role="$role"}}[$w]))',
    # Mirrored calls the stable server made (result ok|error); "dropped" (its own back-pressure,
    # never sent) counts neither as a request nor as an error of the candidate.
    shadow_requests=f'sum(increase({names.METRIC_SHADOW_REQUESTS}{{role="stable",result=~"ok|error"}}[$w]))',
    shadow_errors=f'sum(increase({names.METRIC_SHADOW_REQUESTS}{{role="stable",result="error"}}[$w]))',
    shadow_diff=f'sum by (le) (increase({names.METRIC_SHADOW_ABS_DIFF}_bucket{{role="stable"}}[$w]))',
)

# --- Kubernetes ----------------------------------------------------------------------------------
# Series as the Prometheus Operator scrapes them (ServiceMonitor with honorLabels, so BentoML's endpoint
# label survives; the pod's role and model become labels), filtered to one model in one namespace: two
# models can roll out at once in one Prometheus. Requests and errors take the larger of two counts: the
# model server's own, and what the gateway saw for that role's backend of the /predict rule. Envoy
# Gateway gives each backend of a rule its own cluster, httproute/<ns>/<route>/rule/<i>/backend/<j>
# (the route's per-backend filter, mlship/k8s/components/canary_route.py), and charges to it the
# 5xx it answered itself: the 503 of a refused connection and the 504 of a timeout, which the model
# server never counts. Without gateway metrics (another Gateway implementation, PodMonitor not
# scraped) the server's counts remain. Not countable here: the 503s of a backend with no ready endpoint.
# Envoy Gateway (v1.7.5 internal/xds/translator/route.go) routes that backend's share to the non-existent
# `invalid-backend-cluster`, and Envoy charges those 503s to the listener (`no_cluster`, downstream 5xx), not
# to any backend's cluster, so they cannot be attributed to the canary. The Kubernetes backend covers that
# case instead: a canary Deployment without a ready pod is "not running" and the controller rolls it back.
ENVOY_RESPONSES = "envoy_cluster_upstream_rq_xx"  # label envoy_response_code_class="2".."5"
_B = names.METRIC_BENTO_REQUESTS


class KubernetesQueries(Queries):
    """``Queries`` with ``$backend``: the role's index in the route's backendRefs."""

    def render(self, name: str, role: str, window: int) -> str:
        backend = BACKEND_INDEX[role]
        return Template(getattr(self, name)).substitute(role=role, w=f"{window}s", backend=backend)


def _larger(a: str, b: str) -> str:
    """max(a, b) of two one-element sums, either possibly without series (then 0)."""
    return f"((({a}) or vector(0)) > (({b}) or vector(0)) or (({b}) or vector(0)))"


def kubernetes_queries(model: str, namespace: str) -> Queries:
    scope = f'namespace="{namespace}",model="{model}"'
    server = f'{scope},role="$role",endpoint="{names.ENDPOINT_PREDICT}"'
    # The /predict rule only: the same requests the server's endpoint="/predict" counts.
    rule = ROUTED_ENDPOINTS.index(names.ENDPOINT_PREDICT)
    gateway = f'envoy_cluster_name="httproute/{namespace}/{model}/rule/{rule}/backend/$backend"'
    mirrored = f'{scope},role="{names.ROLE_CANARY}",endpoint="{names.ENDPOINT_PREDICT}"'
    return KubernetesQueries(
        requests=_larger(
            f"sum(increase({_B}{{{server}}}[$w]))", f"sum(increase({ENVOY_RESPONSES}{{{gateway}}}[$w]))"
        ),
        errors=_larger(
            f'sum(increase({_B}{{{server},http_response_code=~"5.."}}[$w]))',
            f'sum(increase({ENVOY_RESPONSES}{{{gateway},envoy_response_code_class="5"}}[$w]))',
        ),
        rejected=f'sum(increase({names.METRIC_REJECTED}{{{scope},role="$role"}}[$w]))',
        latency=(
            f"sum by (le) (increase({names.METRIC_BENTO_DURATION}_bucket"
            f'{{{server},http_response_code="200"}}[$w]))'
        ),
        predictions=f'sum by (le) (increase({names.METRIC_PREDICTION}_bucket{{{scope},role="$role"}}[$w]))',
        # The gateway's RequestMirror: the candidate's answers are discarded, its server counts them.
        shadow_requests=f"sum(increase({_B}{{{mirrored}}}[$w]))",
        shadow_errors=f'sum(increase({_B}{{{mirrored},http_response_code=~"5.."}}[$w]))',
        shadow_diff=None,
    )


class Analyzer:
    def __init__(self, prometheus: Prometheus, queries: Queries = LOCAL) -> None:
        self.prom = prometheus
        self.q = queries

    def _count(self, query: str, role: str, window: int) -> float:
        value = self.prom.scalar(self.q.render(query, role, window), default=0.0)
        return 0.0 if value is None or math.isnan(value) else value

    def _histogram(self, query: str, role: str, window: int) -> Histogram:
        buckets: dict[float, float] = {}
        for sample in self.prom.query(self.q.render(query, role, window)):
            le = sample.labels.get("le")
            if le is None or math.isnan(sample.value):
                continue
            buckets[INF if le == "+Inf" else float(le)] = sample.value
        return Histogram(buckets=buckets)

    def _role(self, role: str, window: int) -> RoleCounts:
        return _counts(
            requests=self._count("requests", role, window),
            errors=self._count("errors", role, window),
            rejected=self._count("rejected", role, window),
            latency=self._histogram("latency", role, window),
            predictions=self._histogram("predictions", role, window),
        )

    def observe(self, state: RolloutState, now: float) -> Observation:
        """The current step's own counts (the shadow phase is one step): never pooled across weights."""
        elapsed = now - state.analysis_started_at
        step_elapsed = now - state.step_started_at
        window = step_window = max(MIN_WINDOW_S, math.ceil(step_elapsed))
        stable = self._role(names.ROLE_STABLE, window)
        shadow = state.phase == "shadow"
        if shadow:
            canary = _counts(
                requests=self._count("shadow_requests", names.ROLE_CANARY, window),
                errors=self._count("shadow_errors", names.ROLE_CANARY, window),
                rejected=self._count("rejected", names.ROLE_CANARY, window),
                latency=self._histogram("latency", names.ROLE_CANARY, window),
                predictions=self._histogram("predictions", names.ROLE_CANARY, window),
            )
            step_requests = canary.requests
            paired = self._histogram("shadow_diff", names.ROLE_CANARY, window) if self.q.shadow_diff else None
        else:
            canary = self._role(names.ROLE_CANARY, window)
            step_requests = self._count("requests", names.ROLE_CANARY, step_window)
            paired = None
        return Observation(
            stable=stable,
            canary=canary,
            weight=state.weight,
            step_index=state.step_index,
            step_canary_requests=step_requests,
            elapsed_s=elapsed,
            step_elapsed_s=step_elapsed,
            shadow=shadow,
            paired_abs_diff=paired,
            judged_steps=len(judged_steps(state.steps)),
            with_shadow=state.shadow,
        )


def _counts(
    *, requests: float, errors: float, rejected: float, latency: Histogram, predictions: Histogram
) -> RoleCounts:
    """One role's counts, with the event counts capped at the request count.

    Requests come from one scrape target (the router, or the stable server's mirror counter) and
    rejections from another (the model server): scraped at different instants, the model server's
    counter can run a few seconds ahead of the router's, most visibly in a rollout's first seconds
    (0 routed requests, 2 rejections). The cap removes that skew; it can only make a window look
    emptier, and the judge never passes an empty window.
    """
    return RoleCounts(
        requests=requests,
        errors=min(errors, requests),
        rejected=min(rejected, requests),
        latency=latency,
        predictions=predictions,
    )

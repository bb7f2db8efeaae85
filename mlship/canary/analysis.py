"""Read a rollout's signals from Prometheus and turn them into an Observation for the judge.

Counts are the raw differences of the scraped counters since the current step began: every stored
sample of every series from the first one scraped at or after the step's start, a counter that went
down (a restarted process) counted from 0 again. Never ``increase()``, which extrapolates its window
to the edges (x1.1 at the median, x1.4 at p90 with a 15 s scrape, inflating every likelihood ratio),
and never the traffic between the last scrape before the step and its start (the previous step's, at
another weight). A count whose series do not exist at all is "no data", not 0 (except counters that
only appear with their first event, ``Count.absent_is_zero``). The error rate comes from the router:
it also counts connection failures and timeouts that the canary itself never reports. In the shadow
phase the candidate's traffic is the stable server's mirrored calls, and the paired |difference|
histogram gives a direct differential test.

Each count is declared once (:class:`Count`, :class:`Buckets`): the Analyzer reads it as raw samples,
and ``Queries.render`` writes the same count as PromQL (alerts, dashboards, the promtool tests of the
Kubernetes combination).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from string import Template

from mlship import names
from mlship.canary.judge import judged_steps
from mlship.canary.observation import INF, Histogram, Observation, RoleCounts
from mlship.canary.state import RolloutState
from mlship.k8s.naming import BACKEND_INDEX, ROUTED_ENDPOINTS
from mlship.promclient import Prometheus


@dataclass(frozen=True)
class Count:
    """A count: the larger of its alternatives, each the sum of its terms' counters (series selectors).

    Selectors are templates with ``$role`` (stable|canary) and ``$backend`` (the role's backend index).
    """

    alternatives: tuple[tuple[str, ...], ...]
    # The counters are created with their first event (labels such as a 5xx code or a rejection reason):
    # no series means none happened yet, as long as the role's requests have series.
    absent_is_zero: bool = False

    def promql(self) -> str:
        sums = [" + ".join(f"sum(increase({term}[$w]))" for term in terms) for terms in self.alternatives]
        if len(sums) == 1:
            return sums[0]
        if len(sums) == 2:
            return _larger(*sums)
        raise ValueError("a Count takes the larger of at most two alternatives")


@dataclass(frozen=True)
class Buckets:
    """A histogram: the ``_bucket`` series of one selector, summed by ``le``."""

    selector: str

    def promql(self) -> str:
        return f"sum by (le) (increase({self.selector}[$w]))"


@dataclass(frozen=True)
class Queries:
    """Each signal's count, per role."""

    requests: Count
    errors: Count
    rejected: Count
    latency: Buckets
    predictions: Buckets
    shadow_requests: Count
    shadow_errors: Count
    # Paired |candidate - stable| per mirrored request; None where the mirror cannot pair them (a
    # gateway's RequestMirror discards the candidate's answer, so only the distributions are compared).
    shadow_diff: Buckets | None

    def selector(self, template: str, role: str) -> str:
        return Template(template).substitute(role=role, backend=BACKEND_INDEX[role])

    def render(self, name: str, role: str, window: int) -> str:
        """The count as PromQL over the last ``window`` seconds (``increase()``: for alerts and checks)."""
        promql = getattr(self, name).promql()
        return Template(promql).substitute(role=role, backend=BACKEND_INDEX[role], w=f"{window}s")


# Router servers are named by slot: `stable` and `stable-2` both serve the stable role.
_ROUTER = f'proxy="{names.HAPROXY_BACKEND}",server=~"$role(-[0-9]+)?"'
_R = names.METRIC_ROUTER_RESPONSES
_C = names.METRIC_ROUTER_CONN_ERRORS
_E = names.METRIC_ROUTER_RESP_ERRORS
LOCAL = Queries(
    # HAProxy exports every response class and error counter of a server from its start: no series
    # means the router is not scraped (no data), never "no errors".
    requests=Count(((f"{_R}{{{_ROUTER}}}", f"{_C}{{{_ROUTER}}}"),)),
    errors=Count(((f'{_R}{{{_ROUTER},code="5xx"}}', f"{_C}{{{_ROUTER}}}", f"{_E}{{{_ROUTER}}}"),)),
    rejected=Count(((f'{names.METRIC_REJECTED}{{role="$role"}}',),), absent_is_zero=True),
    latency=Buckets(
        f"{names.METRIC_BENTO_DURATION}_bucket"
        f'{{role="$role",endpoint="{names.ENDPOINT_PREDICT}",http_response_code="200"}}'
    ),
    predictions=Buckets(f'{names.METRIC_PREDICTION}_bucket{{role="$role"}}'),
    # Mirrored calls the stable server made (result ok|error); "dropped" (its own back-pressure,
    # never sent) counts neither as a request nor as an error of the candidate.
    shadow_requests=Count(((f'{names.METRIC_SHADOW_REQUESTS}{{role="stable",result=~"ok|error"}}',),)),
    shadow_errors=Count(
        ((f'{names.METRIC_SHADOW_REQUESTS}{{role="stable",result="error"}}',),), absent_is_zero=True
    ),
    shadow_diff=Buckets(f'{names.METRIC_SHADOW_ABS_DIFF}_bucket{{role="stable"}}'),
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
    return Queries(
        requests=Count(((f"{_B}{{{server}}}",), (f"{ENVOY_RESPONSES}{{{gateway}}}",))),
        errors=Count(
            (
                (f'{_B}{{{server},http_response_code=~"5.."}}',),
                (f'{ENVOY_RESPONSES}{{{gateway},envoy_response_code_class="5"}}',),
            ),
            absent_is_zero=True,  # both exporters create a 5xx series with its first 5xx
        ),
        rejected=Count(((f'{names.METRIC_REJECTED}{{{scope},role="$role"}}',),), absent_is_zero=True),
        latency=Buckets(f'{names.METRIC_BENTO_DURATION}_bucket{{{server},http_response_code="200"}}'),
        predictions=Buckets(f'{names.METRIC_PREDICTION}_bucket{{{scope},role="$role"}}'),
        # The gateway's RequestMirror: the candidate's answers are discarded, its server counts them.
        shadow_requests=Count(((f"{_B}{{{mirrored}}}",),)),
        shadow_errors=Count(((f'{_B}{{{mirrored},http_response_code=~"5.."}}',),), absent_is_zero=True),
        shadow_diff=None,
    )


# How far before the step a query reaches: longer than any scrape interval, so that a series that
# existed when the step began has a sample before it, and one without is known to be born in the step.
LOOKBACK_S = 120


@dataclass(frozen=True)
class _Counter:
    """One series as a piecewise-linear cumulative count since its baseline: ``points`` are (t, count)."""

    points: tuple[tuple[float, float], ...]
    last_sample: float
    spacing: float  # median interval between its samples (inf with fewer than two)

    def at(self, t: float) -> float:
        """The count at instant ``t``, linearly interpolated between scrapes, held beyond its ends."""
        pts = self.points
        if t <= pts[0][0]:
            return pts[0][1]
        for (t0, c0), (t1, c1) in itertools.pairwise(pts):
            if t <= t1:
                return c0 + (c1 - c0) * (t - t0) / (t1 - t0)
        return pts[-1][1]


def step_counter(samples: Iterable[tuple[float, float]], since: float) -> _Counter | None:
    """The series' count from ``since``; None when it has no sample at or after ``since``.

    The baseline is its first sample at or after ``since`` (never the traffic between the last scrape
    before the step and its start: the previous step's, at another weight). A series without any
    sample at or before ``since`` was created during the step (a 5xx code's first error, a replaced
    pod's new series): it counts from 0 at ``since``. A value lower than the one before is a restarted
    process whose counter began again at 0: the new value is what it counted since (Prometheus' own
    reset rule), never a negative increase.
    """
    clean = sorted((t, v) for t, v in samples if not math.isnan(v))
    inside = [(t, v) for t, v in clean if t >= since]
    if not inside:
        return None
    born = clean[0][0] > since
    points: list[tuple[float, float]] = [(since, 0.0)] if born else []
    total, last = 0.0, 0.0 if born else None
    for t, v in inside:
        if last is not None:
            total += v - last if v >= last else v
        last = v
        points.append((t, total))
    gaps = sorted(b[0] - a[0] for a, b in itertools.pairwise(clean))
    spacing = gaps[len(gaps) // 2] if gaps else math.inf
    return _Counter(points=tuple(points), last_sample=inside[-1][0], spacing=spacing)


def raw_increase(samples: Iterable[tuple[float, float]], since: float) -> float:
    """A counter's increase from its baseline (see ``step_counter``) to its last sample, resets counted."""
    counter = step_counter(samples, since)
    return counter.points[-1][1] if counter else 0.0


def common_window(counters: Iterable[_Counter]) -> tuple[float, float]:
    """The instants every series covers: the latest baseline and the earliest last sample.

    Series come from different scrape targets (the router, each model server, each pod), scraped at
    different moments: counted each over its own span, one arm's count can take in a burst that the
    other's misses. Cut to one window, every count of an observation covers the same seconds. A series
    whose last sample is more than two of its scrape intervals older than the newest one has ended (a
    replaced pod, a stopped process): all its counts lie inside the window, it does not shorten it.
    """
    counters = list(counters)
    if not counters:
        return 0.0, 0.0
    start = max(c.points[0][0] for c in counters)
    newest = max(c.last_sample for c in counters)
    live = [c.last_sample for c in counters if c.last_sample >= newest - 2 * c.spacing]
    end = min(live, default=newest)
    return start, max(start, end)


class Analyzer:
    """Observations from raw scraped samples (``Prometheus.raw_samples``), or any client that has it."""

    def __init__(self, prometheus: Prometheus, queries: Queries = LOCAL) -> None:
        self.prom = prometheus
        self.q = queries
        self._fetched: dict[str, list[tuple[dict[str, str], _Counter | None]]] = {}
        self._window = (0.0, 0.0)

    def _series(
        self, template: str, role: str, since: float, now: float
    ) -> list[tuple[dict[str, str], _Counter | None]]:
        # LOOKBACK_S before the step (tells existing series from born ones) and one second more: range
        # selectors are left-open (Prometheus 3), and a sample scraped exactly when the step began is
        # its baseline.
        selector = self.q.selector(template, role)
        if selector not in self._fetched:
            seconds = max(1, math.ceil(now - since) + 1) + LOOKBACK_S
            raw = self.prom.raw_samples(selector, seconds, time=now)
            self._fetched[selector] = [(labels, step_counter(samples, since)) for labels, samples in raw]
        return self._fetched[selector]

    def _increase(self, counter: _Counter | None) -> float:
        if counter is None:
            return 0.0
        start, end = self._window
        return counter.at(end) - counter.at(start)

    def _count(self, name: str, role: str, since: float, now: float) -> float | None:
        """The count over the common window; None when none of its series exist (no data)."""
        spec: Count = getattr(self.q, name)
        found, sums = False, []
        for terms in spec.alternatives:
            total = 0.0
            for term in terms:
                for _labels, counter in self._series(term, role, since, now):
                    found = True
                    total += self._increase(counter)
            sums.append(total)
        if not found:
            return 0.0 if spec.absent_is_zero else None
        return max(sums)

    def _histogram(self, name: str, role: str, since: float, now: float) -> Histogram:
        spec: Buckets | None = getattr(self.q, name)
        buckets: dict[float, float] = {}
        if spec is None:
            return Histogram(buckets=buckets)
        for labels, counter in self._series(spec.selector, role, since, now):
            le = labels.get("le")
            if le is None:
                continue
            bound = INF if le == "+Inf" else float(le)
            if math.isnan(bound):
                continue
            buckets[bound] = buckets.get(bound, 0.0) + self._increase(counter)
        return Histogram(buckets=buckets)

    def _fetch_all(self, since: float, now: float, shadow: bool) -> None:
        """Every series the observation uses, then their common window (``common_window``)."""
        self._fetched = {}
        for role in (names.ROLE_STABLE, names.ROLE_CANARY):
            counts = ["rejected"]
            counts += (
                ["shadow_requests", "shadow_errors"]
                if shadow and role == names.ROLE_CANARY
                else ["requests", "errors"]
            )
            for name in counts:
                for terms in getattr(self.q, name).alternatives:
                    for term in terms:
                        self._series(term, role, since, now)
            for name in ("latency", "predictions"):
                self._series(getattr(self.q, name).selector, role, since, now)
        if shadow and self.q.shadow_diff is not None:
            self._series(self.q.shadow_diff.selector, names.ROLE_CANARY, since, now)
        counters = [c for series in self._fetched.values() for _labels, c in series if c is not None]
        self._window = common_window(counters)

    def _role(self, role: str, since: float, now: float, shadow: bool = False) -> RoleCounts:
        requests_name, errors_name = (
            ("shadow_requests", "shadow_errors") if shadow else ("requests", "errors")
        )
        requests = self._count(requests_name, role, since, now)
        errors = self._count(errors_name, role, since, now)
        rejected = self._count("rejected", role, since, now)
        no_data = tuple(
            what
            for what, value in (("requests", requests), ("errors", errors), ("rejections", rejected))
            if value is None
        )
        return _counts(
            requests=requests or 0.0,
            errors=errors or 0.0,
            rejected=rejected or 0.0,
            latency=self._histogram("latency", role, since, now),
            predictions=self._histogram("predictions", role, since, now),
            no_data=no_data,
        )

    def observe(self, state: RolloutState, now: float) -> Observation:
        """The current step's own counts (the shadow phase is one step): never pooled across weights."""
        since = state.step_started_at
        shadow = state.phase == "shadow"
        self._fetch_all(since, now, shadow)
        stable = self._role(names.ROLE_STABLE, since, now)
        canary = self._role(names.ROLE_CANARY, since, now, shadow=shadow)
        paired = None
        if shadow and self.q.shadow_diff is not None:
            paired = self._histogram("shadow_diff", names.ROLE_CANARY, since, now)
        return Observation(
            stable=stable,
            canary=canary,
            weight=state.weight,
            step_index=state.step_index,
            step_canary_requests=canary.requests,
            elapsed_s=now - state.analysis_started_at,
            step_elapsed_s=now - state.step_started_at,
            shadow=shadow,
            paired_abs_diff=paired,
            judged_steps=len(judged_steps(state.steps)),
            with_shadow=state.shadow,
        )


def _counts(
    *,
    requests: float,
    errors: float,
    rejected: float,
    latency: Histogram,
    predictions: Histogram,
    no_data: tuple[str, ...] = (),
) -> RoleCounts:
    """One role's counts, with the event counts capped at the request count.

    Requests come from one scrape target (the router, or the stable server's mirror counter) and
    rejections from another (the model server): scraped at different instants, the model server's
    counter can run a few seconds ahead of the router's, most visibly in a step's first seconds
    (0 routed requests, 2 rejections). The cap removes that skew; it can only make a window look
    emptier, and the judge never passes an empty window.
    """
    return RoleCounts(
        requests=requests,
        errors=min(errors, requests),
        rejected=min(rejected, requests),
        latency=latency,
        predictions=predictions,
        no_data=no_data,
    )

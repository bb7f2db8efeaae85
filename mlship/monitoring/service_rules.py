"""Service rules: per-role traffic, errors and latency, canary comparison, rollout progress, targets.

Everything here comes from BentoML's own request metrics, which exist in both environments; the role
label (stable or canary) is added by the scrape configuration.
"""

from __future__ import annotations

from mlship import names
from mlship.config import Config
from mlship.monitoring import promql as q
from mlship.monitoring.limits import LIMITS, Limits
from mlship.monitoring.rule_types import Alert, Group, Recording

STABLE = f'{names.LABEL_ROLE}="{names.ROLE_STABLE}"'
# Published by the canary runner (mlship/canary/publish.py): not scraped from the model servers, so
# no job matcher (locally they come through the node exporter's textfile collector).
METRIC_CANARY_WEIGHT = "mlship_canary_weight"  # gauge: canary share of user traffic, percent
METRIC_CANARY_PHASE = "mlship_canary_phase"  # gauge 1 for the current phase (label phase)
METRIC_CANARY_STEP = "mlship_canary_step"  # gauge: index into canary.steps, -1 in the shadow phase
METRIC_CANARY_VERDICTS = "mlship_canary_verdicts_total"  # counter by decision (wait, advance, rollback)
METRIC_CANARY_STEP_STARTED = "mlship_canary_step_started_timestamp_seconds"
METRIC_CANARY_ACTIVE = "mlship_canary_rollout_active"  # gauge 1 while in shadow or progressing
CANARY = f'{names.LABEL_ROLE}="{names.ROLE_CANARY}"'


class Names:
    """Recording-rule names, shared with the dashboards."""

    def __init__(self, limits: Limits = LIMITS) -> None:
        w = limits.canary_window
        self.requests = f"mlship:requests:rate{w}"
        self.requests_increase = f"mlship:requests:increase{w}"
        self.errors = f"mlship:request_errors:ratio_rate{w}"
        self.latency = f"mlship:request_latency_seconds:quantile_rate{w}"


NAMES = Names()


def _requests(window: str, fn: str = "rate", *matchers: str) -> str:
    selector = q.sel(names.METRIC_BENTO_REQUESTS, q.MODEL_JOB, q.PREDICT_ENDPOINTS, *matchers)
    return f"sum {q.by(q.BY_ROLE)} ({fn}({selector}[{window}]))"


def role_recordings(config: Config, n: Names = NAMES, limits: Limits = LIMITS) -> list[Recording]:
    w = limits.canary_window
    duration = q.sel(
        f"{names.METRIC_BENTO_DURATION}_bucket", q.MODEL_JOB, q.PREDICT_ENDPOINTS, q.SUCCESS_CODES
    )
    quantile = q.number(config.canary.latency_quantile)
    return [
        Recording(n.requests, _requests(w)),
        Recording(n.requests_increase, _requests(w, "increase")),
        Recording(
            n.errors,
            f"{q.zero_filled(_requests(w, 'rate', q.SERVER_ERROR_CODES), _requests(w))}\n"
            f"/\n({_requests(w)} > 0)",
        ),
        Recording(
            n.latency,
            f"histogram_quantile({quantile}, sum {q.by((*q.BY_ROLE, 'le'))} (rate({duration}[{w}])))",
            {"quantile": quantile},
        ),
    ]


def canary_alerts(config: Config, n: Names = NAMES, limits: Limits = LIMITS) -> list[Alert]:
    canary = config.canary
    w = limits.canary_window
    enough = f"{n.requests_increase}{{{CANARY}}} >= {canary.min_samples}"
    margin = q.number(canary.error_rate_margin)
    ratio = q.number(canary.latency_ratio_limit)
    quantile = q.number(canary.latency_quantile)
    # A rollout runs the configured steps after a shadow phase, each bounded by max_step_seconds.
    budget = q.duration((len(canary.steps) + 1) * canary.max_step_seconds)
    return [
        Alert(
            name="CanaryErrorsAboveStable",
            expr=(
                f"{n.errors}{{{CANARY}}}\n> {q.on(q.SCOPE)} group_left ()\n"
                f"({n.errors}{{{STABLE}}} + {margin})\nand {q.on(q.SCOPE)}\n({enough})"
            ),
            for_="5m",
            severity="page",
            summary="The canary fails more prediction requests than stable",
            description=(
                f"Over {w} the canary answered {{{{ $value | humanizePercentage }}}} of prediction "
                "requests with "
                f"5xx, more than stable's error ratio plus {q.number(canary.error_rate_margin * 100)} points "
                "(canary.error_rate_margin), while a rollout is running. Roll back."
            ),
            signals=(
                f"{n.errors}{{{CANARY}}}",
                f"{n.errors}{{{STABLE}}}",
                f"{n.requests_increase}{{{CANARY}}}",
            ),
        ),
        Alert(
            name="CanaryLatencyAboveStable",
            expr=(
                f'{n.latency}{{{CANARY}, quantile="{quantile}"}}\n> {q.on(q.SCOPE)} group_left ()\n'
                f'({ratio} * {n.latency}{{{STABLE}, quantile="{quantile}"}})\n'
                f"and {q.on(q.SCOPE)}\n({enough})"
            ),
            for_="5m",
            severity="ticket",
            summary="The canary is slower than stable",
            description=(
                f"Over {w} the canary's p{q.number(canary.latency_quantile * 100)} latency is "
                f"{{{{ $value | humanizeDuration }}}}, more than {ratio} times stable's "
                "(canary.latency_ratio_limit), while a rollout is running."
            ),
            signals=(
                f'{n.latency}{{{CANARY}, quantile="{quantile}"}}',
                f'{n.latency}{{{STABLE}, quantile="{quantile}"}}',
            ),
        ),
        Alert(
            name="CanaryRolloutStuck",
            expr=f"{n.requests}{{{CANARY}}} > 0",
            for_=budget,
            severity="ticket",
            summary="A canary has been serving traffic longer than any rollout should take",
            description=(
                f"The canary has received prediction traffic for more than {budget}: "
                f"{len(canary.steps)} steps and a shadow phase of at most "
                f"{q.number(canary.max_step_seconds)} s each (canary.steps, canary.max_step_seconds). "
                "The rollout is neither promoted nor rolled back."
            ),
            signals=(f"{n.requests}{{{CANARY}}}",),
        ),
    ]


# A rollout's series carry these labels (mlship/canary/publish.py).
ROLLOUT = ("canary_version", "stable_version")
_ROUTER = f'job="{names.JOB_ROUTER}", proxy="{names.HAPROXY_BACKEND}"'


def _serving_weight(*matchers: str) -> str:
    """Router weight of the servers that take traffic now (health check UP, not in maintenance)."""
    weight = q.sel(names.METRIC_ROUTER_WEIGHT, _ROUTER, *matchers)
    up = q.sel(names.METRIC_ROUTER_STATUS, _ROUTER, 'state="UP"')
    return f"sum({weight} * on (instance, proxy, server) {up})"


def routing_alert() -> Alert:
    """Desired and actual routing of an active rollout differ for more than a minute.

    Three views, so that neither a dead runner, a dead router nor a backend without router metrics hides it:
    - locally, the weight the rollout says (the runner's last published state, which outlives the
      runner in the textfile collector) against the canary's share of the router's serving weights;
    - wherever the runner's metrics are collected, its own verdict: paused because it could not
      read or repair the routing (a runner driving a Kubernetes stack does not publish them yet);
    - the router not up while a rollout is active (locally; the rollout's metrics exist only there).
    """
    desired = f"max {q.by(ROLLOUT)} ({METRIC_CANARY_WEIGHT})"
    canary = f'server="{names.ROLE_CANARY}"'
    router_share = f"100 * {_serving_weight(canary)}\n  / {_serving_weight()}"
    in_sync = f"max {q.by(ROLLOUT)} ({names.METRIC_CANARY_ROUTING_IN_SYNC})"
    active = f"max {q.by(ROLLOUT)} ({METRIC_CANARY_ACTIVE})"
    router_up = q.sel("up", f'job="{names.JOB_ROUTER}"')
    return Alert(
        name="CanaryRoutingDiverged",
        expr=(
            f"(\n  abs({desired}\n  - on () group_left ()\n  ({router_share})) > 0.5\n"
            f"  or\n  {in_sync} == 0\n)\nand {q.on(ROLLOUT)}\n({active} == 1)\n"
            # The router itself down (or never scraped): its weights are gone, so the comparison above
            # has nothing to compare; a rollout is active and no user traffic flows as it says.
            f"or\n({active} == 1)\nunless on () ({router_up} == 1)"
        ),
        for_="1m",
        severity="ticket",
        summary="Rollout {{ $labels.canary_version }}: the routing in effect is not what the rollout says",
        description=(
            "For more than a minute the routing in effect (router weights and health, or the route the "
            "runner reads) has differed from what rollout {{ $labels.canary_version }} (stable "
            "{{ $labels.stable_version }}) says, and nothing has repaired it: the runner is not running, "
            "or it is paused because it cannot read or repair the routing. The step's evidence is not "
            "what the rollout believes it is."
        ),
        signals=(desired, router_share, names.METRIC_CANARY_ROUTING_IN_SYNC),
    )


def runner_alerts(config: Config) -> list[Alert]:
    """From the canary runner's own metrics (published where the runner can be scraped)."""
    limit = 2 * config.canary.max_step_seconds
    in_step = f"time() - {METRIC_CANARY_STEP_STARTED}"
    return [
        routing_alert(),
        Alert(
            name="CanaryRunnerStalled",
            expr=f"{in_step} > {q.number(limit)}\nand\n{METRIC_CANARY_ACTIVE} == 1",
            for_="1m",
            severity="ticket",
            summary="The canary runner has not moved rollout {{ $labels.canary_version }} for too long",
            description=(
                "The rollout of {{ $labels.canary_version }} (stable {{ $labels.stable_version }}) is still "
                "active and its current step began {{ $value | humanizeDuration }} ago, twice "
                "canary.max_step_seconds: the runner would have advanced or rolled back by now. It has "
                "stopped or hangs."
            ),
            signals=(in_step, METRIC_CANARY_ACTIVE),
        ),
    ]


def service_group(config: Config) -> Group:
    up = q.sel("up", q.MODEL_JOB)
    target_down = Alert(
        name="ModelServerDown",
        expr=f"{up} == 0",
        for_="2m",
        severity="page",
        summary="Model server {{ $labels.instance }} ({{ $labels.role }}) does not answer scrapes",
        description=(
            "Prometheus cannot scrape {{ $labels.instance }} of job {{ $labels.job }} ({{ $labels.role }}). "
            "The server is down or unreachable; requests routed to it fail."
        ),
        signals=(up,),
    )
    return Group(name="mlship-service", file="service", rules=(*role_recordings(config), target_down))


def canary_group(config: Config) -> Group:
    return Group(name="mlship-canary", file="canary", rules=(*canary_alerts(config), *runner_alerts(config)))

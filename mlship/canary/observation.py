"""What the analysis sees of a rollout at one instant, for canary and stable.

Built from Prometheus (``mlship.canary.analysis``) in real rollouts and by the simulation harness in
benchmarks; judged by ``mlship.canary.judge``. Role counts are the current step's own, counted since the
step (or the shadow phase) began: never pooled across steps, whose different weights would mix
incomparable traffic (a burst of errors both versions share lands mostly on the canary once it holds
most of the traffic: Simpson's paradox). The judge is called again and again on growing counts, so the
tests it uses must be anytime-valid. A step may advance only after enough canary samples in it (never
after a fixed wall-clock interval).
"""

from __future__ import annotations

from dataclasses import dataclass, field

INF = float("inf")


@dataclass(frozen=True)
class Histogram:
    """Cumulative Prometheus-style histogram: ``buckets`` maps upper bound ``le`` to count <= le.

    The last bucket is ``inf`` and equals the total count.
    """

    buckets: dict[float, float] = field(default_factory=dict)

    @property
    def count(self) -> float:
        return self.buckets.get(INF, 0.0)


@dataclass(frozen=True)
class RoleCounts:
    """One role's (stable or canary) traffic."""

    requests: float = 0.0  # requests sent to this role (router view; mirrored calls in shadow phase)
    errors: float = 0.0  # 5xx + connection errors + response errors + timeouts, as seen by the caller
    rejected: float = 0.0  # inputs the model server rejected with 4xx (validation)
    latency: Histogram = field(default_factory=Histogram)  # model server request duration, seconds
    predictions: Histogram = field(default_factory=Histogram)  # predicted values
    # Counts whose series do not exist in Prometheus ("requests", "errors", "rejections"): read as 0,
    # and never a pass (the judge lists them as missing).
    no_data: tuple[str, ...] = ()


@dataclass(frozen=True)
class Observation:
    """Everything known about the rollout at one instant."""

    stable: RoleCounts
    canary: RoleCounts
    weight: int  # canary traffic percentage of the current step (0 in the shadow phase)
    step_index: int  # index into the configured steps (-1 in the shadow phase)
    step_canary_requests: float  # canary requests since the current step began
    elapsed_s: float  # seconds since the rollout (its traffic phase, or its shadow phase) began
    step_elapsed_s: float  # seconds since the current step began
    shadow: bool = False  # canary answers mirrored traffic that is never served
    # Shadow phase only: |candidate - stable| prediction on the same request (paired differential test).
    paired_abs_diff: Histogram | None = None
    # How the rollout is laid out, for splitting the false-rollback budget between its stages: traffic
    # steps judged (the weights below 100) and whether it began with a shadow phase.
    judged_steps: int = 1
    with_shadow: bool = False

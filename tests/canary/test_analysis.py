"""Turning Prometheus answers into an Observation.

The scrape skew below (the model server's counter scraped a few seconds before the router's) is a
timing accident of two real scrape targets that a real Prometheus reproduces only by chance, so the
Prometheus client here is a stand-in answering fixed values per query; the end-to-end path against a
real Prometheus is covered by tests/integration (canary runs) and tests/monitoring/test_live.py.
"""

from __future__ import annotations

import re
import time

from mlship.canary.analysis import LOCAL, Analyzer
from mlship.canary.judge import judge
from mlship.canary.state import RolloutState
from mlship.config import CanaryConfig
from mlship.promclient import Sample


class AnsweringPrometheus:
    """Answers each signal's query with a fixed value: ``values[(signal, role)]``."""

    def __init__(self, values: dict[tuple[str, str], float]) -> None:
        self.values = values

    def _value(self, expr: str) -> float:
        for (signal, role), value in self.values.items():
            if expr == LOCAL.render(signal, role, _window(expr)):
                return value
        return 0.0

    def scalar(self, expr: str, *, default: float | None = None) -> float | None:
        return self._value(expr)

    def query(self, expr: str, *, time: float | None = None) -> list[Sample]:
        return []


def _window(expr: str) -> int:
    return int(re.search(r"\[(\d+)s\]", expr).group(1))


def rollout(phase: str = "progressing", age_s: float = 8.0) -> RolloutState:
    now = time.time()
    return RolloutState(
        rollout_id="r1",
        env="local",
        phase=phase,
        stable_version="m:1",
        canary_version="m:2",
        steps=[10, 100],
        step_index=0,
        weight=10,
        shadow=False,
        started_at=now - age_s,
        analysis_started_at=now - age_s,
        step_started_at=now - age_s,
        updated_at=now,
    )


def test_rejections_scraped_ahead_of_the_router_are_capped_and_judged_as_no_data():
    # First seconds of a rollout: the router has no routed request in the window yet, the model
    # server already counted two rejected inputs.
    prom = AnsweringPrometheus({("rejected", "stable"): 1.97, ("rejected", "canary"): 1.0})
    obs = Analyzer(prom).observe(rollout(), time.time())

    assert (obs.stable.requests, obs.stable.rejected) == (0.0, 0.0)
    assert (obs.canary.requests, obs.canary.rejected) == (0.0, 0.0)
    verdict = judge(obs, CanaryConfig())
    assert verdict.decision == "wait"


def test_counts_within_the_request_count_pass_through_unchanged():
    prom = AnsweringPrometheus(
        {
            ("requests", "stable"): 900.0,
            ("errors", "stable"): 4.0,
            ("rejected", "stable"): 18.0,
            ("requests", "canary"): 100.0,
            ("errors", "canary"): 30.0,
            ("rejected", "canary"): 2.0,
        }
    )
    obs = Analyzer(prom).observe(rollout(age_s=60), time.time())

    assert (obs.stable.requests, obs.stable.errors, obs.stable.rejected) == (900.0, 4.0, 18.0)
    assert (obs.canary.requests, obs.canary.errors, obs.canary.rejected) == (100.0, 30.0, 2.0)

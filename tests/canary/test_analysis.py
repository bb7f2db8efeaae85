"""Turning scraped samples into an Observation: raw counter differences since the step began.

The Prometheus client here is a stand-in that stores series of samples (what a scrape would have
stored) and answers ``raw_samples`` for the exact selectors the analysis asks for: it stands in for a
real Prometheus whose scrape timing (two targets a few seconds apart, a counter reset at a known
instant) cannot be arranged. The same path against a real Prometheus is in test_counter_resets.py
and tests/integration (canary runs).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlship import names
from mlship.canary.analysis import LOCAL, LOOKBACK_S, Analyzer, raw_increase
from mlship.canary.judge import judge
from mlship.canary.state import RolloutState
from mlship.config import CanaryConfig

NOW = 10_000.0
STEP = 9_940.0  # the step began 60 s ago


class StoredPrometheus:
    """Stored series per selector: ``series[selector] = [(labels, [(t, v), ...]), ...]``."""

    def __init__(self, series: dict[str, list[tuple[dict[str, str], list]]]) -> None:
        self.series = series
        self.asked: list[tuple[str, int, float]] = []

    def raw_samples(self, selector: str, seconds: int, *, time: float) -> list[tuple[dict[str, str], list]]:
        self.asked.append((selector, seconds, time))
        return [
            (labels, [(t, v) for t, v in samples if time - seconds < t <= time])
            for labels, samples in self.series.get(selector, [])
        ]


def sel(name: str, role: str, term: int = 0) -> str:
    return LOCAL.selector(getattr(LOCAL, name).alternatives[0][term], role)


def counter(start: float, per_scrape: float, *, every: float = 15.0, since: float = STEP - 300) -> list:
    """A counter scraped every ``every`` s from ``since``, growing ``per_scrape`` a scrape."""
    n = int((NOW - since) // every) + 1
    return [(since + i * every, start + i * per_scrape) for i in range(n)]


def rollout(step_started_at: float = STEP) -> RolloutState:
    return RolloutState(
        rollout_id="r1",
        env="local",
        phase="progressing",
        stable_version="m:1",
        canary_version="m:2",
        steps=[10, 50, 100],
        step_index=1,
        weight=50,
        shadow=False,
        started_at=STEP - 600,
        analysis_started_at=STEP - 600,
        step_started_at=step_started_at,
        updated_at=NOW,
    )


def router(role: str, per_scrape: float, errors_per_scrape: float = 0.0) -> dict:
    return {
        sel("requests", role, 0): [
            ({"code": "2xx"}, counter(100, per_scrape)),
            ({"code": "5xx"}, counter(5, errors_per_scrape)),
        ],
        sel("requests", role, 1): [({}, counter(0, 0))],
        sel("errors", role, 0): [({"code": "5xx"}, counter(5, errors_per_scrape))],
        sel("errors", role, 1): [({}, counter(0, 0))],
        sel("errors", role, 2): [({}, counter(0, 0))],
    }


def test_counts_are_raw_differences_from_the_first_scrape_of_the_step_never_extrapolated():
    prom = StoredPrometheus({**router("stable", 150, 1), **router("canary", 150, 1)})
    obs = Analyzer(prom).observe(rollout(), NOW)
    # Scrapes at STEP-300+15i: the first at or after STEP is at STEP (i=20), then 4 more up to NOW.
    # 4 scrape intervals of 150 2xx + 1 5xx: 604 requests, 4 errors (increase() would say 60/60 x more,
    # and would count the previous step's traffic from the scrape before the step began).
    for counts in (obs.stable, obs.canary):
        assert (counts.requests, counts.errors, counts.rejected) == (604.0, 4.0, 0.0)
        assert counts.no_data == ()
    assert obs.step_canary_requests == 604.0
    assert (obs.weight, obs.step_index, obs.judged_steps, obs.with_shadow) == (50, 1, 2, False)
    assert obs.step_elapsed_s == 60.0 and obs.elapsed_s == 660.0
    # Every selector was asked once, for the step's window and LOOKBACK_S before it, ending now.
    assert {(seconds, time) for _, seconds, time in prom.asked} == {(61 + LOOKBACK_S, NOW)}
    assert len(prom.asked) == len({selector for selector, _, _ in prom.asked})


def test_a_counter_reset_counts_what_the_restarted_process_counted():
    samples = [(STEP, 500.0), (STEP + 15, 650.0), (STEP + 30, 40.0), (STEP + 45, 190.0)]
    assert raw_increase(samples, STEP) == 150 + 40 + 150
    assert raw_increase(samples, STEP + 1) == 40 + 150  # (the reset sample is the new baseline: 0 -> 40)
    assert raw_increase([(STEP - 5, 0.0), (STEP + 5, 10.0)], STEP) == 0.0  # one sample in the step
    assert raw_increase([(STEP, 1.0), (STEP + 15, math.nan), (STEP + 30, 4.0)], STEP) == 3.0
    assert raw_increase([], STEP) == 0.0


def test_a_missing_series_is_no_data_never_zero():
    prom = StoredPrometheus(router("stable", 150))  # the canary's router server is not scraped
    obs = Analyzer(prom).observe(rollout(), NOW)
    assert obs.canary.no_data == ("requests", "errors")  # rejections appear with the first one
    verdict = judge(obs, CanaryConfig(min_samples=10))
    assert verdict.decision == "wait"
    assert "no data for canary requests (no series in Prometheus)" in verdict.evidence["missing"]
    assert "no data for canary errors (no series in Prometheus)" in verdict.evidence["missing"]


def test_rejections_scraped_ahead_of_the_router_are_capped_and_judged_as_no_data():
    # First seconds of a step: the router has no routed request in the window yet, the model
    # server already counted two rejected inputs.
    stored = {**router("stable", 0), **router("canary", 0)}
    for role in ("stable", "canary"):
        stored[sel("rejected", role)] = [({"reason": "x"}, [(STEP + 1, 3.0), (STEP + 16, 5.0)])]
    obs = Analyzer(StoredPrometheus(stored)).observe(rollout(), NOW)
    assert (obs.stable.requests, obs.stable.rejected) == (0.0, 0.0)
    assert (obs.canary.requests, obs.canary.rejected) == (0.0, 0.0)
    assert judge(obs, CanaryConfig()).decision == "wait"


def test_histograms_are_summed_by_bucket_bound_with_inf_and_unlabelled_series_ignored():
    latency = LOCAL.selector(LOCAL.latency.selector, "canary")
    stored = {
        **router("stable", 150),
        **router("canary", 150),
        latency: [
            ({"le": "0.1", "instance": "a"}, [(STEP, 0.0), (STEP + 15, 7.0)]),
            ({"le": "0.1", "instance": "b"}, [(STEP, 10.0), (STEP + 15, 13.0)]),
            ({"le": "+Inf", "instance": "a"}, [(STEP, 0.0), (STEP + 15, 9.0)]),
            ({"le": "NaN", "instance": "a"}, [(STEP, 0.0), (STEP + 15, 99.0)]),
            ({"instance": "a"}, [(STEP, 0.0), (STEP + 15, 99.0)]),
        ],
    }
    obs = Analyzer(StoredPrometheus(stored)).observe(rollout(), NOW)
    assert obs.canary.latency.buckets == {0.1: 10.0, math.inf: 9.0}
    assert obs.stable.latency.buckets == {}  # no series: an empty histogram, which never passes
    assert obs.canary.latency.count == 9.0


def test_a_step_begun_mid_scrape_does_not_count_the_previous_steps_traffic():
    prom = StoredPrometheus({**router("stable", 150), **router("canary", 150)})
    # The step began 5 s after a scrape: the scrape before it (previous step) is not a baseline.
    obs = Analyzer(prom).observe(rollout(step_started_at=STEP + 5), NOW)
    assert obs.canary.requests == 3 * 150  # scrapes at STEP+15, +30, +45, +60: 3 intervals
    assert {seconds for _, seconds, _ in prom.asked} == {56 + LOOKBACK_S}


@pytest.mark.parametrize("role", ["stable", "canary"])
def test_the_local_selectors_name_the_routers_servers_of_the_role(role):
    assert sel("requests", role) == (
        f'{names.METRIC_ROUTER_RESPONSES}{{proxy="{names.HAPROXY_BACKEND}",server=~"{role}(-[0-9]+)?"}}'
    )
    assert LOCAL.render("requests", role, 60).startswith(f"sum(increase({sel('requests', role)}[60s]))")


def test_a_series_born_during_the_step_counts_from_zero_and_one_that_existed_from_its_first_scrape():
    # No sample at or before the step's start (the query reaches LOOKBACK_S before it): the series was
    # created during the step (a 5xx code's first error, a replaced pod), so all its 4 counts are the step's.
    assert raw_increase([(STEP + 12, 3.0), (STEP + 27, 4.0)], STEP) == 4.0
    # It existed before the step: its first scrape in the step is the baseline, as before.
    assert raw_increase([(STEP - 3, 2.0), (STEP + 12, 3.0), (STEP + 27, 4.0)], STEP) == 1.0


def test_a_replaced_pods_new_series_is_counted_from_zero_and_the_old_one_does_not_shorten_the_window():
    stored = {**router("stable", 150), **router("canary", 150)}
    # The canary's model server: pod a (since before the step) replaced 20 s into it by pod b.
    old = [(t, 10.0 + i) for i, t in enumerate(x for x in range(int(STEP) - 60, int(STEP) + 21, 15))]
    new = [(STEP + 25 + 15 * i, 2.0 * (i + 1)) for i in range(3)]
    stored[sel("rejected", "canary")] = [({"pod": "a"}, old), ({"pod": "b"}, new)]
    obs = Analyzer(StoredPrometheus(stored)).observe(rollout(), NOW)
    # Pod a: 1 from its first scrape in the step (STEP) to its last (STEP+15); pod b: all 6.
    assert obs.canary.rejected == 1.0 + 6.0
    # The window ends at pod b's last scrape (STEP+55), not at pod a's (STEP+15): 55 s at 10 req/s.
    assert obs.canary.requests == pytest.approx(550.0)


def test_counts_of_targets_scraped_at_different_moments_are_cut_to_one_window():
    # The router is scraped at STEP+15i, the canary's model server 7 s later: every count is taken over
    # the same seconds, from the latest first scrape (the server's, STEP+7) to the earliest last one
    # (the server's, STEP+52), the router's counters interpolated at those instants.
    stored = {**router("stable", 150), **router("canary", 150)}
    latency = LOCAL.selector(LOCAL.latency.selector, "canary")
    stored[latency] = [({"le": "+Inf"}, counter(0, 150, since=STEP - 300 + 7))]
    obs = Analyzer(StoredPrometheus(stored)).observe(rollout(), NOW)
    # 45 s at 10 req/s on both (each counted over its own scrapes: 600 routed, 450 timed).
    assert obs.canary.requests == pytest.approx(450.0)
    assert obs.canary.latency.count == pytest.approx(450.0)


def _misaligned_aa_rejects(seed: int, common: bool) -> bool:
    """One A/A rollout step at 10% through per-arm scrape targets 15 s apart in phase, shared bursts."""
    from mlship.canary import stats
    from mlship.canary.analysis import common_window, step_counter

    rng = np.random.default_rng(seed)
    dt, horizon, scrape, weight = 0.5, 600.0, 15.0, 0.10
    t = np.arange(int(horizon / dt)) * dt
    burst = (((t + rng.uniform(0, 120)) % 120) < 10) * 0.2 + 0.005
    requests = {
        arm: rng.poisson(50 * share * dt, t.size) for arm, share in (("c", weight), ("s", 1 - weight))
    }
    errors = {arm: np.cumsum(rng.binomial(n, burst)) for arm, n in requests.items()}
    phases = {"c": rng.uniform(0, scrape), "s": rng.uniform(0, scrape)}
    scrapes = {arm: np.arange(phases[arm], horizon, scrape) for arm in phases}
    samples = {arm: [(s, float(errors[arm][int(s / dt)])) for s in scrapes[arm]] for arm in phases}
    for look in np.arange(30.0, horizon, scrape):
        seen = {arm: [(s, v) for s, v in samples[arm] if s <= look - 1.0] for arm in phases}
        counters = {arm: step_counter([(-1.0, 0.0), *seen[arm]], 0.0) for arm in phases}
        if any(c is None for c in counters.values()):
            continue
        if common:
            start, end = common_window(c for c in counters.values() if c is not None)
            counts = {arm: c.at(end) - c.at(start) for arm, c in counters.items() if c is not None}
        else:
            counts = {arm: c.points[-1][1] for arm, c in counters.items() if c is not None}
        test = stats.share_test(counts["c"], counts["s"], canary_share=weight, ratio_limit=1.5, alpha=0.0025)
        if test.rejected:
            return True
    return False


def test_an_identical_canary_scraped_out_of_phase_is_not_rejected_once_counts_share_a_window():
    # The review's repro (issue 12): 9 of 100 A/A steps rejected when each arm was counted over its own
    # scrapes; with the common window, none (the e-value test's level is 0.25 %).
    assert sum(_misaligned_aa_rejects(seed, common=True) for seed in range(100)) <= 2
    assert sum(_misaligned_aa_rejects(seed, common=False) for seed in range(100)) >= 4  # the bug, seen

"""Live checks against a real Prometheus loading mlship's alerting rules (Debian's prometheus, loopback)."""

from __future__ import annotations

import time

from score_helpers import REPO

from mlship.local.processes import free_ports
from mlship.score import evidence_map, rubric
from mlship.score.evidence import LiveState
from mlship.score.evidence_map import LiveEvidence, LiveSpec


def test_every_alert_the_repositorys_map_names_is_loaded_healthy_and_evaluated(prometheus):
    declared = evidence_map.load(REPO / "mlship-score.yaml", rubric.load())
    pending = {"OnlineQualityRegression", "NonFinitePredictions"}  # the feedback branch's (docs/score.md)
    live = LiveState.probe(prometheus)
    try:
        assert live.reachable
        for item_id, item in declared.items.items():
            for e in item.all_evidence():
                if isinstance(e, LiveEvidence):
                    alerts = [a for a in e.live.alerts if a not in pending]
                    if alerts:
                        result = live.check(LiveSpec(alerts=alerts))
                        assert result.status == "passed", (item_id, result.detail)
    finally:
        live.close()


def test_a_missing_alert_or_series_fails_the_live_check(prometheus):
    live = LiveState.probe(prometheus)
    try:
        result = live.check(LiveSpec(alerts=["ModelStale", "NoSuchAlert"], series=["mlship_model_info"]))
        assert result.status == "failed"
        assert "alert NoSuchAlert absent" in result.detail and "no series mlship_model_info" in result.detail
        deadline = time.monotonic() + 20
        while not live.check(LiveSpec(series=["prometheus_build_info"])).passed:
            assert time.monotonic() < deadline, "Prometheus never scraped itself"
            live._series.clear()
            time.sleep(0.5)
    finally:
        live.close()


def test_an_unreachable_prometheus_is_not_checked_and_not_evidence():
    (port,) = free_ports(1)
    live = LiveState.probe(f"http://127.0.0.1:{port}")
    result = live.check(LiveSpec(alerts=["ModelStale"]))
    assert not live.reachable and result.status == "not checked" and not result.counts
    assert "does not answer: not evidenced" in result.detail


def test_live_checks_can_be_disabled_but_then_evidence_nothing():
    result = LiveState.probe(None).check(LiveSpec(alerts=["ModelStale"]))
    assert result.status == "not checked" and not result.counts

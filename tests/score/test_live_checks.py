"""Live checks against a real Prometheus loading mlship's alerting rules (Debian's prometheus, loopback)."""

from __future__ import annotations

import time

from score_helpers import free_port

from mlship.score.evidence import LiveState
from mlship.score.rubric import LiveCheck, load


def probe(url: str) -> LiveState:
    return LiveState.probe(url)


def test_every_alert_the_rubric_names_is_loaded_and_healthy(prometheus):
    live = probe(prometheus)
    try:
        assert live.reachable
        for item in load().items:
            if item.live is not None and item.live.alerts:
                result = live.check(LiveCheck(alerts=item.live.alerts))
                assert result.status == "passed", (item.id, result.detail)
    finally:
        live.close()


def test_a_missing_alert_or_series_fails_the_live_check(prometheus):
    live = probe(prometheus)
    try:
        result = live.check(LiveCheck(alerts=["ModelStale", "NoSuchAlert"], series=["mlship_model_info"]))
        assert result.status == "failed"
        assert "alert NoSuchAlert absent" in result.detail and "no series mlship_model_info" in result.detail
        deadline = time.monotonic() + 20
        while not live.check(LiveCheck(series=["prometheus_build_info"])).passed:
            assert time.monotonic() < deadline, "Prometheus never scraped itself"
            live._series.clear()
            time.sleep(0.5)
    finally:
        live.close()


def test_an_unreachable_prometheus_is_not_checked():
    live = probe(f"http://127.0.0.1:{free_port()}")
    result = live.check(LiveCheck(alerts=["ModelStale"]))
    assert not live.reachable and result.status == "not checked" and "does not answer" in result.detail


def test_live_checks_can_be_disabled():
    live = LiveState.probe(None)
    assert live.check(LiveCheck(alerts=["ModelStale"])).status == "not checked"

"""The local environment: real BentoML servers behind HAProxy, Prometheus scraping them, on loopback."""

from __future__ import annotations

import os
import socket
import time

import httpx
import pytest

from mlship.errors import EnvironmentNotReady, RefusedError
from mlship.local.processes import alive, port_free
from mlship.promclient import Prometheus

pytestmark = pytest.mark.integration

ROW = {
    "age": 50.0,
    "sex": 1,
    "bmi": 25.0,
    "bp": 90.0,
    "s1": 180.0,
    "s2": 110.0,
    "s3": 50.0,
    "s4": 4.0,
    "s5": 4.6,
    "s6": 90.0,
}


def wait_for(check, timeout: float = 60.0, step: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    return check()


def test_up_predict_metrics_in_prometheus_then_down_leaves_nothing(fresh_env, models):
    env = fresh_env.env
    version = models["baseline"].version
    for _ in range(20):
        response = httpx.post(f"{env.proxy_url}/predict", json=ROW, timeout=10)
        assert response.status_code == 200
        assert response.json()["model_version"] == version
    assert httpx.post(f"{env.proxy_url}/predict", json={**ROW, "age": 500}, timeout=10).status_code == 400

    prom = Prometheus(env.prometheus_url)
    query = f'sum(mlship_predictions_total{{model_version="{version}",role="stable",job="mlship-model"}})'
    assert wait_for(lambda: (prom.scalar(query) or 0) >= 20), "predictions never reached Prometheus"
    rejected = (
        f'sum(mlship_rejected_inputs_total{{model_version="{version}",reason="less_than_equal",field="age"}})'
    )
    assert wait_for(lambda: (prom.scalar(rejected) or 0) >= 1)
    router = 'sum(haproxy_server_http_responses_total{proxy="model",server="stable",code="2xx"})'
    assert wait_for(lambda: (prom.scalar(router) or 0) >= 20), "router metrics missing"
    assert prom.query("ALERTS") is not None  # rules loaded: the ALERTS series is queryable
    rules = httpx.get(f"{env.prometheus_url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    assert rules, "the project's rule files are loaded"

    components = env.load().components
    pids = {name: comp.pid for name, comp in components.items()}
    assert set(pids) == {"stable", "router", "prometheus", "node_exporter"}
    stopped = env.down()
    assert set(stopped) == set(pids)
    for pid in pids.values():
        assert not alive(pid)
    for port in (env.config.local.proxy_port, env.config.local.prometheus_port, env.config.local.stable_port):
        assert port_free(port)


def test_up_twice_is_harmless(fresh_env):
    env = fresh_env.env
    before = {n: c.pid for n, c in env.load().components.items()}
    env.up()
    after = {n: c.pid for n, c in env.load().components.items()}
    assert before == after


def test_up_refuses_another_stable_version_on_a_running_environment(fresh_env, models):
    with pytest.raises(RefusedError, match="already serves"):
        fresh_env.env.up(models["candidate"].version)


def test_up_refuses_an_unblessed_model_unless_forced_and_records_it(models, tmp_path, local_env_factory):
    from mlship.model.releases import Releases

    handle = local_env_factory(tmp_path / "state")
    vetoed = models["shifted"].version
    with pytest.raises(RefusedError, match=rf"serving {vetoed} as stable refused: .*not blessed.*--force"):
        handle.env.up(vetoed)
    assert handle.env.load().components == {}
    try:
        handle.env.up(vetoed, force=True)
        assert handle.env.running("stable").version == vetoed
        last = Releases.load().history[-1]
        assert last.version == vetoed and "the quality gate vetoed it" in " ".join(last.forced)
    finally:
        handle.env.down()


def test_a_taken_port_is_a_clear_error_and_nothing_starts(models, tmp_path, local_env_factory):

    handle = local_env_factory(tmp_path / "state")
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", handle.config.local.prometheus_port))
    blocker.listen()
    try:
        with pytest.raises(EnvironmentNotReady) as info:
            handle.env.up(models["baseline"].version)
        assert str(handle.config.local.prometheus_port) in str(info.value)
        assert "local.prometheus_port" in str(info.value)
        assert handle.env.load().components == {}
    finally:
        blocker.close()


def test_a_missing_binary_is_a_clear_error_and_nothing_starts(
    models, tmp_path, monkeypatch, local_env_factory
):

    handle = local_env_factory(tmp_path / "state")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(EnvironmentNotReady, match=r"haproxy.*make setup"):
        handle.env.up(models["baseline"].version)
    assert handle.env.load().components == {}


def test_unknown_model_is_refused_before_anything_starts(models, tmp_path, local_env_factory):

    handle = local_env_factory(tmp_path / "state")
    with pytest.raises(RefusedError, match="unknown model"):
        handle.env.up("0123456789ab")
    assert handle.env.load().components == {}
    assert os.environ["MLSHIP_STATE_DIR"] == str(tmp_path / "state")


def test_two_stable_servers_share_traffic_lose_nothing_when_one_dies_and_promote_together(
    models, tmp_path, local_env_factory
):
    from mlship.canary.backends.local import LocalBackend
    from mlship.local.environment import LocalEnvironment
    from mlship.local.processes import kill_tree

    handle = local_env_factory(tmp_path / "state")
    local = handle.config.local.model_copy(update={"stable_replicas": 2})
    handle.env.config = handle.config = handle.config.model_copy(update={"local": local})
    env = handle.env
    baseline, candidate = models["baseline"].version, models["candidate"].version
    env.up(baseline)
    try:
        router = env.router()
        assert set(router.servers()) == {"stable", "stable-2", "canary"}
        for _ in range(20):
            assert httpx.post(f"{env.proxy_url}/predict", json=ROW, timeout=10).status_code == 200
        assert router.sessions_total("stable") >= 5 and router.sessions_total("stable-2") >= 5

        # the same ports with one stable server: refused, the running environment untouched
        single = handle.config.model_copy(
            update={"local": handle.config.local.model_copy(update={"stable_replicas": 1})}
        )
        with pytest.raises(RefusedError, match="stable_replicas"):
            LocalEnvironment(single).up()
        assert env.running("stable-2") is not None

        handle.start_traffic(rps=20)
        time.sleep(2)
        killed = kill_tree(env.running("stable-2").pid)  # the server and its workers, as a crash would
        assert wait_for(lambda: not router.servers()["stable-2"].operational, timeout=20)
        time.sleep(3)
        handle.stop_traffic()
        traffic = handle.traffic
        assert traffic.sent > 50
        assert traffic.server_errors + traffic.failed == 0, f"lost requests: {traffic.failure_kinds}"
        assert not any(alive(pid) for pid in killed)

        env.up()  # restarts what died, on the same version
        assert env.running("stable-2").version == baseline
        assert wait_for(lambda: router.servers()["stable-2"].operational, timeout=20)

        # the canary's share is the configured percentage whatever the number of stable servers
        backend = LocalBackend(env)
        backend.deploy_canary(candidate, shadow=False)
        backend.set_weight(25)
        assert backend.routing().weight == 25
        weights = {name: s.weight for name, s in router.servers().items()}
        assert weights == {"stable": 75, "stable-2": 75, "canary": 50}

        backend.promote()  # both stable servers move to the new version
        assert env.running("stable").version == env.running("stable-2").version == candidate
        assert backend.routing().canary_version is None
        answers = {
            httpx.post(f"{env.proxy_url}/predict", json=ROW, timeout=10).json()["model_version"]
            for _ in range(10)
        }
        assert answers == {candidate}
    finally:
        handle.stop_traffic()
        stopped = env.down()
    assert {"stable", "stable-2", "router", "prometheus"} <= set(stopped)

"""The canary reaches the cluster's Prometheus through `kubectl port-forward` (review of issue 11, defect 8).

Nothing exposes Prometheus (ClusterIP Services, default-deny ingress in the monitoring namespace), so the
documented PROMETHEUS_URL pointed nowhere. Real: Debian's Prometheus. Stands in: tests/fake_kubectl.py for
kubectl + API server + kubelet (same output lines as kubectl, each connection piped to the real Prometheus).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from prometheus_process import running_prometheus

from mlship.errors import EnvironmentNotReady
from mlship.k8s.portforward import PortForward, port_forward
from mlship.promclient import Prometheus

FAKE = Path(__file__).resolve().parents[1] / "fake_kubectl.py"
SERVICE = "kube-prometheus-stack-prometheus-0"


@pytest.fixture
def kubectl(tmp_path, monkeypatch) -> tuple[str, Path]:
    wrapper = tmp_path / "kubectl"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {FAKE} "$@"\n')
    wrapper.chmod(0o755)
    log = tmp_path / "kubectl.log"
    monkeypatch.setenv("FAKE_KUBECTL_LOG", str(log))
    monkeypatch.setenv("FAKE_KUBECTL_SERVICE", SERVICE)
    return str(wrapper), log


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    with running_prometheus(tmp_path_factory.mktemp("prom"), rule_files=[]) as url:
        yield url


def test_the_canary_reads_prometheus_through_a_port_forward(kubectl, prometheus, monkeypatch):
    wrapper, log = kubectl
    monkeypatch.setenv("FAKE_KUBECTL_UPSTREAM", prometheus.removeprefix("http://"))
    with port_forward("monitoring", SERVICE, 9090, kubectl=wrapper) as url:
        assert url.startswith("http://127.0.0.1:") and url != prometheus
        prom = Prometheus(url)
        assert prom.ready()
        (sample,) = prom.query("vector(42)")  # the real server evaluates a query through the forward
        assert sample.value == 42
        prom.close()
    (args,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert args == [
        "port-forward",
        "--address",
        "127.0.0.1",
        "--namespace",
        "monitoring",
        f"svc/{SERVICE}",
        ":9090",
    ]


def test_a_dead_forward_is_restarted_on_the_same_port(kubectl, prometheus, monkeypatch):
    wrapper, log = kubectl
    monkeypatch.setenv("FAKE_KUBECTL_UPSTREAM", prometheus.removeprefix("http://"))
    monkeypatch.setenv("FAKE_KUBECTL_EXIT_AFTER", "1")  # the pod behind the forward restarts
    forward = PortForward("monitoring", SERVICE, 9090, kubectl=wrapper)
    url = forward.start()
    try:
        assert Prometheus(url).ready()
        deadline = time.monotonic() + 15
        while forward.restarts == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert forward.restarts >= 1
        assert Prometheus(url).ready()  # same URL, new kubectl
    finally:
        forward.close()
    starts = [json.loads(line)[-1] for line in log.read_text().splitlines()]
    assert starts[0] == ":9090" and starts[1] == f"{url.rsplit(':', 1)[1]}:9090"


def test_a_missing_service_is_one_clear_error(kubectl, monkeypatch):
    wrapper, _ = kubectl
    monkeypatch.setenv("FAKE_KUBECTL_SERVICE", "something-else")
    with (
        pytest.raises(EnvironmentNotReady) as error,
        port_forward("monitoring", SERVICE, 9090, kubectl=wrapper),
    ):
        pytest.fail("no forward expected")
    message = str(error.value)
    assert f'services "{SERVICE}" not found' in message
    assert f"kubectl -n monitoring get svc {SERVICE}" in message and "--prometheus-url" in message


def test_no_kubectl_names_the_install_target(monkeypatch, tmp_path):
    from mlship.k8s import portforward

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("KUBECTL", raising=False)
    monkeypatch.setattr("mlship.paths.project_root", lambda: tmp_path)
    with pytest.raises(EnvironmentNotReady, match="make kubectl-cli"):
        portforward.kubectl_binary()

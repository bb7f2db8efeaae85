"""Reach a Service inside the cluster from the machine running mlship: ``kubectl port-forward``.

The canary reads the cluster's Prometheus, which nothing exposes: kube-prometheus-stack's Services are
ClusterIP and the monitoring namespace denies ingress by default (mlship/k8s/components/network_policies.py).
``kubectl port-forward`` goes through the API server and the kubelet into the pod's network namespace, so
it needs only the kubeconfig's credentials (``pods/portforward`` in that namespace) and no NetworkPolicy
opening. kubectl forwards a Service to one of its pods, chosen when the forward starts: with the
per-replica Service of Prometheus (``prometheus_replica_service``) that is always the same replica.

``kubectl port-forward ... :PORT`` picks a free local port and prints ``Forwarding from 127.0.0.1:<local>
-> PORT``; it prints ``Handling connection for PORT`` for every connection afterwards, so its output is
drained for as long as it runs (a full pipe would stop the forward).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from mlship.errors import EnvironmentNotReady

_FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)")


def kubectl_binary() -> str:
    """``$KUBECTL``, else the one ``make kubectl-cli`` installs (.mlship/bin), else kubectl on PATH."""
    from mlship.paths import project_root

    for candidate in (os.environ.get("KUBECTL"), str(project_root() / ".mlship" / "bin" / "kubectl")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("kubectl")
    if found is None:
        raise EnvironmentNotReady(
            "kubectl is not installed: `make kubectl-cli` installs the pinned one into .mlship/bin "
            "(or pass --prometheus-url with an address of the cluster's Prometheus)"
        )
    return found


class PortForward:
    """One ``kubectl port-forward`` to ``svc/<service>:<port>``, restarted on the same local port if it
    exits (kubectl ends a forward when the pod it chose restarts or the connection to the API drops)."""

    def __init__(
        self, namespace: str, service: str, port: int, *, kubectl: str | None = None, timeout: float = 30.0
    ) -> None:
        self.namespace, self.service, self.port, self.timeout = namespace, service, port, timeout
        self.kubectl = kubectl or kubectl_binary()
        self.local: int | None = None
        self.restarts = 0
        self._process: subprocess.Popen[str] | None = None
        self._closed = threading.Event()
        self._lock = threading.Lock()

    def command(self, local: int | None) -> list[str]:
        target = f"{local}:{self.port}" if local else f":{self.port}"
        return [self.kubectl, "port-forward", "--address", "127.0.0.1", "--namespace", self.namespace,
                f"svc/{self.service}", target]  # fmt: skip

    def start(self) -> str:
        """Start the forward; returns ``http://127.0.0.1:<local port>``. Raises EnvironmentNotReady."""
        self._process, self.local = self._spawn(None)
        threading.Thread(target=self._supervise, daemon=True).start()
        return f"http://127.0.0.1:{self.local}"

    def _spawn(self, local: int | None) -> tuple[subprocess.Popen[str], int]:
        process = subprocess.Popen(
            self.command(local), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
        )
        errors: list[str] = []
        drain_err = threading.Thread(target=_drain, args=(process.stderr, errors), daemon=True)
        drain_err.start()
        found = _wait_for_port(process, self.port, self.timeout)
        if found is None:
            _stop(process)
            drain_err.join(timeout=2)
            why = " ".join(line.strip() for line in errors if line.strip())[-300:] or "no output"
            raise EnvironmentNotReady(
                f"kubectl port-forward to svc/{self.service} in namespace {self.namespace} failed ({why}): "
                f"check the kubeconfig (KUBECONFIG) and that the Service exists (`kubectl -n "
                f"{self.namespace} get svc {self.service}`), or pass --prometheus-url"
            )
        threading.Thread(target=_drain, args=(process.stdout, []), daemon=True).start()
        return process, found

    def _supervise(self) -> None:
        while not self._closed.is_set():
            process = self._process
            if process is not None and process.poll() is not None and not self._closed.is_set():
                with self._lock:
                    try:
                        self._process, _ = self._spawn(self.local)
                        self.restarts += 1
                    except EnvironmentNotReady:
                        pass  # queries fail meanwhile (the controller holds, then rolls back); retried
            self._closed.wait(1.0)

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            if self._process is not None:
                _stop(self._process)


@contextlib.contextmanager
def port_forward(
    namespace: str, service: str, port: int, *, kubectl: str | None = None, timeout: float = 30.0
) -> Iterator[str]:
    """Forward a free loopback port to ``svc/service:port`` in ``namespace``; yields ``http://127.0.0.1:N``."""
    forward = PortForward(namespace, service, port, kubectl=kubectl, timeout=timeout)
    url = forward.start()
    try:
        yield url
    finally:
        forward.close()


def _wait_for_port(process: subprocess.Popen[str], port: int, timeout: float) -> int | None:
    """The local port kubectl reports, or None if it exits or stays silent for ``timeout`` seconds."""
    found: list[int] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            match = _FORWARDING.search(line)
            if match and int(match.group(2)) == port:
                found.append(int(match.group(1)))
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while not found and reader.is_alive() and time.monotonic() < deadline:
        reader.join(timeout=0.1)
    return found[0] if found else None


def _drain(stream: object, keep: list[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        if len(keep) < 50:
            keep.append(line)


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

"""Counter resets are neither traffic nor errors: the analysis's counts across a router restart.

A crashed router (or model server) comes back with every counter at 0, under the same labels. A real
Prometheus scrapes a stand-in for the router's exporter (HAProxy's metric names and labels, served by
the test so the counts are known exactly) that serves traffic, dies for 3 s, and comes back with its
counters started over. The analysis (``Analyzer``, the raw samples of ``analysis.LOCAL``'s series) must count
the requests that really happened, no errors, and a step that began after the restart only what
followed it. The real router's restart under a real rollout is in the fault campaign
(devtools/reliability/recovery.py) and tests/integration/test_canary_local.py.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from prometheus_process import running_prometheus

from mlship import names
from mlship.canary.analysis import Analyzer
from mlship.canary.state import RolloutState
from mlship.local.processes import free_ports, wait_until
from mlship.promclient import Prometheus

RATES = {"stable": 20.0, "canary": 4.0}  # requests per second the stand-in router answers


class RouterExporter:
    """Serves HAProxy-named counters growing at ``RATES`` since this life of the process began."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.server: HTTPServer | None = None
        self.born = 0.0
        self.lives: list[tuple[float, float]] = []  # (born, died) of each life

    def counts(self) -> dict[str, int]:
        age = time.time() - self.born
        return {server: int(rate * age) for server, rate in RATES.items()}

    def start(self) -> None:
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                lines = []
                for server, n in exporter.counts().items():
                    labels = f'proxy="{names.HAPROXY_BACKEND}",server="{server}"'
                    lines += [
                        f'{names.METRIC_ROUTER_RESPONSES}{{{labels},code="2xx"}} {n}',
                        f'{names.METRIC_ROUTER_RESPONSES}{{{labels},code="5xx"}} 0',
                        f"{names.METRIC_ROUTER_CONN_ERRORS}{{{labels}}} 0",
                        f"{names.METRIC_ROUTER_RESP_ERRORS}{{{labels}}} 0",
                    ]
                body = ("\n".join(lines) + "\n").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.born = time.time()
        self.server = HTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def crash(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()
        self.lives.append((self.born, time.time()))

    def served(self, since: float, until: float) -> dict[str, float]:
        """Requests really answered between ``since`` and ``until`` (nothing while it was down)."""
        lives = [*self.lives, (self.born, until)] if self.server is not None else self.lives
        overlap = sum(max(0.0, min(until, died) - max(since, born)) for born, died in lives)
        return {server: rate * overlap for server, rate in RATES.items()}


def _state(analysis_start: float, step_start: float) -> RolloutState:
    return RolloutState(
        rollout_id="r",
        env="local",
        phase="progressing",
        stable_version="a1",
        canary_version="b2",
        steps=[20, 100],
        step_index=0,
        weight=20,
        shadow=False,
        started_at=analysis_start,
        analysis_started_at=analysis_start,
        step_started_at=step_start,
        updated_at=step_start,
    )


@pytest.fixture
def exporter():
    (port,) = free_ports(1)
    exporter = RouterExporter(port)
    yield exporter
    if exporter.server is not None:
        exporter.server.shutdown()
        exporter.server.server_close()


def test_a_router_restart_is_counted_as_the_requests_it_served_and_no_error(tmp_path, exporter):
    scrape = [{"job_name": names.JOB_ROUTER, "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"]}]}]
    with running_prometheus(tmp_path / "prometheus", rule_files=[], scrape_configs=scrape) as url:
        prom = Prometheus(url)
        stable_2xx = f'{names.METRIC_ROUTER_RESPONSES}{{server="stable",code="2xx"}}'
        exporter.start()
        # Prometheus applies new targets every 5 s: the rollout starts once it scrapes the router.
        wait_until(lambda: prom.scalar(f"count({stable_2xx})") == 1, timeout=20, what="first scrape")
        start = time.time()
        time.sleep(5)
        exporter.crash()
        time.sleep(3)  # down: scrapes fail, nothing served
        exporter.start()  # back with every counter at 0
        restarted = time.time()
        time.sleep(5)
        now = time.time()
        assert prom.scalar(f"resets({stable_2xx}[1m])") == 1  # Prometheus saw the counter go down
        obs = Analyzer(prom).observe(_state(start, start), now)  # a step spanning the restart
        later = Analyzer(prom).observe(_state(start, restarted), now)  # a step begun after it
    truth = exporter.served(start, now)
    step_truth = exporter.served(restarted, now)
    # Within the scrape interval's worth at each end of the window.
    for role, counts in (("stable", obs.stable), ("canary", obs.canary)):
        assert counts.requests == pytest.approx(truth[role], abs=2.5 * RATES[role]), role
        # Raw differences of what was scraped, never extrapolated past it (1 s of integer rounding).
        assert counts.requests <= truth[role] + RATES[role], role
        assert counts.errors == 0 and counts.rejected == 0, role
    assert later.step_canary_requests == pytest.approx(step_truth["canary"], abs=2.5 * RATES["canary"])
    assert later.stable.requests == pytest.approx(step_truth["stable"], abs=2.5 * RATES["stable"])
    # Not just the last life: the requests served before the crash are in the step's counts.
    first_life = truth["stable"] - step_truth["stable"]
    assert obs.stable.requests > step_truth["stable"] + 0.5 * first_life

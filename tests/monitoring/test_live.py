"""Live check: every PromQL expression of the rules and dashboards against the local environment.

Uses the ``local_env`` fixture (tests/conftest.py): the real local environment (BentoML servers
behind HAProxy, node exporter, Prometheus loading the generated rules) with traffic flowing. It
yields an object with ``prometheus_url`` and ``covers``: the situations its traffic includes among
``canary`` (a canary serving), ``rollout`` (the runner publishing its state), ``shadow`` (mirrored
requests) and ``rejections`` (invalid requests). An expression needing a situation the traffic does
not cover fails, naming it: it would otherwise be checked for nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from monitoring_helpers import REPO

from mlship.monitoring import live
from mlship.promclient import Prometheus

pytestmark = pytest.mark.integration
EXPRESSIONS = live.expressions()
WARM_UP_SECONDS = 90


@pytest.fixture(scope="module")
def prometheus(local_env):
    client = Prometheus(local_env.prometheus_url)
    # recording rules need a few evaluations after the environment starts
    start = time.monotonic()
    while not client.query('slo:sli_error:ratio_rate5m{slo="model-api-availability"}'):
        if time.monotonic() - start > WARM_UP_SECONDS:
            pytest.fail(
                f"no SLO recording in {local_env.prometheus_url} after {WARM_UP_SECONDS} s: rules not loaded?"
            )
        time.sleep(2)
    yield client
    client.close()


@pytest.mark.parametrize("expression", EXPRESSIONS, ids=[e.source for e in EXPRESSIONS])
def test_expression_parses_and_has_data_under_traffic(local_env, prometheus, expression):
    missing = expression.needs - local_env.covers
    # An expression needing traffic the fixture does not make would be checked for nothing.
    assert not (expression.expect_data and missing), (
        f"{expression.source} needs traffic the local_env fixture does not make: {sorted(missing)}"
    )
    result = live.check(prometheus, expression)
    assert result.ok, f"{expression.source}: {result.error}\n{expression.expr}"


def test_drift_command_reads_the_live_histograms(local_env):
    mlship = str(Path(sys.executable).parent / "mlship")
    args = [mlship, "drift", "--json", "--prometheus-url", local_env.prometheus_url, "--window", "5m"]
    result = subprocess.run(args, capture_output=True, text=True, check=False, cwd=REPO, timeout=180)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    stable = next(v for v in report["versions"] if v["role"] == "stable")
    kinds = {f["feature"]: f["kind"] for f in stable["features"]}
    assert kinds["sex"] == "categorical" and kinds["bmi"] == "numeric"  # schema from the registry
    assert all(f["observations"] > 0 for f in stable["features"])
    assert stable["predictions"] is not None

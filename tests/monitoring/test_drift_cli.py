"""`mlship drift` and the drift rules end to end: real Prometheus, the server's metric code, the CLI.

Two fixture exporters (tests/monitoring/feeder.py) run the model server's metric code: a stable
version served held-out patients as they are, a canary version served the same patients with BMI
shifted by +6 kg/m2 (as `mlship load --shift bmi=6` does). A real Prometheus scrapes them with the
generated model-and-data rules loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from monitoring_helpers import REPO, free_port, wait_until

from mlship.errors import ExitCode
from mlship.monitoring import committed, live
from mlship.monitoring.model_rules import NAMES
from mlship.promclient import Prometheus

pytestmark = pytest.mark.integration
MLSHIP = str(Path(sys.executable).parent / "mlship")
FEEDER = Path(__file__).resolve().parent / "feeder.py"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MLSHIP, *args], capture_output=True, text=True, check=False, cwd=REPO, env=env, timeout=180
    )


@pytest.fixture
def drifting_prometheus(start_prometheus, tmp_path):
    feeders = []
    targets = []
    for role, version, shift in (("stable", "a1", []), ("canary", "b2", ["--shift", "bmi=6"])):
        port = free_port()
        log = (tmp_path / f"feeder-{role}.log").open("w")
        feeders.append(
            subprocess.Popen(
                [sys.executable, str(FEEDER), "--port", str(port), "--version", version, *shift],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        targets.append({"targets": [f"127.0.0.1:{port}"], "labels": {"role": role}})
    scrape = [{"job_name": "mlship-model", "static_configs": targets}]
    url = start_prometheus(scrape, [committed.RULES_DIR / "model-data.yml"])
    prometheus = Prometheus(url)
    try:
        # enough scrapes for rates and about 2 000 values per role
        wait_until(
            lambda: len(prometheus.query(NAMES.psi)) == 20, timeout=90, what="PSI for 10 features x 2 roles"
        )
        time.sleep(10)
        yield url, prometheus
    finally:
        prometheus.close()
        for feeder in feeders:
            feeder.terminate()
            feeder.wait(timeout=10)


def test_drift_rules_and_command_see_the_shifted_canary_only(drifting_prometheus, tmp_path):
    url, prometheus = drifting_prometheus

    # the alert condition (before its `for`) holds for exactly one series: bmi of the canary
    feature_alert = next(a for a in live.rule_expressions() if a.source == "alert FeatureDrift")
    firing = prometheus.query(feature_alert.expr)
    assert [(s.labels["role"], s.labels["feature"]) for s in firing] == [("canary", "bmi")]
    prediction_alert = next(a for a in live.rule_expressions() if a.source == "alert PredictionDrift")
    assert "canary" in {s.labels["role"] for s in prometheus.query(prediction_alert.expr)}

    # every model-and-data recording has data for both versions (rejections come from BentoML)
    for expression in live.rule_expressions():
        if expression.source.startswith("rule mlship-model-data/") and "rejections" not in expression.source:
            roles = {s.labels.get("role") for s in prometheus.query(expression.expr)}
            assert roles == {"stable", "canary"}, expression.source

    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "empty-store")}  # versions unknown to the registry
    result = _run(
        "drift", "--against", "training", "--json", "--prometheus-url", url, "--window", "5m", env=env
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["against"] == "training" and report["window"] == "5m" and report["drift"] is True
    by_role = {v["role"]: v for v in report["versions"]}
    assert {r: v["model_version"] for r, v in by_role.items()} == {"stable": "a1", "canary": "b2"}
    verdicts = {(r, f["feature"]): f["verdict"] for r, v in by_role.items() for f in v["features"]}
    assert verdicts.pop(("canary", "bmi")) == "drift"
    assert "drift" not in verdicts.values()
    bmi = next(f for f in by_role["canary"]["features"] if f["feature"] == "bmi")
    assert bmi["psi"] > 0.2 and bmi["p_value"] < 0.01 and bmi["observations"] > 500
    assert bmi["kind"] == "unknown" and bmi["test"] == "chi2" and bmi["ks"] is None
    assert bmi["chi2"]["df"] == 9
    assert by_role["canary"]["predictions"]["verdict"] == "drift"

    failing = _run("drift", "--prometheus-url", url, "--window", "5m", "--fail-on-drift", env=env)
    assert failing.returncode == ExitCode.DRIFT_FOUND, failing.stderr
    assert "bmi" in failing.stdout and "drift" in failing.stdout


def test_unreachable_prometheus_is_a_clear_error():
    url = f"http://127.0.0.1:{free_port()}"
    result = _run("drift", "--prometheus-url", url)
    assert result.returncode == ExitCode.PROMETHEUS_UNAVAILABLE
    assert f"Prometheus at {url} is unreachable" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_window_that_is_no_prometheus_duration_is_refused():
    result = _run("drift", "--window", "1 hour")
    assert result.returncode == ExitCode.USAGE
    assert "not a Prometheus duration" in result.stderr

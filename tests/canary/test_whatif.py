"""`mlship canary simulate`: simulated counters, scraped, read by the production Analyzer and judge.

``ScrapedPrometheus`` stands in for Prometheus scraping the router and model servers (no real
traffic here): it stores one sample per series per scrape, visible after a lag.
"""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from mlship import names
from mlship.canary import whatif
from mlship.canary.analysis import Analyzer
from mlship.canary.simulate import Scenario, _Traffic
from mlship.canary.state import RolloutState
from mlship.cli import app
from mlship.config import CanaryConfig
from mlship.errors import ConfigError, ExitCode

CFG = CanaryConfig()


def test_the_analyzer_reads_the_scraped_counters_as_the_requests_served_between_scrapes():
    traffic = _Traffic(Scenario("t", rps=100), np.random.default_rng(0))
    prom = whatif.ScrapedPrometheus(lag=1.0)
    roles = lambda: {names.ROLE_STABLE: traffic.stable, names.ROLE_CANARY: traffic.canary}  # noqa: E731
    at = {}
    for t in (5.0, 20.0, 35.0, 50.0):
        traffic.step(15.0 if t > 5 else 5.0, 20, False)
        prom.scrape(t, roles())
        at[t] = (traffic.stable.requests, traffic.canary.requests, traffic.canary.errors)
    state = RolloutState(
        rollout_id="r", env="simulated", phase="progressing", stable_version="a", canary_version="b",
        steps=[20, 100], step_index=0, weight=20, shadow=False, started_at=0.0,
        analysis_started_at=0.0, step_started_at=10.0, updated_at=0.0,
    )  # fmt: skip
    obs = Analyzer(prom).observe(state, 50.5)  # type: ignore[arg-type]
    # The scrape at 50 is not visible yet (lag 1 s); the step began at 10: from the scrape at 20 to 35.
    assert obs.stable.requests == at[35.0][0] - at[20.0][0]
    assert obs.canary.requests == at[35.0][1] - at[20.0][1]
    assert obs.canary.errors == at[35.0][2] - at[20.0][2]
    assert obs.canary.latency.count == obs.canary.requests - obs.canary.errors
    later = Analyzer(prom).observe(state, 51.0)  # type: ignore[arg-type]
    assert later.canary.requests == at[50.0][1] - at[20.0][1]


def test_a_bad_canary_is_rolled_back_and_an_identical_one_promoted_through_scrapes():
    bad = whatif.scenario("errors", rps=50, steps=(10, 50, 100))
    outcomes = whatif.run_many(bad, CFG, 4, scraping=whatif.Scraping(15.0, 1.0))
    assert [o.ending for o in outcomes] == ["rolled_back"] * 4
    assert all(o.triggered_by == ("errors",) and o.final_step == 0 for o in outcomes)
    same = whatif.scenario("aa", rps=100, steps=(20, 50, 100), burst_error_rate=0.2, diurnal_swing=0.5)
    outcomes = whatif.run_many(same, CFG, 3, scraping=whatif.Scraping(15.0, 1.0))
    assert [o.ending for o in outcomes] == ["promoted"] * 3


def test_too_little_traffic_expires_without_a_verdict():
    starved = whatif.scenario("aa", rps=0.5, steps=(5, 100), max_seconds=2000)
    (outcome,) = whatif.run_many(starved, CFG.model_copy(update={"max_step_seconds": 120.0}), 1)
    assert outcome.ending == "expired" and outcome.triggered_by == ("insufficient data",)
    assert 120 < outcome.seconds <= 122


def test_simulate_command_prints_per_run_endings_and_medians_as_json(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlship.yaml").write_text("canary:\n  steps: [20, 100]\n  min_samples: 50\n")
    args = ["canary", "simulate", "--scenario", "errors", "--runs", "3", "--rps", "40", "--json"]
    result = CliRunner().invoke(app, [*args, "--scrape-interval", "2", "--seed", "5"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    # (Near the power edge at 50 requests a step: a run can promote before it sees the 5% error rate.)
    assert report["runs"] == 3 and report["endings"]["rolled_back"] >= 1
    assert sum(report["endings"].values()) == 3
    assert [run["seed"] for run in report["per_run"]] == [5, 6, 7]
    rolled_back = [run for run in report["per_run"] if run["ending"] == "rolled_back"]
    assert len(rolled_back) == report["endings"]["rolled_back"]
    assert all(run["triggered_by"] == ["errors"] for run in rolled_back)
    med = report["rolled_back"]["total_requests"]
    assert 0 < med["median"] <= med["p90"]


def test_simulate_refuses_an_unknown_scenario_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["canary", "simulate", "--scenario", "chaos"])
    # mlship.cli.main prints an MlshipError's message as one line and exits with its code.
    assert isinstance(result.exception, ConfigError) and result.exception.exit_code == ExitCode.USAGE
    assert str(result.exception) == (
        "canary simulate: scenario must be one of aa, errors, latency, shift, got 'chaos'"
    )

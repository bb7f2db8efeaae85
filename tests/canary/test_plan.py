"""`mlship canary plan`: how long each step needs at today's traffic, before a rollout starts."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from mlship.canary import stats
from mlship.canary.plan import make_plan
from mlship.cli import app
from mlship.config import CanaryConfig

# Steps 5, 10, 25, 50 (100 is the promotion), min_samples 200; 1200 s a step (the default is 600).
CFG = CanaryConfig(max_step_seconds=1200)


def test_each_judged_step_needs_min_samples_of_its_share_of_the_traffic():
    plan = make_plan(CFG, 10.0)
    assert [s.weight for s in plan.steps] == [5, 10, 25, 50]
    assert [s.seconds_to_samples for s in plan.steps] == [400.0, 200.0, 80.0, 40.0]
    assert plan.seconds_to_promote == 720.0 and not plan.expires and plan.warnings == []
    # With the default 600 s a step, the 5 % step's 400 s leave no room for a dip in traffic.
    default = make_plan(CanaryConfig(), 10.0)
    assert not default.expires and [s.at_risk for s in default.steps] == [True, False, False, False]
    assert default.warnings == [
        "step 5% needs ~7 min of canary.max_step_seconds (600s) at 10 req/s: "
        "a dip in traffic would make it expire"
    ]


def test_too_little_traffic_is_said_before_the_rollout_expires():
    plan = make_plan(CFG, 2.0)  # 0.1 canary req/s at 5 %: 2000 s for 200 requests
    assert plan.expires and not plan.steps[0].fits and plan.steps[1].at_risk
    assert plan.warnings[0].startswith("step 5% needs ~33 min for its 200 canary requests at 2 req/s")
    assert "1200s" in plan.warnings[0]
    assert "would expire there" in plan.warnings[0]
    assert make_plan(CFG, 0.0).steps[0].seconds_to_samples == math.inf


def test_the_detection_estimate_is_where_the_judges_e_value_crosses_its_threshold():
    plan = make_plan(CFG, 50.0, steps=[10, 25, 50, 100], effect=10.0, stable_error_rate=0.005)
    theta = 0.1 * 10 / (0.1 * 10 + 0.9)
    null = stats.share_null(0.1, CFG.error_ratio_limit)
    alpha = CFG.false_rollback_rate * 0.5 * 0.5  # first of several steps, errors' share
    k = plan.detection_errors
    assert stats.share_log_e(theta * k, (1 - theta) * k, null) >= math.log(1 / alpha)
    k = k / 1.05  # one grid step earlier it had not
    assert stats.share_log_e(theta * k, (1 - theta) * k, null) < math.log(1 / alpha)
    per_request = 0.1 * 0.05 + 0.9 * 0.005
    assert plan.detection_requests == pytest.approx(plan.detection_errors / per_request)
    assert plan.detection_seconds == pytest.approx(plan.detection_requests / 50.0)
    assert make_plan(CFG, 50.0, effect=1.2).detection_requests is None  # within the 1.5x limit


def test_plan_command_prints_the_plan_as_json(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["canary", "plan", "--rps", "2", "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["expires"] is True and plan["rps"] == 2.0
    assert [s["fits"] for s in plan["steps"]] == [False, False, True, True]  # 600 s a step by default
    # The paths respect max_step_seconds (issue 12 review item 4): no promotion time for a plan that
    # expires, and the first step expires after 600 s before the errors test has its requests.
    assert plan["seconds_to_promote"] is None
    assert (plan["expires_at_weight"], plan["expires_after_seconds"]) == (5, 600.0)
    assert plan["detection_expires"] is True


def test_plan_command_says_where_a_starved_rollout_expires_not_when_it_would_promote(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["canary", "plan", "--rps", "2"])
    assert result.exit_code == 0, result.output
    assert "promoted after" not in result.stdout and "rolled back at the first step" not in result.stdout
    assert "expires at step 5% after ~600s" in result.stdout
    assert "its first step expires after 600s" in result.stdout


def test_a_later_step_that_expires_is_reached_after_the_earlier_steps_time():
    plan = make_plan(CanaryConfig(max_step_seconds=300), 10.0)  # 5 % step: 400 s for 200 requests
    assert (plan.expires_at_weight, plan.expires_after_seconds, plan.seconds_to_promote) == (5, 300.0, None)
    plan = make_plan(CanaryConfig(max_step_seconds=300), 10.0, steps=[50, 10, 100])  # 40 s, then 200 s fits
    assert plan.expires_at_weight is None and plan.seconds_to_promote == 240.0
    plan = make_plan(CanaryConfig(max_step_seconds=300), 5.0, steps=[50, 10, 100])  # 80 s, then 400 s
    assert (plan.expires_at_weight, plan.expires_after_seconds) == (10, 380.0)

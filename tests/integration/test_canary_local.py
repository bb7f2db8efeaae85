"""Canary releases on the real local environment: refusals, promotion, rollback, faults, persistence.

Small steps and sample sizes keep each rollout short; the statistics themselves are tested in
tests/canary. Traffic flows through HAProxy during every rollout and every user-visible failure is
counted: weight changes and promotions must not drop a single request.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager

import pytest

from mlship.canary import timeline
from mlship.canary.backends.local import LocalBackend, local_controller
from mlship.canary.controller import Controller
from mlship.canary.state import RolloutState, StateStore
from mlship.config import CanaryConfig, Config
from mlship.errors import MlshipError, RefusedError
from mlship.local.processes import alive, kill_tree
from mlship.model import approval
from mlship.model.releases import Release, Releases

pytestmark = pytest.mark.integration

FAST = CanaryConfig(
    steps=[25, 100], min_samples=150, max_step_seconds=240, poll_seconds=1.0, shadow_samples=150
)


@pytest.fixture(scope="module")
def canary_env(models, tmp_path_factory, local_env_factory):

    handle = local_env_factory(tmp_path_factory.mktemp("canary-env"))
    handle.config = Config(local=handle.config.local, canary=FAST)
    handle.env.config = handle.config
    handle.env.up(models["baseline"].version)
    Releases.load().record(models["baseline"].version, "initial")
    handle.start_traffic(rps=25)
    time.sleep(3)
    yield handle
    handle.stop_traffic()
    handle.env.down()


def controller_for(handle, prometheus_url: str | None = None) -> Controller:
    return local_controller(handle.config, handle.env, prometheus_url=prometheus_url)


@pytest.fixture
def controller(canary_env):
    ctl = controller_for(canary_env)
    yield ctl
    state = ctl.store.load()
    if state is not None and state.active:
        ctl.rollback("test cleanup")


def user_failures(handle) -> int:
    t = handle.traffic
    return t.server_errors + t.failed


def traffic_summary(handle) -> str:
    t = handle.traffic
    return f"status counts {t.status_counts}, failures {t.failure_kinds}"


def assert_nothing_changed(handle, routing_before) -> None:
    backend = LocalBackend(handle.env)
    assert backend.routing() == routing_before
    assert handle.env.running("canary") is None


def test_refusals_change_nothing(canary_env, controller, models):
    backend = LocalBackend(canary_env.env)
    before = backend.routing()
    with pytest.raises(RefusedError, match="no canary rollout is running"):
        controller.promote()
    with pytest.raises(RefusedError, match="no canary rollout is running"):
        controller.tick()
    with pytest.raises(RefusedError, match="unknown model"):
        controller.start("ffffffffffff")
    with pytest.raises(RefusedError, match=r"not blessed.*quality gate vetoed"):
        controller.start(models["shifted"].version)
    with pytest.raises(RefusedError, match="already the stable version"):
        controller.start(before.stable_version)
    with pytest.raises(RefusedError, match="strictly increasing"):
        controller.start(models["candidate"].version, steps=[50, 20, 100])
    unreachable = controller_for(canary_env, "http://127.0.0.1:9")
    with pytest.raises(RefusedError, match=r"Prometheus .* unreachable"):
        unreachable.start(models["candidate"].version)
    assert_nothing_changed(canary_env, before)


def test_good_version_is_promoted_without_dropping_a_request(canary_env, controller, models):
    failures = user_failures(canary_env)
    stable_before = LocalBackend(canary_env.env).routing().stable_version
    controller.start(models["candidate"].version)
    second_terminal = StateStore()
    seen = second_terminal.load()
    assert seen.phase == "progressing" and seen.weight == 25
    state = controller.run_until_done()
    assert state.phase == "promoted", state.last_verdict.reason if state.last_verdict else state.reason
    routing = LocalBackend(canary_env.env).routing()
    assert routing.stable_version == models["candidate"].version != stable_before
    assert routing.canary_version is None and routing.weight == 0
    assert Releases.load().stable == models["candidate"].version
    assert user_failures(canary_env) == failures, (
        f"weight changes and the promotion dropped requests: {traffic_summary(canary_env)}"
    )
    assert [step.outcome for step in state.history] == ["advanced", "promoted"]

    # back to the previous stable without analysis
    previous = controller.rollback_to_previous()
    assert previous == stable_before
    assert LocalBackend(canary_env.env).routing().stable_version == stable_before
    assert user_failures(canary_env) == failures


def test_feature_bug_is_rolled_back_on_errors(canary_env, controller, models):
    state = controller.start(models["buggy"].version, force=True)
    assert state.weight == 25
    state = controller.run_until_done()
    assert state.phase == "rolled_back"
    assert "errors" in state.last_verdict.evidence["triggered_by"]
    routing = LocalBackend(canary_env.env).routing()
    assert routing.weight == 0 and routing.canary_version is None
    assert canary_env.env.running("canary") is None


def test_killed_canary_loses_no_request_and_is_rolled_back(canary_env, controller, models):
    failures = user_failures(canary_env)
    controller.start(models["candidate"].version)
    time.sleep(3)
    canary = canary_env.env.running("canary")
    killed_at = time.monotonic()
    killed = kill_tree(canary.pid)  # the server and its workers, as a crash or OOM kill would
    state = controller.run_until_done()
    assert state.phase == "rolled_back"
    assert time.monotonic() - killed_at < FAST.max_step_seconds
    assert user_failures(canary_env) == failures, (
        f"HAProxy must retry the dead canary's requests on stable: {traffic_summary(canary_env)}"
    )
    assert not any(alive(pid) for pid in killed)


def test_prometheus_down_means_no_promotion_and_a_clear_status(canary_env, controller, models):
    controller.start(models["candidate"].version)
    blind = controller_for(canary_env, "http://127.0.0.1:9")
    for _ in range(3):
        state, verdict = blind.tick()
        assert verdict.decision == "wait"
        assert "unreachable" in verdict.reason
    assert state.phase == "progressing"
    assert StateStore().load().last_verdict.decision == "wait"


def test_state_survives_and_a_run_resumes(canary_env, controller, models):
    controller.start(models["candidate"].version)
    controller.tick()
    resumed = controller_for(canary_env)  # a new process would build exactly this
    state = resumed.status()
    assert state.active and state.canary_version == models["candidate"].version
    payload = json.loads(state.model_dump_json())
    RolloutState.model_validate(payload)
    assert set(payload) >= {
        "phase",
        "stable_version",
        "canary_version",
        "weight",
        "step_index",
        "last_verdict",
    }
    final = resumed.run_until_done()
    assert final.phase == "promoted", final.reason
    resumed.rollback_to_previous()


def test_rollback_is_immediate(canary_env, controller, models):
    controller.start(models["candidate"].version)
    state = controller.rollback()
    assert state.phase == "rolled_back"
    routing = LocalBackend(canary_env.env).routing()
    assert routing.weight == 0 and routing.canary_version is None


def test_corrupted_state_is_a_clear_error_and_left_untouched(canary_env, tmp_path):
    store = StateStore(tmp_path)
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_text("{not json")
    with pytest.raises(MlshipError, match="corrupted and was left untouched"):
        store.load()
    assert store.path.read_text() == "{not json"


@contextmanager
def without_review(record):
    """The model's review record moved away for the block (the session's models are all reviewed)."""
    path = record.path / approval.REVIEW_FILE
    saved = path.read_bytes()
    path.unlink()
    try:
        yield
    finally:
        path.write_bytes(saved)


def test_an_unreviewed_model_is_refused_and_force_names_the_missing_review(canary_env, controller, models):
    before = LocalBackend(canary_env.env).routing()
    record = models["candidate"]
    with without_review(record):
        with pytest.raises(RefusedError, match=r"no review of its spec .*mlship model review.*--force"):
            controller.start(record.version)
        assert_nothing_changed(canary_env, before)
        state = controller.start(record.version, force=True)
    assert len(state.forced) == 1 and f"{record.version} has no review of its spec" in state.forced[0]
    start = [e for e in timeline.read(timeline.decision_log()) if e.get("event") == "start"][-1]
    assert start["forced"] == state.forced, "the forced release is recorded with what it lacked"
    controller.rollback("test cleanup")


def test_promoting_or_restoring_an_unblessed_model_is_refused_unless_forced_and_recorded(
    canary_env, controller, models
):
    backend = LocalBackend(canary_env.env)
    stable = backend.routing().stable_version
    vetoed = models["shifted"].version
    state = controller.start(vetoed, force=True)
    assert any("not blessed: the quality gate vetoed it" in f for f in state.forced)
    with pytest.raises(RefusedError, match=rf"promoting {vetoed} refused: .*not blessed"):
        controller.promote()
    assert backend.routing().canary_version == vetoed and backend.routing().stable_version == stable
    state = controller.promote(force=True)
    assert backend.routing().stable_version == vetoed
    last = Releases.load().history[-1]
    assert last.version == vetoed and last.how == "promoted" and "not blessed" in " ".join(last.forced)

    # Back to the blessed stable; then a history whose previous stable is the vetoed model.
    assert controller.rollback_to_previous() == stable
    releases = Releases.load()
    releases.history += [Release(vetoed, "t", "promoted"), Release(stable, "t", "rolled-back-to")]
    releases.save()
    with pytest.raises(RefusedError, match=rf"serving {vetoed} as stable again refused: .*not blessed"):
        controller.rollback_to_previous()
    assert backend.routing().stable_version == stable
    assert Releases.load().history[-1].version == stable, "a refusal records nothing"

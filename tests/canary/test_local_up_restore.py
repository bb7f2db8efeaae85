"""`mlship local up` with an active rollout whose canary cannot start (review of issue 16).

After a reboot a canary that crashes at start-up (or whose port is taken) used to make `local up` fail
before the router started, and `canary rollback` then refused ("`mlship local up` first"): nothing could
get the environment out. Now everything else starts, with the canary at 0 %, the rollout is paused with
the reason, and the restart counts toward the rollout's limit.

Stand-ins (named, because the real start-up takes minutes and is covered by
tests/integration/test_canary_local.py): the processes. `LocalEnvironment`'s component records and its
start-up steps are replaced by an in-memory table, and the model store by versions taken as
blessed; everything `local_up` decides is the real code.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from mlship import names
from mlship.canary import reconcile
from mlship.canary.backends import local as local_backend
from mlship.canary.state import RolloutState, StateStore
from mlship.config import Config
from mlship.errors import EnvironmentNotReady
from mlship.local import environment
from mlship.local.environment import LocalEnvironment
from mlship.local.state import Component

STABLE, CANARY = "a1a1a1a1a1a1", "b2b2b2b2b2b2"


class RebootedEnvironment(LocalEnvironment):
    """Every process gone; the canary's start-up fails, everything else starts."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.alive: dict[str, Component] = {}
        self.calls: list[str] = []

    def running(self, name, state=None):  # type: ignore[override]
        return self.alive.get(name)

    def check_prerequisites(self, **_: object) -> None:
        self.calls.append("prerequisites")

    def start_servers(self, wanted):  # type: ignore[override]
        for slot, version in wanted.items():
            if slot != names.ROLE_CANARY:
                self.alive[slot] = Component(pid=1, log="", argv0="x", version=version)
        self.calls.append(f"start {sorted(wanted)}")
        if names.ROLE_CANARY in wanted:
            raise EnvironmentNotReady("canary model server exited during start-up (port 3002 is taken)")
        return {}

    def _start_router(self, canary=None):  # type: ignore[override]
        self.alive["router"] = Component(pid=1, log="", argv0="haproxy")
        self.calls.append(f"router canary={canary}")

    def _route(self, canary) -> None:  # type: ignore[override]
        self.calls.append("route")

    def _start_node_exporter(self) -> None:
        self.calls.append("node_exporter")

    def _start_prometheus(self) -> None:
        self.calls.append("prometheus")

    def status(self):  # type: ignore[override]
        return []


@pytest.fixture
def rollout(tmp_path, monkeypatch) -> StateStore:
    monkeypatch.setenv("MLSHIP_STATE_DIR", str(tmp_path / "state"))
    # Stand-in: the model store (the versions are registered and blessed).
    monkeypatch.setattr(
        environment.registry, "resolve", lambda name, version: SimpleNamespace(version=version)
    )
    monkeypatch.setattr(environment.approval, "require", lambda record, **_: [])
    now = time.time()
    store = StateStore()
    store.save(
        RolloutState(
            rollout_id="r1",
            env="local",
            phase="progressing",
            stable_version=STABLE,
            canary_version=CANARY,
            steps=[10, 50, 100],
            step_index=0,
            weight=10,
            shadow=False,
            started_at=now,
            analysis_started_at=now,
            step_started_at=now,
            updated_at=now,
        )
    )
    return store


def test_a_canary_that_cannot_start_leaves_the_rest_running_and_the_rollout_paused(rollout):
    env = RebootedEnvironment(Config())
    restored = local_backend.local_up(env)
    assert "router canary=None" in env.calls  # the router started, with no canary traffic
    assert "prometheus" in env.calls
    state = rollout.load()
    assert state is not None and state.active
    assert state.paused.startswith("the canary did not start: EnvironmentNotReady: canary model server")
    assert state.canary_restarts == 1
    assert restored.record is not None and restored.record.result == "failed"


def test_after_the_restart_limit_local_up_does_not_try_the_canary_again(rollout):
    state = rollout.load()
    assert state is not None
    state.canary_restarts = reconcile.MAX_CANARY_RESTARTS
    rollout.save(state)
    env = RebootedEnvironment(Config())
    restored = local_backend.local_up(env)
    assert not any(names.ROLE_CANARY in call for call in env.calls if call.startswith("start"))
    assert restored.record is not None and "canary not restarted" in restored.record.action


def test_an_unreadable_rollout_state_does_not_keep_the_environment_down(rollout):
    rollout.path.write_text('{"rollout_id": "r1", "env": "lo', encoding="utf-8")  # torn by a power cut
    env = RebootedEnvironment(Config())
    env._initial_version = lambda version: STABLE  # type: ignore[method-assign]
    restored = local_backend.local_up(env)
    assert "router canary=None" in env.calls
    assert "corrupted" in restored.warning and restored.rollout is None

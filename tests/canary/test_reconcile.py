"""Level-triggered routing: every controller tick reads the routing in effect and drives it to the rollout's.

The backend here is a test double standing in for the Kubernetes backend (``KubernetesBackend``): its
``routing()`` answers what the live HTTPRoute says, and the test changes that behind the rollout's
back as a `kubectl edit`, a half-failed `pulumi up` or an API server outage would. No cluster can run
here (/work/shared/BUILD-ENVIRONMENT.md); the same controller against the real local router is tested
in tests/integration/test_canary_local.py (issue 16) and the fault campaign
(devtools/reliability/recovery.py). The judge is the real one, fed observations built like
Prometheus's (tests/canary/test_judge.py builds them the same way).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mlship.canary import reconcile
from mlship.canary.analysis import LOCAL, LOOKBACK_S, Analyzer
from mlship.canary.backend import Routing
from mlship.canary.controller import Controller
from mlship.canary.observation import INF, Histogram, Observation, RoleCounts
from mlship.canary.publish import render
from mlship.canary.state import RolloutState, StateStore, StepRecord
from mlship.config import CanaryConfig, Config
from mlship.errors import RefusedError

STABLE, CANARY = "a1a1a1a1a1a1", "b2b2b2b2b2b2"
T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RouteDouble:
    """Stands in for the Kubernetes backend: the live route's weights and mirror, changeable by hand."""

    name = "kubernetes-double"

    def __init__(self, stable: str = STABLE) -> None:
        self.route = Routing(stable, None, 0, False)
        self.unreadable: Exception | None = None  # API server unreachable
        self.refuse: Exception | None = None  # `pulumi up` failing
        self.calls: list[str] = []

    def edit(self, **changes: object) -> None:
        """What `kubectl edit httproute` (or a half-applied `pulumi up`) does: no controller involved."""
        self.route = replace(self.route, **changes)  # type: ignore[arg-type]

    def routing(self) -> Routing:
        if self.unreadable is not None:
            raise self.unreadable
        return self.route

    def _change(self, call: str) -> None:
        self.calls.append(call)
        if self.refuse is not None:
            raise self.refuse

    def deploy_canary(self, version: str, *, shadow: bool) -> None:
        self._change(f"deploy_canary {version} shadow={shadow}")
        self.route = replace(self.route, canary_version=version, weight=0, shadow=shadow)

    def set_weight(self, weight: int) -> None:
        self._change(f"set_weight {weight}")
        self.route = replace(self.route, weight=weight, shadow=False)

    def promote(self) -> None:
        self._change("promote")
        self.route = Routing(self.route.canary_version, None, 0, False)

    def rollback(self) -> None:
        self._change("rollback")
        self.route = replace(self.route, canary_version=None, weight=0, shadow=False)

    def deploy_stable(self, version: str) -> None:
        self._change(f"deploy_stable {version}")
        self.route = replace(self.route, stable_version=version)


def _hist(bounds: list[float], values: np.ndarray) -> Histogram:
    counts = np.cumsum(np.bincount(np.searchsorted(bounds, values), minlength=len(bounds) + 1))
    return Histogram(
        {**{float(b): float(c) for b, c in zip(bounds, counts, strict=False)}, INF: float(counts[-1])}
    )


def _role(rng: np.random.Generator, n: int) -> RoleCounts:
    latency = 0.04 * np.exp(0.3 * rng.standard_normal(n))
    predictions = 150 + 50 * rng.standard_normal(n)
    return RoleCounts(
        requests=float(n),
        latency=_hist([0.01, 0.02, 0.04, 0.08, 0.16, 0.32], latency),
        predictions=_hist([50.0, 100.0, 130.0, 150.0, 170.0, 200.0, 250.0], predictions),
    )


class AnalyzerDouble:
    """Observations as the Prometheus analysis builds them; ``step_samples`` sets the step's count."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(7)
        self.step_samples = 0.0
        self.calls = 0

    def observe(self, state: RolloutState, now: float) -> Observation:
        self.calls += 1
        return Observation(
            stable=_role(self.rng, 4000),
            canary=_role(self.rng, 500),
            weight=state.weight,
            step_index=state.step_index,
            step_canary_requests=self.step_samples,
            elapsed_s=now - state.analysis_started_at,
            step_elapsed_s=now - state.step_started_at,
            shadow=state.phase == "shadow",
        )


CONFIG = Config(canary=CanaryConfig(steps=[10, 50, 100], min_samples=200, max_step_seconds=600))


@pytest.fixture
def world(tmp_path, monkeypatch):
    monkeypatch.setenv("MLSHIP_STATE_DIR", str(tmp_path / "state"))
    clock = Clock()
    backend = RouteDouble()
    analyzer = AnalyzerDouble()
    store = StateStore(tmp_path / "state" / "canary")
    controller = Controller(
        CONFIG, backend, prometheus=None, env_name="prod", analyzer=analyzer, store=store, clock=clock
    )  # type: ignore[arg-type]
    return controller, backend, analyzer, clock


def rollout(controller: Controller, backend: RouteDouble, *, phase: str = "progressing") -> RolloutState:
    """A rollout at its first step (or in shadow), saved and routed as `canary start` leaves it."""
    shadow = phase == "shadow"
    weight = 0 if shadow else 10
    state = RolloutState(
        rollout_id="r1",
        env="prod",
        phase=phase,
        stable_version=STABLE,
        canary_version=CANARY,
        steps=[10, 50, 100],
        step_index=-1 if shadow else 0,
        weight=weight,
        shadow=shadow,
        started_at=T0,
        analysis_started_at=T0,
        step_started_at=T0,
        updated_at=T0,
        history=[StepRecord(index=-1 if shadow else 0, weight=weight, started_at=T0)],
    )
    controller.store.save(state)
    backend.route = Routing(STABLE, CANARY, weight, shadow)
    return state


def test_routing_as_the_rollout_says_is_left_alone_and_judged(world):
    controller, backend, analyzer, clock = world
    rollout(controller, backend)
    clock.advance(30)
    state, verdict = controller.tick()
    assert verdict.decision == "wait" and "canary requests in this step" in verdict.reason
    assert backend.calls == [] and state.reconciliations == [] and not state.paused
    assert state.step_started_at == T0 and analyzer.calls == 1


def test_a_weight_changed_by_hand_is_put_back_recorded_counted_and_restarts_the_step_evidence(world):
    controller, backend, _analyzer, clock = world
    rollout(controller, backend)
    clock.advance(120)
    backend.edit(weight=0)  # the router restarted with the canary at 0
    state, verdict = controller.tick()

    assert backend.route == Routing(STABLE, CANARY, 10, False)
    assert backend.calls == ["set_weight 10"]
    (record,) = state.reconciliations
    assert (record.by, record.result) == ("runner", "repaired")
    assert record.found == "canary weight 0% (rollout: 10%)"
    assert record.actual.weight == 0 and record.desired.weight == 10
    assert "step evidence restarted" in record.action
    # The step's evidence starts again at the repair: the 120 s at 0% do not count toward the step.
    assert state.step_started_at == T0 + 120
    assert state.history[-1].started_at == T0  # the step itself began when it began
    assert state.routing_differences == {"repaired": 1}
    assert verdict.evidence["step_elapsed_s"] == 0  # the judge ran on the restarted window
    on_disk = controller.store.load()
    assert on_disk.step_started_at == T0 + 120 and on_disk.reconciliations == state.reconciliations
    published = render(on_disk)
    labels = f'canary_version="{CANARY}",stable_version="{STABLE}"'
    assert f'mlship_canary_routing_differences_total{{{labels},result="repaired"}} 1' in published
    assert (
        f'mlship_canary_routing_in_sync{{canary_version="{CANARY}",stable_version="{STABLE}"}} 1' in published
    )

    clock.advance(2)
    state, _ = controller.tick()  # in sync now: nothing more to record
    assert len(state.reconciliations) == 1 and backend.calls == ["set_weight 10"]


def test_the_analysis_counts_the_step_from_the_repair(world):
    """The judge's per-step evidence window is ``step_started_at``: a repair moves it for every query."""
    controller, backend, _analyzer, clock = world
    rollout(controller, backend)
    clock.advance(300)
    backend.edit(weight=0)
    state, _ = controller.tick()
    windows = []

    class Recording:
        def raw_samples(self, selector: str, seconds: int, *, time: float) -> list:
            windows.append((selector, seconds))
            return []

    Analyzer(Recording(), LOCAL).observe(state, clock() + 40)  # type: ignore[arg-type]
    step_query = LOCAL.selector(LOCAL.requests.alternatives[0][0], "canary")
    # 40 s since the repair (+1 s, + the lookback before it), not 340 s since the step opened
    assert (step_query, 41 + LOOKBACK_S) in windows


def test_mirroring_lost_in_the_shadow_phase_is_turned_back_on(world):
    controller, backend, _analyzer, clock = world
    rollout(controller, backend, phase="shadow")
    backend.edit(shadow=False)
    clock.advance(10)
    state, _ = controller.tick()
    assert backend.route == Routing(STABLE, CANARY, 0, True)
    assert backend.calls == [f"deploy_canary {CANARY} shadow=True"]
    assert state.reconciliations[-1].found == "mirroring off (rollout: on)"


def test_a_shadow_canary_found_dead_comes_back_mirrored_not_routed(world):
    controller, backend, _analyzer, clock = world
    rollout(controller, backend, phase="shadow")
    backend.edit(canary_version=None, shadow=False)  # a reboot: candidate and mirroring gone
    clock.advance(30)
    state, _ = controller.tick()
    assert backend.calls == [f"deploy_canary {CANARY} shadow=True"]
    assert backend.route == Routing(STABLE, CANARY, 0, True)
    assert state.phase == "shadow" and state.step_started_at == clock()


def test_unreadable_routing_pauses_without_judging_then_resumes(world):
    controller, backend, analyzer, clock = world
    rollout(controller, backend)
    backend.unreadable = ConnectionError("apiserver 10.0.0.1:6443 refused the connection")
    verdicts = []
    for _ in range(3):
        clock.advance(600)  # long enough that a judged step would time out into a rollback
        state, verdict = controller.tick()
        verdicts.append(verdict)
    assert [v.decision for v in verdicts] == ["wait"] * 3
    assert analyzer.calls == 0  # nothing judged while the routing is unknown
    assert "routing unreadable" in state.paused and "refused the connection" in state.paused
    assert verdicts[0].reason.startswith("paused")
    assert [r.result for r in state.reconciliations] == ["failed"]  # once per cause, not every tick
    assert (
        'mlship_canary_routing_in_sync{canary_version="b2b2b2b2b2b2",stable_version="a1a1a1a1a1a1"} 0'
        in render(state)
    )
    assert controller.store.load().paused == state.paused

    backend.unreadable = None  # the route was right all along: nothing to repair
    clock.advance(2)
    state, verdict = controller.tick()
    assert not state.paused and analyzer.calls == 1
    assert state.reconciliations[-1].result == "resumed"
    assert state.routing_differences == {"failed": 1}
    # The step starts over from the resumption: the pause neither counts as evidence nor as step time.
    assert state.phase == "progressing" and state.step_started_at == clock()


def test_a_repair_the_backend_refuses_pauses_until_it_succeeds(world):
    controller, backend, analyzer, clock = world
    rollout(controller, backend)
    backend.edit(weight=50)
    backend.refuse = RuntimeError("pulumi up failed: HTTPRoute admission webhook denied the request")
    state, verdict = controller.tick()
    assert verdict.decision == "wait" and "admission webhook" in state.paused
    assert backend.route.weight == 50 and analyzer.calls == 0
    assert state.reconciliations[-1].result == "failed"
    assert "set the canary weight to 10%" in state.reconciliations[-1].action

    backend.refuse = None
    clock.advance(5)
    state, _ = controller.tick()
    assert backend.route.weight == 10 and not state.paused
    assert [r.result for r in state.reconciliations] == ["failed", "repaired"]
    assert state.step_started_at == clock()


def test_a_stable_version_changed_behind_the_rollout_is_never_overwritten(world):
    controller, backend, analyzer, _clock = world
    rollout(controller, backend)
    backend.edit(stable_version="c3c3c3c3c3c3")
    state, verdict = controller.tick()
    assert verdict.decision == "wait" and backend.calls == [] and analyzer.calls == 0
    assert "stable c3c3c3c3c3c3 (rollout: a1a1a1a1a1a1)" in state.paused
    assert "mlship canary promote" in state.paused


def test_a_canary_found_dead_by_a_resumed_runner_is_restarted_with_its_weight(world):
    controller, backend, _analyzer, clock = world
    rollout(controller, backend)
    backend.edit(canary_version=None, weight=0)  # died (with the machine) while no runner watched
    clock.advance(60)
    state, verdict = controller.tick()  # this controller never saw it running: a resumed runner
    assert backend.calls == [f"deploy_canary {CANARY} shadow=False", "set_weight 10"]
    assert backend.route == Routing(STABLE, CANARY, 10, False)
    assert state.phase == "progressing" and verdict.decision == "wait"
    assert state.reconciliations[-1].action.startswith(f"{reconcile.RESTARTED_CANARY} {CANARY}")

    backend.edit(canary_version=None, weight=0)  # dies again, now under watch: evidence against it
    clock.advance(2)
    state, verdict = controller.tick()
    assert state.phase == "rolled_back" and verdict.decision == "rollback"
    assert "not running any more" in state.reason
    assert "stopped while this runner watched it" in state.reconciliations[-1].action


def resumed_runner(controller: Controller) -> Controller:
    """What a new `mlship canary run` process builds: same state and backend, nothing seen yet."""
    return Controller(
        CONFIG,
        controller.backend,
        prometheus=None,  # type: ignore[arg-type]
        env_name="prod",
        analyzer=AnalyzerDouble(),  # type: ignore[arg-type]
        store=controller.store,
        clock=controller.clock,
    )


def test_restarts_of_a_canary_found_dead_are_bounded(world):
    controller, backend, _analyzer, _clock = world
    rollout(controller, backend)
    for _ in range(reconcile.MAX_CANARY_RESTARTS):
        fresh = resumed_runner(controller)
        backend.edit(canary_version=None, weight=0)
        state, _ = fresh.tick()
        assert state.phase == "progressing"
    backend.edit(canary_version=None, weight=0)
    fresh = resumed_runner(controller)
    state, _ = fresh.tick()
    assert state.phase == "rolled_back"
    assert f"failed to start {reconcile.MAX_CANARY_RESTARTS + 1} times" in state.reconciliations[-1].action


def test_a_step_change_the_backend_refuses_pauses_and_changes_nothing(world):
    controller, backend, analyzer, clock = world
    rollout(controller, backend)
    analyzer.step_samples = 400  # enough: the judge advances
    backend.refuse = RuntimeError("pulumi up failed: timeout")
    clock.advance(30)
    state, verdict = controller.tick()
    assert verdict.decision == "advance"
    assert (state.step_index, state.weight, state.phase) == (0, 10, "progressing")
    assert "advance failed" in state.paused
    on_disk = controller.store.load()
    assert (on_disk.step_index, on_disk.weight) == (0, 10) and on_disk.paused

    backend.refuse = None
    clock.advance(2)
    state, verdict = controller.tick()
    assert verdict.decision == "advance" and (state.step_index, state.weight) == (1, 50)
    assert backend.route.weight == 50 and not state.paused


def test_a_failed_expiry_is_retried_never_undone(world):
    controller, backend, analyzer, clock = world
    rollout(controller, backend)
    clock.advance(700)  # past max_step_seconds without samples: the rollout expires
    backend.refuse = RuntimeError("pulumi up failed: connection reset")
    state, verdict = controller.tick()
    assert verdict.decision == "expire" and state.phase == "progressing"
    assert reconcile.rollback_pending(controller.store.load())

    backend.edit(weight=0)  # what a half-applied rollback leaves: no repair back towards the canary
    clock.advance(2)
    state, verdict = controller.tick()
    assert verdict.decision == "expire" and state.phase == "progressing"
    assert "set_weight 10" not in backend.calls

    backend.refuse = None
    clock.advance(2)
    state, verdict = controller.tick()
    assert state.phase == "expired" and backend.route.canary_version is None
    assert analyzer.calls == 1  # judged once; the retries acted on the decision already taken


def test_desired_routing_of_every_phase():
    state = RolloutState(
        rollout_id="r",
        env="local",
        phase="shadow",
        stable_version=STABLE,
        canary_version=CANARY,
        steps=[10, 100],
        step_index=-1,
        weight=0,
        shadow=True,
        started_at=T0,
        analysis_started_at=T0,
        step_started_at=T0,
        updated_at=T0,
    )
    assert reconcile.desired_routing(state) == Routing(STABLE, CANARY, 0, True)
    state.phase, state.step_index, state.weight = "progressing", 0, 10
    assert reconcile.desired_routing(state) == Routing(STABLE, CANARY, 10, False)
    state.phase, state.weight = "promoted", 100
    assert reconcile.desired_routing(state) == Routing(CANARY, None, 0, False)
    state.phase, state.weight = "rolled_back", 0
    assert reconcile.desired_routing(state) == Routing(STABLE, None, 0, False)


class NeverReady(RouteDouble):
    """Kubernetes: the canary Deployment is (re)created, but its pods crash-loop: no ready pod, no canary."""

    def deploy_canary(self, version: str, *, shadow: bool) -> None:
        self._change(f"deploy_canary {version} shadow={shadow}")
        self.route = replace(self.route, weight=0, shadow=shadow)  # canary_version stays None


def test_a_canary_that_cannot_start_is_rolled_back_after_the_restart_limit(world):
    """Found dead by a resumed runner, restarted, never ready: each failed try counts (review of issue 16:
    a failed restart used to leave one record and be retried every tick, forever)."""
    controller, _, _, clock = world
    backend = NeverReady()
    controller.backend = controller.reconciler.backend = backend
    rollout(controller, backend)
    backend.edit(canary_version=None, weight=10)  # crashed while no runner watched
    fresh = resumed_runner(controller)
    for _ in range(20):
        clock.advance(10)
        state, _ = fresh.tick()
        if not state.active:
            break
    assert state.phase == "rolled_back"
    assert sum(call.startswith("deploy_canary") for call in backend.calls) == reconcile.MAX_CANARY_RESTARTS
    assert state.canary_restarts == reconcile.MAX_CANARY_RESTARTS


def test_a_writer_fighting_the_rollout_pauses_it_instead_of_a_repair_every_tick(world):
    """Another writer sets 50 % every tick (a second runner with its own state folder, automation)."""
    controller, backend, _, clock = world
    rollout(controller, backend)
    for _ in range(40):
        clock.advance(10)
        backend.edit(weight=50)
        state, verdict = controller.tick()
    assert state.routing_differences.get("repaired") == reconcile.MAX_REPAIRS_PER_STEP
    assert "something else writes this routing" in state.paused
    assert verdict.decision == "wait"
    assert backend.calls.count("set_weight 10") == reconcile.MAX_REPAIRS_PER_STEP


def test_a_runner_for_another_environment_is_refused_and_touches_nothing(world):
    """`canary run V --env prod` while a local rollout of V is active must not deploy V into prod."""
    controller, backend, _, _ = world
    state = rollout(controller, backend)
    state.env = "local"
    controller.store.save(state)
    backend.route = Routing(STABLE, None, 0, False)
    backend.calls.clear()
    with pytest.raises(RefusedError, match="runs on `local`, not `prod`: pass `--env local`"):
        controller.tick()
    assert backend.calls == []


def test_a_new_step_opens_once_the_router_took_its_weight(world):
    """Issue 12 review item 7: traffic routed at the old weight while set_weight runs is not the step's."""
    controller, backend, analyzer, clock = world
    rollout(controller, backend)
    applied_at = []

    def slow_set_weight(weight: int) -> None:  # a route update that takes 4 s to apply
        clock.advance(4)
        backend.route = replace(backend.route, weight=weight, shadow=False)
        applied_at.append(clock())

    backend.set_weight = slow_set_weight  # type: ignore[method-assign]
    analyzer.step_samples = 10_000.0  # enough evidence to advance
    clock.advance(30)
    state, verdict = controller.tick()
    assert verdict.decision == "advance" and state.weight == 50
    assert state.step_started_at == applied_at[-1] == state.history[-1].started_at


def test_a_repaired_step_opens_once_the_repair_returned(world):
    controller, backend, _analyzer, clock = world
    rollout(controller, backend)
    clock.advance(300)
    backend.edit(weight=0)
    set_weight = backend.set_weight

    def slow_set_weight(weight: int) -> None:  # a route update that takes 3 s to apply
        clock.advance(3)
        set_weight(weight)

    backend.set_weight = slow_set_weight  # type: ignore[method-assign]
    before = clock()
    state, _ = controller.tick()
    assert backend.route.weight == 10 and state.step_started_at == before + 3

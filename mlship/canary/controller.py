"""The canary state machine: start, judge, step, promote, roll back; and the automatic runner.

    start ──> [shadow] ──advance──> step 1 ──advance──> ... step n ──advance──> promoted
                 │                     │                      │
                 ├──────rollback───────┼────────rollback──────┼──> rolled_back   (evidence against it)
                 └──────expire─────────┴────────expire────────┴──> expired       (no evidence in time)

Steps are the configured weights below 100: stable keeps serving at every judged step (the concurrent
control), and advancing from the last of them promotes.

Every transition happens under the state lock, changes the routing first and records the new state
only when the routing change succeeded, so a failure leaves routing and state consistent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from mlship.canary import timeline
from mlship.canary.analysis import Analyzer
from mlship.canary.backend import TrafficBackend
from mlship.canary.judge import Verdict, judge, judged_steps
from mlship.canary.publish import TextfilePublisher
from mlship.canary.reconcile import Reconciler
from mlship.canary.state import RolloutState, StateStore, StepRecord, VerdictRecord
from mlship.config import Config
from mlship.errors import ConfigError, RefusedError
from mlship.model import approval, registry
from mlship.model.releases import Releases
from mlship.promclient import Prometheus, PrometheusUnavailable


def state_index(shadow: bool) -> int:
    """Step index a rollout starts at: -1 is the shadow phase."""
    return -1 if shadow else 0


class Controller:
    def __init__(
        self,
        config: Config,
        backend: TrafficBackend,
        prometheus: Prometheus,
        *,
        env_name: str,
        analyzer: Analyzer | None = None,
        store: StateStore | None = None,
        publisher: TextfilePublisher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.backend = backend
        self.prom = prometheus
        self.env_name = env_name
        self.analyzer = analyzer or Analyzer(prometheus)
        self.store = store or StateStore()
        self.publisher = publisher
        self.clock = clock
        self.reconciler = Reconciler(backend, clock)

    # --- queries --------------------------------------------------------------------------------
    def status(self) -> RolloutState | None:
        return self.store.load()

    def active(self) -> RolloutState:
        state = self.store.load()
        if state is None or not state.active:
            raise RefusedError("no canary rollout is running (start one with `mlship canary start VERSION`)")
        if state.env != self.env_name:
            # The state folder holds one rollout; driving it through another environment's routing
            # would deploy its canary there.
            raise RefusedError(
                f"the active rollout of {state.canary_version} runs on `{state.env}`, not `{self.env_name}`: "
                f"pass `--env {state.env}`, or finish it first"
            )
        return state

    def analyze(self) -> Verdict:
        """Judge the running canary now, without acting on the verdict."""
        state = self.active()
        obs = self.analyzer.observe(state, self.clock())
        return judge(obs, self.config.canary, self.config.gate)

    # --- start ----------------------------------------------------------------------------------
    def start(
        self, version: str, *, steps: list[int] | None = None, shadow: bool = False, force: bool = False
    ) -> RolloutState:
        """Deploy ``version`` as the canary. Refused (nothing changed) if anything is not right."""
        steps = steps or list(self.config.canary.steps)
        if not steps or steps != sorted(set(steps)) or steps[-1] != 100 or not 1 <= steps[0] < 100:
            raise ConfigError(
                "steps must be strictly increasing percentages from 1 to 100 with at least one below 100 "
                f"(stable is the control at every judged step), got {steps}"
            )
        with self.store.locked():
            current = self.store.load()
            if current is not None and current.active:
                raise RefusedError(
                    f"a rollout of {current.canary_version} is already {current.phase}: "
                    "promote it or roll it back first"
                )
            record = registry.resolve(self.config.model.name, version)
            routing = self.backend.routing()
            if routing.stable_version is None:
                raise RefusedError("no stable version is serving: bring the environment up first")
            if record.version == routing.stable_version:
                raise RefusedError(f"{record.version} is already the stable version")
            # Infra 4 and Model 1: blessed by the quality gate and its spec reviewed, or forced (recorded).
            forced = approval.require(
                record, action=f"releasing {record.version}", force=force, needs_review=True
            )
            if not self.prom.ready():
                raise RefusedError(
                    f"Prometheus at {self.prom.url} is unreachable: "
                    "a canary that cannot be judged is not started"
                )
            try:
                self.backend.deploy_canary(record.version, shadow=shadow)
                if not shadow:
                    self.backend.set_weight(steps[0])
            except Exception:
                self.backend.rollback()
                raise
            now = self.clock()
            state = RolloutState(
                rollout_id=datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ") + f"-{record.version}",
                env=self.env_name,
                phase="shadow" if shadow else "progressing",
                stable_version=routing.stable_version,
                canary_version=record.version,
                steps=steps,
                step_index=state_index(shadow),
                weight=0 if shadow else steps[0],
                shadow=shadow,
                forced=forced,
                started_at=now,
                analysis_started_at=now,
                step_started_at=now,
                updated_at=now,
                history=[
                    StepRecord(index=-1 if shadow else 0, weight=0 if shadow else steps[0], started_at=now)
                ],
            )
            self._save(state, event="start", detail={"forced": forced})
            self.reconciler.watching = state.rollout_id
            return state

    # --- one analysis step ----------------------------------------------------------------------
    def tick(self) -> tuple[RolloutState, Verdict]:
        """Observe, judge and act once. Safe to call from any number of processes."""
        with self.store.locked():
            state = self.active()
            now = self.clock()
            held = self.reconciler.reconcile(state, now)  # the routing made the rollout's, or why not
            if held is not None:
                return state, self._act(state, held, now)
            now = self.clock()  # after a repair, which opened the step's window when it returned
            try:
                obs = self.analyzer.observe(state, now)
                verdict = judge(obs, self.config.canary, self.config.gate)
            except PrometheusUnavailable as exc:
                verdict = self._no_data_verdict(state, now, str(exc))
            verdict = self._require_canary(state, verdict)
            return state, self._act(state, verdict, now)

    def _act(self, state: RolloutState, verdict: Verdict, now: float) -> Verdict:
        """Record ``verdict`` and apply it; a routing change the backend refuses pauses the rollout."""
        self._record_verdict(state, verdict, now)
        try:
            if verdict.decision == "rollback":
                self._rollback(state, verdict.reason, now)
            elif verdict.decision == "expire":
                self._rollback(state, verdict.reason, now, phase="expired")
            elif verdict.decision == "advance":
                self._advance(state, verdict.reason, now)
            else:
                self._save(state)
        except Exception as exc:  # nothing was recorded as done; the next tick reconciles
            self.reconciler.transition_failed(state, verdict, exc, now)
            self._save(state)
        return verdict

    def _require_canary(self, state: RolloutState, verdict: Verdict) -> Verdict:
        """A canary that is no longer running is rolled back, whatever its past numbers said."""
        try:
            running = self.backend.routing().canary_version == state.canary_version
        except Exception:  # unreadable since this tick's reconciliation: the next tick pauses
            running = True
        if verdict.decision in ("rollback", "expire") or running:
            return verdict
        reason = f"rollback: the canary {state.canary_version} is not running any more"
        return Verdict("rollback", reason, {**verdict.evidence, "triggered_by": ["canary down"]})

    def _no_data_verdict(self, state: RolloutState, now: float, error: str) -> Verdict:
        """Prometheus is unreachable: never a pass; hold, and expire once the step runs out of time."""
        step_elapsed = now - state.step_started_at
        evidence: dict[str, Any] = {"prometheus": error, "step_elapsed_s": step_elapsed}
        if step_elapsed > self.config.canary.max_step_seconds:
            evidence["triggered_by"] = []
            evidence["expired"] = "insufficient data"
            return Verdict("expire", f"expired: no data for {step_elapsed:.0f}s ({error})", evidence)
        return Verdict("wait", f"wait: no data, analysis unavailable ({error})", evidence)

    def _record_verdict(self, state: RolloutState, verdict: Verdict, now: float) -> None:
        as_dict = verdict.to_dict()
        state.last_verdict = VerdictRecord(at=now, **as_dict)
        state.verdict_counts[verdict.decision] = state.verdict_counts.get(verdict.decision, 0) + 1
        timeline.append(timeline.decision_log(), {"rollout_id": state.rollout_id, "at": now, **as_dict})
        timeline.append(
            timeline.rollout_dir(state.rollout_id) / "timeline.jsonl",
            timeline.point(now - state.started_at, state.phase, state.weight, as_dict),
        )

    def _advance(self, state: RolloutState, reason: str, now: float) -> None:
        if state.phase == "shadow":
            self.backend.set_weight(state.steps[0])
            self._close_step(state, "advanced", now)
            state.phase, state.step_index, state.weight = "progressing", 0, state.steps[0]
            # The step's window opens once the router took the new weight (set_weight returned):
            # traffic routed at the old weight while it was applied is not the new step's evidence.
            state.analysis_started_at = self.clock()
            self._open_step(state, state.analysis_started_at)
            self._save(state, event="advance", detail={"reason": reason})
            return
        if state.step_index >= len(judged_steps(state.steps)) - 1:
            self._promote(state, reason, now)
            return
        nxt = state.step_index + 1
        self.backend.set_weight(state.steps[nxt])
        self._close_step(state, "advanced", now)
        state.step_index, state.weight = nxt, state.steps[nxt]
        self._open_step(state, self.clock())  # after set_weight returned, as above
        self._save(state, event="advance", detail={"reason": reason})

    def _open_step(self, state: RolloutState, now: float) -> None:
        state.step_started_at = now
        state.step_repairs = 0
        state.history.append(StepRecord(index=state.step_index, weight=state.weight, started_at=now))

    @staticmethod
    def _close_step(state: RolloutState, outcome: str, now: float) -> None:
        if state.history and state.history[-1].outcome == "running":
            state.history[-1].ended_at = now
            state.history[-1].outcome = outcome  # type: ignore[assignment]

    def _promote(self, state: RolloutState, reason: str, now: float, forced: list[str] | None = None) -> None:
        self.backend.promote()
        self._close_step(state, "promoted", now)
        state.phase, state.weight, state.reason, state.finished_at = "promoted", 100, reason, now
        forced = sorted({*state.forced, *(forced or [])})
        Releases.load().record(state.canary_version, "promoted", forced=forced)
        self._save(state, event="promoted", detail={"reason": reason, "forced": forced})

    def _rollback(
        self,
        state: RolloutState,
        reason: str,
        now: float,
        phase: Literal["rolled_back", "expired"] = "rolled_back",
    ) -> None:
        """Traffic back to stable and the canary removed: rolled back (evidence), or expired (none)."""
        self.backend.rollback()
        self._close_step(state, phase, now)
        state.phase, state.weight, state.reason, state.finished_at = phase, 0, reason, now
        self._save(state, event=phase, detail={"reason": reason})

    def run_until_done(
        self,
        on_update: Callable[[RolloutState, Verdict], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> RolloutState:
        """Tick every ``canary.poll_seconds`` until the rollout is promoted, rolled back or expired."""
        poll = self.config.canary.poll_seconds
        state = self.active()
        while state.active:
            started = time.monotonic()
            state, verdict = self.tick()
            if on_update is not None:
                on_update(state, verdict)
            if state.active:
                sleep(max(0.0, poll - (time.monotonic() - started)))
        return state

    # --- manual commands ------------------------------------------------------------------------
    def promote(self, reason: str = "promoted by hand", *, force: bool = False) -> RolloutState:
        """Make the canary stable now; refused for a model the gate has not blessed unless forced."""
        with self.store.locked():
            state = self.active()
            record = registry.resolve(self.config.model.name, state.canary_version)
            forced = approval.require(record, action=f"promoting {record.version}", force=force)
            self._promote(state, reason, self.clock(), forced)
            return state

    def rollback(self, reason: str = "rolled back by hand") -> RolloutState:
        with self.store.locked():
            state = self.active()
            self._rollback(state, reason, self.clock())
            return state

    def rollback_to_previous(self, *, force: bool = False) -> str:
        """Serve the previous stable version again (after a promotion turned out bad).

        The previous version must be blessed by the quality gate (it may have been forced once), unless
        forced again; what was forced is recorded in the release history and the decision log.
        """
        with self.store.locked():
            state = self.store.load()
            if state is not None and state.active:
                raise RefusedError("a rollout is running: `mlship canary rollback` first, then --to previous")
            releases = Releases.load()
            previous = releases.previous
            if previous is None:
                raise RefusedError("there is no previous stable version to roll back to")
            record = registry.resolve(self.config.model.name, previous)
            forced = approval.require(record, action=f"serving {previous} as stable again", force=force)
            self.backend.deploy_stable(previous)
            releases.record(previous, "rolled-back-to", forced=forced)
            timeline.append(
                timeline.decision_log(),
                {"at": self.clock(), "event": "rollback-to-previous", "version": previous, "forced": forced},
            )
            return previous

    # --- persistence ----------------------------------------------------------------------------
    def _save(
        self, state: RolloutState, *, event: str | None = None, detail: dict[str, Any] | None = None
    ) -> None:
        self.store.save(state)
        if event is not None:
            timeline.append(
                timeline.decision_log(),
                {
                    "rollout_id": state.rollout_id,
                    "at": self.clock(),
                    "event": event,
                    "phase": state.phase,
                    "weight": state.weight,
                    **(detail or {}),
                },
            )
        if self.publisher is not None:
            self.publisher.publish(state)

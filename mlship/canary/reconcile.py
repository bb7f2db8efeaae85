"""Level-triggered routing: every controller tick drives the routing in effect to what the rollout says.

Weights used to be set once, when a step opened; a router restarted with its default weights, a
route edited by hand or a canary process that died while no runner watched left the rollout judging
traffic that no longer flowed. Now each tick (``Controller.tick``, before judging) and each
`mlship local up` read the routing actually in effect (``TrafficBackend.routing()``: HAProxy's runtime
state locally, the live HTTPRoute on Kubernetes) and compare it with the rollout's desired routing:

    shadow phase   canary running, 0% of user traffic, mirroring on
    step i         canary running, steps[i]% of user traffic, mirroring off
    promoted       the canary's version is stable, no canary
    rolled back    the old stable, no canary

A difference is recorded (``RolloutState.reconciliations``: when, what was found, what was done),
counted (``mlship_canary_routing_differences_total``) and repaired. A repair restarts the current
step's evidence window (``RolloutState.step_started_at``, the one field that says where the step's
evidence begins): what was gathered while the canary did not get its traffic does not count toward
the step. A difference that cannot be repaired (routing unreadable, the backend refusing, a stable
version changed behind the rollout's back) pauses the rollout with the reason in
``RolloutState.paused``: no judging and no step change until the routing is right again; the step's
evidence window restarts when it is (nobody knew where traffic went in the meantime).

A canary process found dead is restarted only if no runner of this process saw it die: a canary that
dies while a runner watches is rolled back (``Controller._require_canary``), one found dead when a
runner (re)starts may have died with the machine, so it gets another chance, at most
``MAX_CANARY_RESTARTS`` times per rollout (``RolloutState.canary_restarts``, counted before each try,
by a runner or `mlship local up`, so a canary that cannot start is rolled back, not retried forever).
More than ``MAX_REPAIRS_PER_STEP`` repairs in one step mean another writer: the rollout pauses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mlship.canary import timeline
from mlship.canary.backend import MIXED_WEIGHTS, Routing, TrafficBackend
from mlship.canary.judge import Verdict
from mlship.canary.state import (
    MAX_RECONCILIATIONS,
    Reconciliation,
    RolloutState,
    RoutingRecord,
)

MAX_CANARY_RESTARTS = 2
# Repairs in one step beyond which another writer is assumed (a second runner, automation resetting
# weights): the rollout pauses instead of fighting it, and the stall alert can fire.
MAX_REPAIRS_PER_STEP = 3
RESTARTED_CANARY = "restarted the canary"


def desired_routing(state: RolloutState) -> Routing:
    """The routing ``state`` says should be in effect."""
    if state.phase == "promoted":
        return Routing(state.canary_version, None, 0, False)
    if state.phase in ("rolled_back", "expired") or rollback_pending(state):
        return Routing(state.stable_version, None, 0, False)
    if state.phase == "shadow":
        return Routing(state.stable_version, state.canary_version, 0, True)
    return Routing(state.stable_version, state.canary_version, state.weight, False)


def rollback_pending(state: RolloutState) -> bool:
    """A rollback (or an expiry) was decided and its routing change failed: retried, never undone."""
    return (
        state.active
        and state.last_verdict is not None
        and state.last_verdict.decision in ("rollback", "expire")
    )


def record_of(routing: Routing) -> RoutingRecord:
    return RoutingRecord(
        stable_version=routing.stable_version,
        canary_version=routing.canary_version,
        weight=routing.weight,
        shadow=routing.shadow,
    )


def describe(desired: Routing, actual: Routing) -> str:
    """The differences in words, each with what the rollout says."""
    out = []
    if actual.stable_version != desired.stable_version:
        out.append(f"stable {actual.stable_version or 'not running'} (rollout: {desired.stable_version})")
    if actual.canary_version != desired.canary_version:
        found = f"canary {actual.canary_version}" if actual.canary_version else "no canary running"
        out.append(f"{found} (rollout: {desired.canary_version or 'none'})")
    if actual.weight == MIXED_WEIGHTS:
        out.append(f"the route's paths give the canary different shares (rollout: {desired.weight}% on each)")
    elif actual.weight != desired.weight:
        out.append(f"canary weight {actual.weight}% (rollout: {desired.weight}%)")
    if actual.shadow != desired.shadow:
        out.append(
            f"mirroring {'on' if actual.shadow else 'off'} (rollout: {'on' if desired.shadow else 'off'})"
        )
    return "; ".join(out)


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def add_record(state: RolloutState, record: Reconciliation) -> None:
    """Append to the history (bounded) and count it: the metric counts differences by result."""
    state.reconciliations = [*state.reconciliations, record][-MAX_RECONCILIATIONS:]
    if record.result in ("repaired", "failed"):
        state.routing_differences[record.result] = state.routing_differences.get(record.result, 0) + 1
    timeline.append(
        timeline.decision_log(),
        {"rollout_id": state.rollout_id, "event": f"routing-{record.result}", **record.model_dump()},
    )


class Reconciler:
    """Reads and repairs one rollout's routing through a ``TrafficBackend`` (one per controller)."""

    def __init__(self, backend: TrafficBackend, clock: Callable[[], float] = time.time) -> None:
        self.backend = backend
        self.clock = clock  # a repaired step's window opens once the repair returned
        # Rollout whose canary this process has seen running (or deployed): if it disappears now,
        # it died under watch, which is evidence against it, not an accident to repair.
        self.watching: str | None = None

    def reconcile(self, state: RolloutState, now: float) -> Verdict | None:
        """Make the routing ``state``'s. None: it is, judge as usual; else the verdict to act on instead.

        That verdict is `wait` while paused (the routing cannot be read or repaired) or `rollback`
        when a rollback decided earlier has not been completed.
        """
        if rollback_pending(state) and state.last_verdict is not None:
            decided = state.last_verdict
            return Verdict(decided.decision, decided.reason, {**decided.evidence, "retried": state.paused})
        desired = desired_routing(state)
        try:
            actual = self.backend.routing()
        except Exception as exc:  # any backend: a proxy, an API server, a Pulumi stack
            return self._pause(state, now, desired, None, "routing unreadable", "none", one_line(exc))
        if actual == desired:
            self.watching = state.rollout_id
            if state.paused:
                self._resume(state, now, desired, actual)
            return None
        found = describe(desired, actual)
        if actual.stable_version != desired.stable_version:
            why = (
                "mlship never changes the stable version during a rollout: if a promotion was "
                "interrupted, finish it with `mlship canary promote`, else `mlship canary rollback`"
            )
            return self._pause(state, now, desired, actual, found, "none", why)
        if actual.canary_version is not None and actual.canary_version != desired.canary_version:
            why = "another canary version is deployed: remove it, or `mlship canary rollback`"
            return self._pause(state, now, desired, actual, found, "none", why)
        if actual.canary_version is None:
            restarts = state.canary_restarts
            if self.watching == state.rollout_id or restarts >= MAX_CANARY_RESTARTS:
                why = (
                    "it stopped while this runner watched it"
                    if self.watching == state.rollout_id
                    else f"it was found dead or failed to start {restarts + 1} times"
                )
                record = Reconciliation(
                    at=now,
                    by="runner",
                    desired=record_of(desired),
                    actual=record_of(actual),
                    found=found,
                    action=f"not restarted ({why}): the rollout is rolled back",
                    result="failed",
                )
                add_record(state, record)
                return None  # Controller._require_canary rolls it back
        if state.step_repairs >= MAX_REPAIRS_PER_STEP:
            why = (
                f"repaired {state.step_repairs} times in this step, something else writes this routing "
                "(another runner, automation): stop it; the rollout resumes when the routing is its own"
            )
            return self._pause(state, now, desired, actual, found, "none", why)
        action = self._plan(state, actual)
        if actual.canary_version is None:
            state.canary_restarts += 1  # counted before trying: a restart that fails counts too
        try:
            self._repair(state, actual)
            after = self.backend.routing()
            if after != desired:
                raise RuntimeError(f"after the repair the routing still differs: {describe(desired, after)}")
        except Exception as exc:
            return self._pause(state, now, desired, actual, found, action, one_line(exc))
        add_record(
            state,
            Reconciliation(
                at=now,
                by="runner",
                desired=record_of(desired),
                actual=record_of(actual),
                found=found,
                action=f"{action}; step evidence restarted",
                result="repaired",
            ),
        )
        # Evidence from before the repair does not count, nor what was routed while it was applied.
        state.step_started_at = self.clock()
        state.step_repairs += 1
        state.paused = ""
        self.watching = state.rollout_id
        return None

    def transition_failed(self, state: RolloutState, verdict: Verdict, exc: Exception, now: float) -> None:
        """The backend raised while applying ``verdict``: nothing is recorded as done; pause.

        A failed rollback stays decided (``rollback_pending``): every tick retries it.
        """
        desired = desired_routing(state)
        reason = f"{verdict.decision} failed: {one_line(exc)}; retried at the next tick"
        if state.paused == reason:  # the same failure again: recorded once
            return
        state.paused = reason
        add_record(
            state,
            Reconciliation(
                at=now,
                by="runner",
                desired=record_of(desired),
                actual=None,
                found=f"{verdict.decision} decided",
                action=f"the routing change failed: {one_line(exc)}",
                result="failed",
            ),
        )

    # --- steps -------------------------------------------------------------------------------------
    @staticmethod
    def _plan(state: RolloutState, actual: Routing) -> str:
        steps = []
        if actual.canary_version is None:
            steps.append(f"{RESTARTED_CANARY} {state.canary_version}")
        if state.phase == "shadow":
            steps.append("set the canary to 0% with mirroring on")
        else:
            steps.append(f"set the canary weight to {state.weight}%")
        return ", ".join(steps)

    def _repair(self, state: RolloutState, actual: Routing) -> None:
        shadow = state.phase == "shadow"
        if actual.canary_version is None or shadow:
            # Also for the version already deployed (idempotent): 0% of user traffic, mirroring as said.
            self.backend.deploy_canary(state.canary_version, shadow=shadow)
        if not shadow:
            self.backend.set_weight(state.weight)

    def _pause(
        self,
        state: RolloutState,
        now: float,
        desired: Routing,
        actual: Routing | None,
        found: str,
        action: str,
        why: str,
    ) -> Verdict:
        reason = f"{found}: {why}"
        if state.paused != reason:  # recorded and counted once per distinct cause, not every tick
            state.paused = reason
            add_record(
                state,
                Reconciliation(
                    at=now,
                    by="runner",
                    desired=record_of(desired),
                    actual=record_of(actual) if actual else None,
                    found=found,
                    action=f"{action} ({why}); rollout paused" if action != "none" else f"paused: {why}",
                    result="failed",
                ),
            )
        evidence: dict[str, Any] = {"paused": reason, "desired": record_of(desired).model_dump()}
        if actual is not None:
            evidence["actual"] = record_of(actual).model_dump()
        return Verdict("wait", f"paused, routing not as the rollout says: {reason}", evidence)

    def _resume(self, state: RolloutState, now: float, desired: Routing, actual: Routing) -> None:
        add_record(
            state,
            Reconciliation(
                at=now,
                by="runner",
                desired=record_of(desired),
                actual=record_of(actual),
                found="routing as the rollout says again",
                action=f"resumed (paused: {state.paused}); step evidence restarted",
                result="resumed",
            ),
        )
        state.paused = ""
        state.step_repairs = 0  # the routing came back to the rollout's by itself: the other writer stopped
        # Nobody knew where traffic went during the pause: the step's evidence comes from traffic
        # that followed a known routing (and the pause does not eat into max_step_seconds).
        state.step_started_at = now

"""Local traffic backend: the local environment's HAProxy, driven through its runtime API.

Weights change at runtime (no reload, in-flight requests unaffected). Promotion copies the canary's
version into the stable slots, as Flagger does: all traffic moves to the canary, each stable server
is restarted on the new version, traffic moves back, the canary is stopped. Every move waits for the
receiving server to be ready, so no request is sent to a server that cannot answer it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from mlship import names
from mlship.canary import reconcile
from mlship.canary.backend import Routing
from mlship.canary.controller import Controller
from mlship.canary.publish import TextfilePublisher
from mlship.canary.state import Reconciliation, RolloutState, StateStore
from mlship.config import Config
from mlship.errors import EnvironmentNotReady, MlshipError, RefusedError
from mlship.local.environment import CanaryTarget, ComponentStatus, LocalEnvironment
from mlship.local.processes import wait_until
from mlship.promclient import Prometheus

DRAIN_TIMEOUT_S = 30.0


class LocalBackend:
    name = "local"

    def __init__(self, env: LocalEnvironment) -> None:
        self.env = env

    def _require_router(self) -> None:
        if self.env.running("router") is None or self.env.running(names.ROLE_STABLE) is None:
            raise RefusedError("the local environment is not running: `mlship local up` first")

    def routing(self) -> Routing:
        self._require_router()
        servers = self.env.router().servers()
        state = self.env.load()
        stable = state.components.get(names.ROLE_STABLE)
        canary = self.env.running(names.ROLE_CANARY, state)
        canary_server = servers.get(names.ROLE_CANARY)
        # The share of new requests each side gets: a server in maintenance or drained gets none,
        # whatever its weight (a drained canary would starve the step; a stable one in maintenance
        # would send everything to the canary).
        stable_weight = sum(
            servers[slot].weight
            for slot in self.env.stable_slots()
            if slot in servers and servers[slot].takes_traffic
        )
        weight = 0
        if canary is not None and canary_server and canary_server.takes_traffic:
            total = canary_server.weight + stable_weight
            weight = round(100 * canary_server.weight / total) if total else 0
        return Routing(
            stable_version=stable.version if stable else None,
            canary_version=canary.version if canary else None,
            weight=weight,
            shadow=self.env.shadow_file.exists(),
        )

    def deploy_canary(self, version: str, *, shadow: bool) -> None:
        """Idempotent for the version already running: it keeps running, at 0% (as on Kubernetes)."""
        self._require_router()
        router = self.env.router()
        running = self.env.running(names.ROLE_CANARY)
        if running is not None and running.version != version:
            raise RefusedError(f"canary {running.version} is running: promote or roll it back first")
        router.set_weights(0, self.env.stable_slots())
        if running is None:
            self.env.start_server(names.ROLE_CANARY, version)
        router.set_state(names.ROLE_CANARY, "ready")
        self._wait_operational(names.ROLE_CANARY)
        self.env.set_shadow(version if shadow else None)

    def set_weight(self, weight: int) -> None:
        self._require_router()
        if weight > 0 and self.env.running(names.ROLE_CANARY) is None:
            raise RefusedError("no canary server is running")
        self.env.set_shadow(None)
        router = self.env.router()
        servers = router.servers()
        # A weight on a server in maintenance or drained routes nothing: every server that should take
        # traffic is made ready (the stable ones always; the canary when it has a weight).
        wanted = [*self.env.stable_slots(), *([names.ROLE_CANARY] if weight > 0 else [])]
        for slot in wanted:
            if (server := servers.get(slot)) is not None and not server.takes_traffic:
                router.set_state(slot, "ready")
        router.set_weights(weight, self.env.stable_slots())

    def promote(self) -> None:
        self._require_router()
        state = self.env.load()
        canary = self.env.running(names.ROLE_CANARY, state)
        if canary is None or canary.version is None:
            raise RefusedError("no canary server is running: nothing to promote")
        self.env.set_shadow(None)
        self._swap_stable(canary.version)
        self._retire_canary()

    def rollback(self) -> None:
        self._require_router()
        self.env.set_shadow(None)
        self.env.router().set_weights(0, self.env.stable_slots())  # at once: none goes to the canary
        self._retire_canary()

    def deploy_stable(self, version: str) -> None:
        """Serve ``version`` as stable without analysis: stage it in the canary slot, then promote it."""
        self._require_router()
        if self.env.running(names.ROLE_CANARY) is not None:
            raise RefusedError("a canary is running: promote or roll it back first")
        self.deploy_canary(version, shadow=False)
        self.promote()

    # --- steps ---------------------------------------------------------------------------------
    def _swap_stable(self, version: str) -> None:
        router = self.env.router()
        slots = self.env.stable_slots()
        router.set_weights(100, slots)
        for slot in slots:
            self._drain(slot)
            router.set_state(slot, "maint")
            self.env.stop_server(slot)
            self.env.start_server(slot, version)
            router.set_state(slot, "ready")
            self._wait_operational(slot)
        router.set_weights(0, slots)

    def _retire_canary(self) -> None:
        router = self.env.router()
        self._drain(names.ROLE_CANARY)
        router.set_state(names.ROLE_CANARY, "maint")
        self.env.stop_server(names.ROLE_CANARY)

    def _drain(self, slot: str) -> None:
        """Wait until the server has no request in flight (its weight is already 0)."""
        router = self.env.router()
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline and router.sessions(slot) > 0:
            time.sleep(0.05)

    def _wait_operational(self, slot: str) -> None:
        router = self.env.router()
        wait_until(
            lambda: (s := router.servers().get(slot)) is not None and s.operational and not s.admin_maint,
            timeout=15,
            what=f"HAProxy health check of the {slot} server",
        )


def local_controller(
    config: Config, env: LocalEnvironment, *, prometheus_url: str | None = None
) -> Controller:
    """The controller of a rollout on the local environment (every caller builds it here).

    HAProxy weights, the environment's Prometheus (or ``prometheus_url``), and the rollout state
    published as metrics for that Prometheus to scrape.
    """
    return Controller(
        config,
        LocalBackend(env),
        Prometheus(prometheus_url or env.prometheus_url),
        env_name="local",
        publisher=TextfilePublisher(env.textfile_dir),
    )


@dataclass(frozen=True)
class Restored:
    """What `mlship local up` did: the components, and the rollout whose routing it restored."""

    statuses: list[ComponentStatus]
    rollout: RolloutState | None  # the active rollout on this environment, if any
    record: Reconciliation | None  # the difference found and repaired; None if there was none
    warning: str = ""  # the rollout state could not be read: started without restoring it


def local_up(env: LocalEnvironment, stable_version: str | None = None, *, force: bool = False) -> Restored:
    """`mlship local up`: start what is missing; with an active rollout, restore its canary and routing.

    Runs under the rollout's state lock, so a runner's tick never sees the environment half restored.
    Whatever restarted (the router with its default weights, the canary, the stable server that
    mirrors in the shadow phase, or all of them after a reboot), the routing ends as the rollout says;
    a difference found is recorded in the rollout's reconciliation history and restarts the current
    step's evidence window, as a runner's repair would.
    """
    store = StateStore()
    with store.locked():
        try:
            state = store.load()
        except MlshipError as exc:
            # An unreadable rollout state must not keep the environment down: start it with no canary
            # traffic (the router's defaults) and say so; the state file is left for inspection.
            return Restored(env.up(stable_version, force=force), None, None, warning=str(exc))
        if state is None or not state.active or state.env != "local":
            return Restored(env.up(stable_version, force=force), None, None)
        if stable_version and not state.stable_version.endswith(stable_version.split(":")[-1]):
            raise RefusedError(
                f"a rollout of {state.canary_version} over stable {state.stable_version} is active: "
                f"`mlship local up` restores it; finish it (`mlship canary run {state.canary_version}`) "
                "or `mlship canary rollback` before serving another stable version"
            )
        desired = reconcile.desired_routing(state)
        if desired.canary_version is None:  # a rollback is pending: the runner completes it
            return Restored(env.up(state.stable_version, force=force), state, None)
        backend = LocalBackend(env)
        try:
            before: Routing | None = backend.routing()
            unreadable = ""
        except Exception as exc:  # router or stable server not running: they are started below
            before, unreadable = None, reconcile.one_line(exc)
        canary_dead = env.running(names.ROLE_CANARY) is None
        if canary_dead and state.canary_restarts >= reconcile.MAX_CANARY_RESTARTS:
            # Found dead too often (or never started): not restarted; `mlship canary run` rolls it back.
            statuses = env.up(state.stable_version, force=force)
            record = Reconciliation(
                at=time.time(),
                by="local up",
                desired=reconcile.record_of(desired),
                actual=reconcile.record_of(before) if before is not None else None,
                found=f"no canary running (found dead or failed to start {state.canary_restarts} times)",
                action="canary not restarted: `mlship canary run` or `mlship canary rollback` rolls it back",
                result="failed",
            )
            return _save_restored(env, store, state, statuses, record)
        if canary_dead:
            state.canary_restarts += 1  # counted before trying, as a runner counts its restarts
        target = CanaryTarget(desired.canary_version, desired.weight, desired.shadow)
        try:
            statuses = env.up(state.stable_version, canary=target, force=force)
        except EnvironmentNotReady as exc:
            if env.running("router") is None:
                raise
            # The canary did not start; everything else did, with the canary at 0%.
            state.paused = f"the canary did not start: {reconcile.one_line(exc)}"
            record = Reconciliation(
                at=time.time(),
                by="local up",
                desired=reconcile.record_of(desired),
                actual=reconcile.record_of(before) if before is not None else None,
                found="no canary running",
                action=f"started the rest; the canary failed to start ({reconcile.one_line(exc)})",
                result="failed",
            )
            return _save_restored(env, store, state, env.status(), record)
        if before == desired:
            if canary_dead:  # counted above, nothing else changed
                store.save(state)
            return Restored(statuses, state, None)
        after = backend.routing()
        repaired = after == desired
        found = (
            reconcile.describe(desired, before)
            if before is not None
            else f"routing unreadable ({unreadable})"
        )
        action = "started what was missing, restored the canary and its routing"
        record = Reconciliation(
            at=time.time(),
            by="local up",
            desired=reconcile.record_of(desired),
            actual=reconcile.record_of(before) if before is not None else None,
            found=found,
            action=action
            + ("; step evidence restarted" if repaired else f"; still {reconcile.describe(desired, after)}"),
            result="repaired" if repaired else "failed",
        )
        if repaired:
            state.step_started_at = time.time()
            state.paused = ""
        return _save_restored(env, store, state, statuses, record)


def _save_restored(
    env: LocalEnvironment,
    store: StateStore,
    state: RolloutState,
    statuses: list[ComponentStatus],
    record: Reconciliation,
) -> Restored:
    reconcile.add_record(state, record)
    store.save(state)
    TextfilePublisher(env.textfile_dir).publish(state)
    return Restored(statuses, state, record)

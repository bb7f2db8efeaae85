"""Faults injected while users send traffic and a canary rollout runs (the real controller, real processes).

One rollout carries the three faults in turn, as they would happen in a real release:

1. Prometheus stops during the analysis: the controller must hold (never advance without data), keep
   a consistent state file, and carry on once Prometheus is back.
2. The proxy's configuration is reloaded several times: no request lost, routing (weights, server
   states) unchanged, the runtime API answering again.
3. The canary server is killed: the router marks it down and retries its requests on stable (no
   request lost), the judge rolls the release back and never promotes it.

Then, with all traffic on stable, one of the two stable servers is killed (the campaign's environment
runs `local.stable_replicas: 2`): the other takes every request and `mlship local up` brings the
killed one back into rotation.

Every case restores the environment it found (missing processes restarted, weights re-applied), so
one failure does not spill into the next case.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from devtools.reliability import recovery
from devtools.reliability.result import CaseResult, errored, skipped, verdict
from devtools.reliability.traffic import Traffic
from mlship import names
from mlship.canary.backends.local import LocalBackend, local_controller, local_up
from mlship.canary.controller import Controller
from mlship.canary.state import RolloutState, StateStore
from mlship.config import Config
from mlship.local.environment import LocalEnvironment
from mlship.local.processes import alive, kill_tree, stop
from mlship.model.releases import Releases

AREA = "faults"
# A short rollout: small sample sizes so each step takes seconds at the campaign's traffic rate. The
# faults are about availability and missing data, not about how the candidate's predictions differ
# from the baseline's (the judge's business, tests/canary): the prediction-shift limit is relaxed so
# that difference does not hold the rollout (baseline and candidate PSI is about 0.5 on demo traffic).
FAULT_CANARY = {
    "steps": [25, 50, 100],
    "min_samples": 100,
    "max_step_seconds": 120.0,
    "poll_seconds": 1.0,
    "prediction_psi_limit": 5.0,
}


@dataclass(frozen=True)
class FaultSettings:
    rps: float
    outage_ticks: int  # controller ticks while Prometheus is down
    reloads: int  # proxy reloads under load
    # Crashes mid-rollout (devtools/reliability/recovery.py): (case, release a good version?).
    recovery: tuple[tuple[str, bool], ...] = ()
    advance_timeout_s: float = 120.0


def fault_config(config: Config) -> Config:
    return config.model_copy(update={"canary": config.canary.model_copy(update=FAULT_CANARY)})


def _wait(check: Callable[[], bool], timeout: float, step: float = 0.2) -> float | None:
    """Seconds until ``check`` held, or None after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        with contextlib.suppress(Exception):  # a component restarting answers errors; keep polling
            if check():
                return time.monotonic() - start
        time.sleep(step)
    return None


# Longest wait for the router's health check to mark a killed server down.
ROUTER_DOWN_S = 20.0


@dataclass(frozen=True)
class Crash:
    pids: list[int]  # the server and its workers, all SIGKILLed
    marked_down_s: float | None  # until the router's health check marked it down; None: never

    def describe(self) -> str:
        down = (
            f"{self.marked_down_s:.1f}s"
            if self.marked_down_s is not None
            else f"never ({ROUTER_DOWN_S:.0f}s)"
        )
        return f"({len(self.pids)} processes); router marked it down in {down}"


def crash_server(env: LocalEnvironment, slot: str, pid: int) -> Crash:
    """SIGKILL a server's whole process tree, as a crash or an OOM kill would; time the router's reaction."""
    pids = kill_tree(pid)
    marked_down = _wait(lambda: not env.router().servers()[slot].operational, timeout=ROUTER_DOWN_S)
    return Crash(pids=pids, marked_down_s=marked_down)


def _state_consistent(env: LocalEnvironment, state: RolloutState | None) -> tuple[bool, str]:
    """The state file parses against its schema and describes the routing HAProxy really applies."""
    on_disk = StateStore().load()  # validates against RolloutState; raises on corruption
    if on_disk is None or state is None:
        return False, "no state file"
    routing = LocalBackend(env).routing()
    expected_weight = on_disk.weight if on_disk.active else 0
    ok = on_disk.phase == state.phase and routing.weight == expected_weight
    return ok, f"state {on_disk.phase} {on_disk.weight}%, router {routing.weight}%"


def _restore(env: LocalEnvironment, controller: Controller) -> None:
    """Restart what is missing; an active rollout's canary and weight come back with it."""
    local_up(env)


def prometheus_outage(
    env: LocalEnvironment, controller: Controller, traffic: Traffic, settings: FaultSettings
) -> CaseResult:
    expected = (
        "every verdict `wait` while Prometheus is down (no data is never a pass), weight held, state "
        "file valid and matching the router; rollout advances once Prometheus is back; 0 requests lost"
    )
    case = "Prometheus stopped during canary analysis"
    try:
        mark = traffic.mark()
        before = controller.active()
        prom = env.running("prometheus")
        if prom is None:
            raise RuntimeError("Prometheus is not running")
        stop(prom.pid, expect=prom.argv0)
        decisions = []
        for _ in range(settings.outage_ticks):
            state, v = controller.tick()
            decisions.append(v.decision)
            time.sleep(controller.config.canary.poll_seconds)
        held = state.phase == before.phase and state.weight == before.weight
        consistent, described = _state_consistent(env, state)
        local_up(env)  # Prometheus back (same data folder)
        index = state.step_index
        started = time.monotonic()
        while time.monotonic() - started < settings.advance_timeout_s:
            state, v = controller.tick()
            if state.step_index != index or not state.active:
                break
            time.sleep(controller.config.canary.poll_seconds)
        advanced = state.active and state.step_index == index + 1
        resumed_in = time.monotonic() - started
        sent, lost = traffic.since(mark)
        ok = all(d == "wait" for d in decisions) and held and consistent and advanced and lost == 0
        observed = (
            f"{len(decisions)} ticks without Prometheus: {', '.join(decisions)}; weight held at "
            f"{before.weight}%; {described}; after restart: "
            + (f"advanced to {state.weight}% in {resumed_in:.0f}s" if advanced else f"{v.reason}")
            + f"; {lost} of {sent} requests lost"
        )
        return verdict(
            AREA,
            case,
            expected=expected,
            observed=observed,
            ok=ok,
            decisions=decisions,
            resumed_s=round(resumed_in, 1),
            sent=sent,
            lost=lost,
        )
    except Exception as exc:
        return errored(AREA, case, expected=expected, exc=exc)
    finally:
        _restore(env, controller)


def _routing_table(env: LocalEnvironment) -> dict[str, tuple[int, bool]]:
    return {name: (s.weight, s.admin_maint) for name, s in env.router().servers().items()}


def proxy_reload(
    env: LocalEnvironment, controller: Controller, traffic: Traffic, settings: FaultSettings
) -> CaseResult:
    expected = (
        f"{settings.reloads} graceful reloads mid-rollout: 0 requests lost, router still running, "
        "weights and server states unchanged, state file matching the router"
    )
    case = "proxy configuration reloaded under load"
    try:
        state = controller.active()
        before = _routing_table(env)
        mark = traffic.mark()
        events = []
        for i in range(settings.reloads):
            try:
                env.reload_router()
            except Exception as exc:  # the router did not survive the previous reload
                events.append(f"reload {i + 1} refused: {exc}")
                break
            if _wait(lambda: bool(env.router().servers()), timeout=10) is None:
                events.append(f"runtime API silent after reload {i + 1}")
            time.sleep(1.5)
        time.sleep(2)  # requests sent around the last reload get their answers
        gone = env.running("router") is None
        if gone:  # measure what users lose while it is down, then bring it back
            time.sleep(3)
            events.append("router process gone")
        sent, lost = traffic.since(mark)
        after = {} if gone else _routing_table(env)
        consistent, described = (False, "router down") if gone else _state_consistent(env, state)
        ok = lost == 0 and not gone and after == before and consistent and not events
        observed = (
            f"{lost} of {sent} requests lost; "
            + ("; ".join(events) + "; " if events else "router running; ")
            + f"weights/maint before {before}, after {after or 'unreadable'}; {described}"
        )
        return verdict(AREA, case, expected=expected, observed=observed, ok=ok, sent=sent, lost=lost)
    except Exception as exc:
        return errored(AREA, case, expected=expected, exc=exc)
    finally:
        _restore(env, controller)


def canary_killed(
    env: LocalEnvironment, controller: Controller, traffic: Traffic, settings: FaultSettings
) -> CaseResult:
    expected = (
        "router marks the canary down and retries its requests on stable (0 lost); the controller rolls "
        "the release back, never advances or promotes it; stable unchanged; state rolled_back, router 0%"
    )
    case = "canary server killed mid-rollout"
    try:
        state = controller.active()
        stable_before = Releases.load().stable
        canary = env.running(names.ROLE_CANARY)
        if canary is None:
            raise RuntimeError("no canary server is running")
        weight = state.weight
        mark = traffic.mark()
        killed = time.monotonic()
        kill = crash_server(env, names.ROLE_CANARY, canary.pid)
        crash = ""
        try:
            final = controller.run_until_done()
        except Exception as exc:  # what `mlship canary run` would die of
            crash = f"controller raised {type(exc).__name__}: {exc}"
            final = controller.status() or state
        decided = time.monotonic() - killed
        time.sleep(2)
        sent, lost = traffic.since(mark)
        moved_on = [s.weight for s in final.history if s.weight > weight]
        promoted = final.phase == "promoted"
        routing = LocalBackend(env).routing()
        consistent, described = _state_consistent(env, final)
        ok = (
            not crash
            and final.phase == "rolled_back"
            and not promoted
            and not moved_on
            and kill.marked_down_s is not None
            and lost == 0
            and Releases.load().stable == stable_before
            and routing.canary_version is None
            and consistent
            and not alive(canary.pid)
            and not env.running(names.ROLE_CANARY)
        )
        evidence = final.last_verdict.evidence if final.last_verdict else {}
        triggered = ", ".join(evidence.get("triggered_by", []))
        outcome = crash or f"{final.phase} after {decided:.0f}s (triggered by {triggered or '-'})"
        observed = (
            f"killed {kill.describe()} at {weight}%"
            + f"; {outcome}; phase {final.phase} at {final.weight}%"
            + (f", advanced to {moved_on} after the kill" if moved_on else "")
            + f"; {lost} of {sent} requests lost; {described}"
        )
        return verdict(
            AREA,
            case,
            expected=expected,
            observed=observed,
            ok=ok,
            marked_down_s=kill.marked_down_s,
            decided_s=round(decided, 1),
            sent=sent,
            lost=lost,
        )
    except Exception as exc:
        return errored(AREA, case, expected=expected, exc=exc)
    finally:
        _restore(env, controller)


def stable_replica_killed(env: LocalEnvironment, traffic: Traffic) -> CaseResult:
    case = "one of two stable servers killed"
    expected = (
        "the other stable server takes every request (0 lost); the router reports the killed one down; "
        "`mlship local up` restarts it on the same version and the router sends it traffic again"
    )
    slots = env.stable_slots()
    if len(slots) < 2:
        return skipped(
            AREA,
            case,
            expected=expected,
            why="the environment runs one stable server (local.stable_replicas: 1)",
        )
    victim = slots[-1]
    try:
        comp = env.running(victim)
        if comp is None:
            raise RuntimeError(f"the {victim} server is not running")
        version = comp.version
        mark = traffic.mark()
        kill = crash_server(env, victim, comp.pid)
        dead = _wait(lambda: not any(alive(pid) for pid in kill.pids), 10.0) is not None
        time.sleep(3)  # users keep sending while one stable server is gone
        sent, lost = traffic.since(mark)
        env.up()  # what an operator (or a supervisor) runs: restart what is missing
        back = env.running(victim)
        rejoined = _wait(lambda: env.router().servers()[victim].operational, timeout=20)
        served = _served_by(env, victim)
        ok = (
            dead
            and kill.marked_down_s is not None
            and lost == 0
            and back is not None
            and back.version == version
            and rejoined is not None
            and served
        )
        observed = (
            f"killed {victim} {kill.describe()}"
            + f"; {lost} of {sent} requests lost; after `local up`: "
            + (f"{victim} back on {back.version}" if back else f"{victim} not running")
            + (
                ", operational again and answering"
                if rejoined is not None and served
                else ", not in rotation"
            )
        )
        return verdict(
            AREA,
            case,
            expected=expected,
            observed=observed,
            ok=ok,
            marked_down_s=kill.marked_down_s,
            sent=sent,
            lost=lost,
        )
    except Exception as exc:
        return errored(AREA, case, expected=expected, exc=exc)
    finally:
        env.up()


def _served_by(env: LocalEnvironment, slot: str) -> bool:
    """The router's request counter of ``slot`` grows within 10 s (it takes its share again)."""

    router = env.router()
    before = router.sessions_total(slot)
    return _wait(lambda: router.sessions_total(slot) > before, timeout=10) is not None


def run_faults(
    env: LocalEnvironment,
    config: Config,
    candidate: str,
    rows: Sequence[Mapping[str, object]],
    settings: FaultSettings,
    progress: Callable[[str], None] = lambda _msg: None,
    *,
    baseline: str | None = None,
    bad: str | None = None,
) -> list[CaseResult]:
    """Start a rollout of ``candidate`` under traffic and inject each fault in turn; then the crashes
    of ``settings.recovery``, each in a rollout of its own (``baseline`` and ``candidate`` as the good
    versions, ``bad`` as the one to roll back)."""
    base_config = config
    config = fault_config(config)
    controller = local_controller(config, env)
    results: list[CaseResult] = []
    with Traffic(env.proxy_url, rows, settings.rps) as traffic:
        try:
            for name, fault in (
                ("stopping Prometheus during analysis", prometheus_outage),
                ("reloading the proxy", proxy_reload),
                ("killing the canary server", canary_killed),
            ):
                state = controller.status()
                if state is None or not state.active:  # the first fault, or the previous one ended it
                    progress(f"rollout of {candidate} under {settings.rps:.0f} req/s")
                    controller.start(candidate)
                    time.sleep(3)
                progress(name)
                results.append(fault(env, controller, traffic, settings))
        finally:
            state = controller.status()
            if state is not None and state.active:
                controller.rollback("reliability campaign cleanup")
        if settings.recovery and baseline is not None:
            results += recovery.run_recovery(
                env,
                base_config,
                traffic,
                good=(baseline, candidate),
                bad=bad,
                cases=settings.recovery,
                progress=progress,
            )
        progress("killing one of two stable servers")
        results.append(stable_replica_killed(env, traffic))
    return results

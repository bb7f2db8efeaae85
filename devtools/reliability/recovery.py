"""Crashes mid-rollout: the rollout must end as it would have without them, whatever restarted.

Each case runs a real `mlship canary run` process (killed with SIGKILL where the case says) against
the campaign's local environment under traffic, injects its crash, recovers the way an operator or a
supervisor would (`mlship local up`, `mlship canary run` again), and checks:

- the outcome: a good version promoted, a bad one (the `buggy` model, forced) rolled back;
- the routing: from recovery on, the router's weights and mirroring equal what the rollout state says
  at every sample of a watcher reading both under the rollout's lock (``RoutingWatch``);
- the requests lost (5xx or no answer; nonzero only while the router itself is down) and the times:
  fault to routing restored, fault to the first verdict of a runner on restored routing.

Cases: router killed (runner alive); runner killed and resumed; both; Prometheus killed (with its
data, and in the full campaign with its data lost); every process at once, as a reboot; the canary
killed while the runner is dead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from devtools.reliability.result import CaseResult, errored, verdict
from devtools.reliability.traffic import Traffic
from mlship import names
from mlship.canary.backends.local import LocalBackend, local_controller
from mlship.canary.backends.local import local_up as restore
from mlship.canary.reconcile import describe, desired_routing
from mlship.canary.state import RolloutState, StateStore
from mlship.config import Config
from mlship.local.environment import LocalEnvironment
from mlship.local.processes import alive, kill_tree
from mlship.paths import bentoml_home, state_dir

AREA = "faults"
# Short steps for the runner's rollouts (the faults are about recovery, not about the statistics,
# tested in tests/canary). The prediction-shift limit is relaxed as in faults.FAULT_CANARY: baseline
# and candidate differ by a PSI of about 0.5 on demo traffic, which would hold the step.
RECOVERY_CANARY = {
    "steps": [20, 100],
    "min_samples": 30,
    "max_step_seconds": 180.0,
    "poll_seconds": 1.0,
    "prediction_psi_limit": 5.0,
}
RUN_TIMEOUT_S = 300.0


def recovery_config(config: Config) -> Config:
    return config.model_copy(update={"canary": config.canary.model_copy(update=RECOVERY_CANARY)})


# --- the runner, as a user runs it -------------------------------------------------------------------
def project_for(env: LocalEnvironment, config: Config, where: Path) -> Path:
    """A project folder whose mlship.yaml points at ``env`` and holds ``config``'s canary settings."""
    where.mkdir(parents=True, exist_ok=True)
    doc = {"local": env.config.local.model_dump(), "canary": config.canary.model_dump()}
    (where / "mlship.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    return where


def mlship_env() -> dict[str, str]:
    """The variables that select this process's state and model store (a subprocess sees the same)."""
    return {
        **os.environ,
        "MLSHIP_STATE_DIR": str(state_dir()),
        "BENTOML_HOME": str(bentoml_home()),
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }


class Runner:
    """`mlship canary run VERSION` in its own process (SIGKILL-able, as a crash or an OOM kill)."""

    def __init__(
        self,
        project: Path,
        version: str,
        *,
        force: bool = False,
        steps: Sequence[int] = (),
        log: Path | None = None,
    ) -> None:
        exe = Path(sys.executable).with_name("mlship")
        self.log = log or project / f"runner-{time.monotonic_ns()}.log"
        argv = [str(exe), "canary", "run", version, "--json", *(["--force"] if force else [])]
        if steps:
            argv += ["--steps", ",".join(map(str, steps))]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                argv, cwd=project, env=mlship_env(), stdout=out, stderr=subprocess.STDOUT
            )

    def kill(self) -> None:
        """SIGKILL: no cleanup, no final state write, locks released by the kernel."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def wait(self, timeout: float = RUN_TIMEOUT_S) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9

    def tail(self, lines: int = 5) -> str:
        text = self.log.read_text(errors="replace").strip().splitlines() if self.log.exists() else []
        return " | ".join(line.strip() for line in text[-lines:])


# --- watching the routing ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    t: float  # time.time()
    in_sync: bool  # routing in effect equals the rollout's desired routing
    difference: str  # what differs, or why the routing could not be read
    verdict_at: float | None  # when the last verdict was recorded (a runner is ticking)
    phase: str


@dataclass
class RoutingWatch:
    """Samples, under the rollout's lock, the state and the routing the router really applies.

    Every state change (runner tick, `local up`) happens under that lock, so each sample is a
    consistent pair: a difference seen here is one a user's traffic would see.
    """

    env: LocalEnvironment
    period_s: float = 0.25
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RoutingWatch:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        store = StateStore()
        backend = LocalBackend(self.env)
        while not self._stop.is_set():
            with store.locked():
                state = store.load()
                sample = self._sample(state, backend)
            if sample is not None:
                self.samples.append(sample)
            self._stop.wait(self.period_s)

    @staticmethod
    def _sample(state: RolloutState | None, backend: LocalBackend) -> Sample | None:
        if state is None:
            return None
        verdict_at = state.last_verdict.at if state.last_verdict else None
        desired = desired_routing(state)
        try:
            actual = backend.routing()
        except Exception as exc:
            return Sample(time.time(), False, f"unreadable: {exc}", verdict_at, state.phase)
        return Sample(time.time(), actual == desired, describe(desired, actual), verdict_at, state.phase)

    def wait_for_difference(self, since: float, timeout: float = 10.0) -> Sample:
        """The first sample after ``since`` whose routing differs from the rollout's (the watch sees it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = next((s for s in self.after(since) if not s.in_sync), None)
            if seen is not None:
                return seen
            time.sleep(self.period_s / 2)
        raise TimeoutError(f"no routing difference seen within {timeout:.0f}s")

    def after(self, t: float) -> list[Sample]:
        return [s for s in self.samples if s.t >= t]

    def differences_after(self, t: float) -> list[str]:
        return sorted({s.difference for s in self.after(t) if not s.in_sync})

    def first_in_sync_after(self, t: float) -> float | None:
        """First instant after ``t`` from which every sample is in sync."""
        later = self.after(t)
        for i, s in enumerate(later):
            if all(x.in_sync for x in later[i:]):
                return s.t
        return None

    def first_verdict_after(self, t: float) -> float | None:
        """First sample after ``t`` showing a verdict made after ``t`` on routing in sync."""
        for s in self.after(t):
            if s.in_sync and s.verdict_at is not None and s.verdict_at > t:
                return s.t
        return None


# --- crashes ---------------------------------------------------------------------------------------------
def kill_component(env: LocalEnvironment, name: str) -> list[int]:
    """SIGKILL a component's whole process tree (HAProxy: master and worker; BentoML: all workers)."""
    comp = env.running(name)
    if comp is None:
        raise RuntimeError(f"{name} is not running")
    pids = kill_tree(comp.pid)
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return pids


def kill_everything(env: LocalEnvironment) -> list[str]:
    """Every process of the environment at once, as a power cut or a reboot would."""
    killed = []
    for name in (*env.slots(), "router", "prometheus", "node_exporter"):
        comp = env.running(name)
        if comp is not None:
            kill_tree(comp.pid)
            killed.append(name)
    return killed


def wait_rollout(check: Callable[[RolloutState], bool], timeout: float = 120.0) -> RolloutState:
    deadline = time.monotonic() + timeout
    state = StateStore().load()
    while time.monotonic() < deadline:
        state = StateStore().load()
        if state is not None and check(state):
            return state
        time.sleep(0.25)
    raise TimeoutError(f"rollout never reached the expected point (last: {state and state.phase})")


def mid_step(state: RolloutState, verdicts: int = 3) -> bool:
    """Judging the first traffic step: a few verdicts in, samples gathering."""
    return (
        state.phase == "progressing"
        and state.step_index == 0
        and sum(state.verdict_counts.values()) >= verdicts
    )


# A bad release's canary starts at 5%: its errors then take a few seconds, not one tick, to be
# significant, and the crash lands before the verdict (else the case would prove nothing).
BAD_STEPS = (5, 100)


@dataclass(frozen=True)
class Release:
    version: str
    good: bool  # expected promoted; else rolled back

    @property
    def expected(self) -> str:
        return "promoted" if self.good else "rolled_back"

    @property
    def exit_code(self) -> int:
        return 0 if self.good else 10  # `mlship canary run`: 0 promoted, 10 rolled back


@dataclass
class Context:
    env: LocalEnvironment
    config: Config
    traffic: Traffic
    project: Path


@dataclass
class Run:
    """One rollout driven by runner processes, and what its crash did."""

    ctx: Context
    release: Release
    runner: Runner
    what: str = ""
    router_down: bool = False  # the router itself was down: users lose requests until it is back
    recovered_at: float = 0.0  # when the recovery (restart, resume) was done
    recovery_mark: tuple[int, int, int] = (0, 0, 0)  # traffic counters then

    def resume(self) -> None:
        """`mlship canary run VERSION` again, as the operator (or the CI job's retry) would."""
        self.runner = start_runner(self.ctx, self.release)

    def recovered(self) -> None:
        self.recovered_at = time.time()
        self.recovery_mark = self.ctx.traffic.mark()


def start_runner(ctx: Context, release: Release) -> Runner:
    steps = () if release.good else BAD_STEPS
    return Runner(ctx.project, release.version, force=not release.good, steps=steps)


def local_up(run: Run) -> None:
    """What `mlship local up` runs after a crash (its command function is a thin wrapper of this),
    in this process: the recovery is timed without another interpreter's start-up."""
    restore(run.ctx.env)


# --- the crashes -------------------------------------------------------------------------------------------
def router_killed(run: Run) -> None:
    pids = kill_component(run.ctx.env, "router")
    time.sleep(2)  # the runner ticks on a dead router: it pauses, it does not die
    local_up(run)
    run.recovered()
    run.what, run.router_down = f"router SIGKILLed ({len(pids)} processes), `local up` after 2 s", True


def runner_killed(run: Run) -> None:
    run.runner.kill()
    time.sleep(3)
    run.resume()
    run.recovered()
    run.what = "runner SIGKILLed, resumed after 3 s"


def router_and_runner_killed(run: Run) -> None:
    """The sequence of issue 16: runner, then router (master and worker), `local up`, `canary run`."""
    run.runner.kill()
    pids = kill_component(run.ctx.env, "router")
    time.sleep(2)
    local_up(run)
    run.resume()
    run.recovered()
    run.what = f"runner then router SIGKILLed ({len(pids)} processes), `local up` and `canary run` after 2 s"
    run.router_down = True


def prometheus_killed(run: Run, *, data_lost: bool = False) -> None:
    env = run.ctx.env
    kill_component(env, "prometheus")
    time.sleep(3)  # the runner holds: no data is never a pass
    if data_lost:  # a new Prometheus: every counter it knew starts over
        shutil.rmtree(env.dir / "prometheus-data", ignore_errors=True)
    local_up(run)
    run.recovered()
    run.what = (
        "Prometheus SIGKILLed" + (" and its data deleted" if data_lost else "") + ", `local up` after 3 s"
    )


def everything_killed(run: Run) -> None:
    run.runner.kill()
    killed = kill_everything(run.ctx.env)
    time.sleep(1)
    local_up(run)
    run.resume()
    run.recovered()
    run.what = f"runner and every process ({', '.join(killed)}) SIGKILLed; `local up`, `canary run`"
    run.router_down = True


def canary_killed_runner_dead(run: Run) -> None:
    run.runner.kill()
    pids = kill_component(run.ctx.env, names.ROLE_CANARY)
    time.sleep(2)  # the router marks it down and retries its requests on stable
    run.resume()  # no `local up`: the resumed runner finds the canary dead and restarts it
    run.recovered()
    run.what = f"runner then canary ({len(pids)} processes) SIGKILLed; `canary run` after 2 s"


Crash = Callable[[Run], None]


@dataclass(frozen=True)
class Case:
    name: str
    crash: Crash
    expected: str


CASES = {
    "router": Case(
        "router killed and restarted mid-rollout",
        router_killed,
        "the runner pauses while the router is down (no crash, no verdict on unknown routing); "
        "`local up` restores the canary's weight",
    ),
    "runner": Case(
        "runner killed and resumed",
        runner_killed,
        "the resumed runner continues the rollout where it stood; 0 requests lost",
    ),
    "both": Case(
        "runner and router killed (issue 16)",
        router_and_runner_killed,
        "`local up` restores the weight the rollout says, `canary run` resumes on it",
    ),
    "prometheus": Case(
        "Prometheus killed and restarted",
        prometheus_killed,
        "verdicts `wait` while it is down, counts right after (its data kept); 0 requests lost",
    ),
    "prometheus-data-lost": Case(
        "Prometheus killed, its data lost",
        lambda run: prometheus_killed(run, data_lost=True),
        "counters start over in the new Prometheus: no reset read as traffic or errors; 0 requests lost",
    ),
    "reboot": Case(
        "every process gone at once (reboot)",
        everything_killed,
        "`local up` restarts everything with the canary and its weight, `canary run` resumes",
    ),
    "canary": Case(
        "canary killed while the runner is dead",
        canary_killed_runner_dead,
        "0 requests lost (router retries on stable); the resumed runner restarts the canary it did "
        "not see die, with its weight, and restarts the step's evidence",
    ),
}


def run_case(ctx: Context, case: Case, release: Release) -> CaseResult:
    """Start a rollout with a runner, crash, recover, let it end; judge outcome, routing and losses."""
    name = f"{case.name} ({'good' if release.good else 'bad'} version)"
    expected = (
        f"{case.expected}; {release.expected.replace('_', ' ')}, as without the crash; from recovery on "
        "the router's routing equals the rollout's at every sample"
    )
    run: Run | None = None
    try:
        mark = ctx.traffic.mark()
        with RoutingWatch(ctx.env) as watch:
            run = Run(ctx, release, start_runner(ctx, release))
            wait_rollout(lambda state: mid_step(state, 2 if release.good else 1))
            fault_at = time.time()
            case.crash(run)
            code = run.runner.wait()
            time.sleep(1.0)  # answers to the last requests
        return _judge(name, expected, run, watch, mark, fault_at, code)
    except Exception as exc:
        return errored(AREA, name, expected=expected, exc=exc)
    finally:
        if run is not None and run.runner.proc.poll() is None:
            run.runner.kill()
        clean(ctx)


def _judge(
    name: str,
    expected: str,
    run: Run,
    watch: RoutingWatch,
    mark: tuple[int, int, int],
    fault_at: float,
    code: int,
) -> CaseResult:
    state = StateStore().load()
    outcome = state.phase if state else "no state"
    traffic = run.ctx.traffic
    sent, lost = traffic.since(mark)
    # A bad release's canary answers 5xx by design until it is rolled back: what the crash cost users
    # is then the requests that got no answer at all. A good release must cost nothing but those.
    cost, cost_after = (
        (lost, traffic.since(run.recovery_mark)[1])
        if run.release.good
        else (traffic.unanswered_since(mark), traffic.unanswered_since(run.recovery_mark))
    )
    restored = watch.first_in_sync_after(fault_at)
    judged = watch.first_verdict_after(run.recovered_at)
    restored_s = None if restored is None else round(restored - fault_at, 1)
    judged_s = None if judged is None else round(judged - fault_at, 1)
    ok = (
        outcome == run.release.expected
        and code == run.release.exit_code
        and restored is not None
        and judged is not None
        and cost_after == 0
        and (run.router_down or cost == 0)
    )
    differences = watch.differences_after(restored or fault_at)
    observed = (
        f"{run.what}; {run.release.version} {outcome} (runner exit {code}); routing = rollout's "
        + (
            f"from {restored_s}s after the fault on, at every sample"
            if restored
            else f"never again: {differences}"
        )
        + f"; first verdict on it {judged_s}s after the fault"
        + f"; {lost} of {sent} requests lost"
        + ("" if run.release.good else f" ({lost - cost} of them 5xx answers of the bad canary)")
        + f", {cost_after} after recovery"
        + ("" if code == run.release.exit_code else f"; runner said: {run.runner.tail(2)}")
    )
    return verdict(
        AREA,
        name,
        expected=expected,
        observed=observed,
        ok=ok,
        sent=sent,
        lost=lost,
        lost_to_crash=cost,
        lost_after_recovery=cost_after,
        router_down=run.router_down,
        outcome=outcome,
        expected_outcome=run.release.expected,
        restored_s=restored_s,
        first_verdict_s=judged_s,
        reconciliations=[r.model_dump() for r in (state.reconciliations if state else [])],
    )


def clean(ctx: Context) -> None:
    """Leave the environment as the next case needs it: everything up, no rollout running."""
    with contextlib.suppress(Exception):
        restore(ctx.env)
    state = StateStore().load()
    if state is not None and state.active:
        with contextlib.suppress(Exception):
            local_controller(ctx.config, ctx.env).rollback("reliability campaign cleanup")


def run_recovery(
    env: LocalEnvironment,
    config: Config,
    traffic: Traffic,
    *,
    good: Sequence[str],
    bad: str | None,
    cases: Sequence[tuple[str, bool]],
    progress: Callable[[str], None] = lambda _msg: None,
) -> list[CaseResult]:
    """Each ``(case key, good?)`` in turn, each in a rollout of its own.

    Good releases alternate between the ``good`` versions (each promotion makes the other one the
    releasable one), so the environment ends serving either; ``bad`` is released with --force and
    must be rolled back.
    """
    config = recovery_config(config)
    project = project_for(env, config, state_dir() / "recovery-project")
    ctx = Context(env, config, traffic, project)
    results = []
    for key, is_good in cases:
        case = CASES[key]
        stable = LocalBackend(env).routing().stable_version
        if is_good:
            version = next(v for v in good if v != stable)
        elif bad is not None:
            version = bad
        else:
            continue
        progress(f"{case.name}: releasing {version} ({'good' if is_good else 'bad'})")
        results.append(run_case(ctx, case, Release(version, is_good)))
    return results

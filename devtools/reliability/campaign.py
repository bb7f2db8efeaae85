"""The campaign: load, faults, bad input and scans against one running local environment.

`run_campaign` takes an environment that is up (stable = the baseline model) and returns the report;
`isolated_environment` builds one on free loopback ports with its own state folder, so the campaign
never touches the user's own local environment (127.0.0.1:8080) or rollouts.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from devtools.reliability import api_input, cli_input, faults, recovery, saturation, scans
from devtools.reliability.report import Report
from devtools.reliability.result import CaseResult, errored, verdict
from mlship.config import Config
from mlship.local import load
from mlship.local.environment import LocalEnvironment, on_free_ports
from mlship.model import gate, registry, training


@dataclass(frozen=True)
class Settings:
    mode: str
    load_seconds: float
    load_connections: int
    fault: faults.FaultSettings
    schemathesis_examples: int
    cardinality_keys: int
    inventory: bool

    @property
    def short(self) -> bool:
        return self.mode == "short"


FULL = Settings(
    mode="full",
    load_seconds=30,
    load_connections=32,
    fault=faults.FaultSettings(
        rps=30,
        outage_ticks=5,
        reloads=5,
        # Every crash, each with a good version (promoted) and a bad one (rolled back).
        recovery=tuple((case, good) for case in recovery.CASES for good in (True, False)),
    ),
    schemathesis_examples=100,
    cardinality_keys=500,
    inventory=True,
)
SHORT = Settings(
    mode="short",
    load_seconds=8,
    load_connections=32,
    fault=faults.FaultSettings(
        rps=25,
        outage_ticks=3,
        reloads=3,
        # One crash, the one that restarts everything (about 40 s): a reboot in the middle of a bad
        # release, everything restored by `local up`, the resumed runner rolls it back on counters
        # that started over. tests/integration/test_canary_local.py runs the issue-16 sequence (runner
        # and router, good version promoted, the runner repairing a weight by itself); every other
        # crash, with a good and a bad version each, runs in `make reliability` only.
        recovery=(("reboot", False),),
    ),
    schemathesis_examples=10,
    cardinality_keys=500,
    inventory=True,
)


@dataclass(frozen=True)
class Models:
    """The versions the campaign serves: stable (baseline), the blessed candidate it releases, and a
    bad version (the `buggy` model, released with --force) that must be rolled back."""

    name: str
    baseline: str
    candidate: str
    bad: str | None = None

    @property
    def baseline_tag(self) -> str:
        return f"{self.name}:{self.baseline}"


def ensure_models(config: Config, progress: Callable[[str], None] = lambda _msg: None) -> Models:
    """The registered baseline and candidate (trained, registered and gated when missing)."""
    name = config.model.name
    found = {}
    for record in registry.list_models(name):  # oldest first: the newest of each variant wins
        found[record.labels.get("variant")] = record
    for variant in ("baseline", "candidate", "buggy"):
        if variant not in found:
            progress(f"training the {variant} model")
            trained = training.train(
                variant, seed=config.model.seed, test_size=config.model.test_size, name=name
            )
            found[variant], _ = registry.register(trained, name)
    if not found["baseline"].blessed:
        registry.save_gate(found["baseline"], gate.validate(found["baseline"], None, config.gate))
    if found["candidate"].gate is None:
        registry.save_gate(
            found["candidate"], gate.validate(found["candidate"], found["baseline"], config.gate)
        )
    return Models(
        name=name,
        baseline=found["baseline"].version,
        candidate=found["candidate"].version,
        bad=found["buggy"].version,
    )


def isolated_environment(config: Config, state: Path) -> LocalEnvironment:
    """A local environment on free ports whose state (and canary state) lives under ``state``.

    Selects ``state`` for this process (MLSHIP_STATE_DIR): the controller's state file and the release
    history of the campaign never mix with the project's own.
    """
    os.environ["MLSHIP_STATE_DIR"] = str(state)
    previous = LocalEnvironment(config)
    if previous.state_file.exists():
        previous.down()  # a campaign interrupted earlier: stop exactly what it had started
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    return LocalEnvironment(campaign_config(config.model_copy(update={"local": on_free_ports(config.local)})))


def campaign_config(config: Config) -> Config:
    """``config`` with two stable servers: the campaign kills one of them under traffic."""
    return config.model_copy(update={"local": config.local.model_copy(update={"stable_replicas": 2})})


def load_cases(env: LocalEnvironment, row: Mapping[str, object], settings: Settings) -> list[CaseResult]:
    expected = "every request answered 2xx: 0 5xx, 0 without an answer; throughput and p99 reported"
    seconds, connections = settings.load_seconds, settings.load_connections
    case = f"saturation through the proxy ({seconds:.0f}s, {connections} connections)"
    try:
        sat = saturation.saturate(
            env, row, seconds=settings.load_seconds, connections=settings.load_connections
        )
    except Exception as exc:
        return [errored("load", case, expected=expected, exc=exc)]
    run = sat.run
    answered_2xx = sum(n for code, n in run.status_counts.items() if 200 <= code < 300)
    others = {code: n for code, n in run.status_counts.items() if not 200 <= code < 300}
    lat = run.latency_ms
    observed = (
        f"{run.requests} requests, {run.rps:.1f} req/s, "
        f"p50 {lat.get('p50', 0):.0f} ms, p99 {lat.get('p99', 0):.0f} ms; "
        f"5xx {run.server_errors} (router counted {sat.router_5xx}); without answer {run.unanswered}"
        + (f"; other statuses {others}" if others else "")
    )
    mb = 2**20
    limit = saturation.MEMORY_GROWTH_LIMIT
    return [
        verdict(
            "load",
            case,
            expected=expected,
            observed=observed,
            ok=run.requests > 0
            and answered_2xx == run.requests
            and run.unanswered == 0
            and sat.router_5xx == 0,
            requests=run.requests,
            rps=run.rps,
            latency_ms=lat,
            status_counts={str(k): v for k, v in run.status_counts.items()},
            socket_errors=run.socket_errors,
        ),
        verdict(
            "load",
            "model server memory under saturation",
            expected=f"RSS of the server's processes after the run <= {limit} x after the warm-up",
            observed=(
                f"{sat.rss_before / mb:.0f} MiB -> {sat.rss_after / mb:.0f} MiB (x{sat.memory_ratio:.2f})"
            ),
            ok=sat.memory_ratio <= limit,
            rss_before=sat.rss_before,
            rss_after=sat.rss_after,
        ),
    ]


def run_campaign(
    env: LocalEnvironment,
    models: Models,
    settings: Settings,
    *,
    progress: Callable[[str], None] = lambda _msg: None,
) -> Report:
    """Every case in order (load first, on a quiet server; scans last). ``env`` must be up."""
    report = Report(mode=settings.mode)
    started = time.monotonic()
    rows = load.traffic_rows(seed=env.config.model.seed, test_size=env.config.model.test_size)
    row = rows[0]

    def area(name: str) -> Callable[[str], None]:
        return lambda msg: progress(f"[{name}] {msg}")

    stages: list[tuple[str, Callable[[], list[CaseResult]]]] = [
        ("load", lambda: load_cases(env, row, settings)),
        (
            "faults",
            lambda: faults.run_faults(
                env,
                env.config,
                models.candidate,
                rows,
                settings.fault,
                progress=area("faults"),
                baseline=models.baseline,
                bad=models.bad,
            ),
        ),
        (
            "api",
            lambda: api_input.run_api_cases(
                env,
                row,
                schemathesis_examples=settings.schemathesis_examples,
                cardinality_keys=settings.cardinality_keys,
                progress=area("api"),
            ),
        ),
        (
            "cli",
            lambda: cli_input.run_cli_cases(
                env, models.candidate, inventory=settings.inventory, progress=area("cli")
            ),
        ),
        ("scans", lambda: scans.run_scans(models.baseline_tag, short=settings.short, progress=area("scans"))),
    ]
    for name, stage in stages:
        t = time.monotonic()
        if name == "load":
            area(name)(f"saturating for {settings.load_seconds:.0f}s")
        report.results += stage()
        report.area_seconds[name] = round(time.monotonic() - t, 1)
    report.seconds = time.monotonic() - started
    return report


def console_progress(console: Console) -> Callable[[str], None]:
    started = time.monotonic()

    def show(message: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:6.1f}s[/] {escape(message)}", highlight=False)

    return show


__all__ = [
    "FULL",
    "SHORT",
    "Models",
    "Settings",
    "campaign_config",
    "ensure_models",
    "isolated_environment",
    "run_campaign",
]

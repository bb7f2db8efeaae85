"""`mlship demo` (`make demo`): the main job end to end on this machine.

Train and register the demo model and its release variants, validate them with the quality gate,
build the Bento, bring the local environment up (BentoML servers, HAProxy, Prometheus), keep
traffic flowing, release a good version (shadow phase, then canary steps, then promotion) and
three bad ones (feature code that raises, a much slower model, shifted predictions) that the
canary rolls back automatically, and print what happened.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from mlship import build
from mlship.canary.backends.local import local_controller
from mlship.canary.controller import Controller
from mlship.canary.report import write_report
from mlship.config import Config
from mlship.local import load
from mlship.local.environment import LocalEnvironment
from mlship.model import approval, gate, registry, training
from mlship.model.releases import Releases
from mlship.paths import state_dir
from mlship.progress import status

# (scenario, variant, shadow phase first, expected outcome) in release order.
SCENARIOS = (
    ("good version", "candidate", True, "promoted"),
    ("feature bug: raises for BMI >= 30", "buggy", False, "rolled_back"),
    ("much slower model", "slow", False, "rolled_back"),
    ("shifted predictions (corrupted labels)", "shifted", False, "rolled_back"),
)
DEMO_STEPS = [10, 25, 50, 100]
DEMO_RPS = 40.0


@dataclass
class Outcome:
    scenario: str
    expected: str
    version: str
    gate: str
    decision: str
    triggered_by: str
    canary_requests: float
    seconds: float
    user_5xx: int
    report: str


def _config_for_demo(config: Config) -> Config:
    canary = config.canary.model_copy(update={"steps": DEMO_STEPS})
    return config.model_copy(update={"canary": canary})


def train_all(config: Config, console: Console) -> dict[str, registry.ModelRecord]:
    records = {}
    for variant in training.VARIANTS:
        with status(f"training {variant}"):
            trained = training.train(
                variant, seed=config.model.seed, test_size=config.model.test_size, name=config.model.name
            )
            records[variant], created = registry.register(trained, config.model.name)
        m = records[variant].metadata["metrics"]
        console.print(
            f"  {variant:<10} {records[variant].tag}  RMSE {m['rmse']:.1f}  {'new' if created else 'cached'}"
        )
    return records


def validate_all(
    config: Config, records: dict[str, registry.ModelRecord], console: Console
) -> dict[str, bool]:
    baseline = records["baseline"]
    blessed = {}
    for variant, record in records.items():
        verdict = gate.validate(record, None if variant == "baseline" else baseline, config.gate)
        registry.save_gate(record, verdict)
        blessed[variant] = verdict["blessed"]
        failed = [c["name"] for c in verdict["checks"] if not c["passed"]]
        word = "[green]blessed[/]" if verdict["blessed"] else f"[red]vetoed[/] ({'; '.join(failed)})"
        console.print(f"  {variant:<10} {word}")
    return blessed


DEMO_REVIEWER = "demo-reviewer (stand-in for a second person)"


def review_all(records: dict[str, registry.ModelRecord], console: Console) -> None:
    """`canary start` needs each spec reviewed by someone other than its author (ML Test Score, Model 1).

    The demo has no second person: it records the reviews under a stand-in name and says so. A team
    runs `mlship model spec VERSION`, reads it, then `mlship model review VERSION --by NAME --spec-hash H`.
    """
    for record in records.values():
        approval.review(
            record,
            DEMO_REVIEWER,
            seen_hash=approval.spec_hash(record),
            note="recorded by `mlship demo`, not by a person",
            allow_uncommitted=True,
        )
    console.print(f"  specs of {len(records)} models reviewed by [bold]{DEMO_REVIEWER}[/]")


def reset_local(env: LocalEnvironment) -> None:
    """The demo starts from a clean local environment (its own state only)."""
    env.down()
    for path in (env.dir, state_dir() / "canary", Releases.path()):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def run_demo(config: Config, console: Console, *, containerize: bool = False) -> list[Outcome]:
    config = _config_for_demo(config)
    console.rule("1. train and register the model and its release variants")
    records = train_all(config, console)
    console.rule("2. quality gate (validated before serving) and spec review")
    blessed = validate_all(config, records, console)
    review_all(records, console)
    console.rule("3. build the Bento")
    result = build.build(
        records["baseline"].version, model_name=config.model.name, containerize_image=containerize
    )
    console.print(f"  bento {result.bento_tag}" + (f", image {result.image}" if result.image else ""))
    console.rule("4. local environment")
    env = LocalEnvironment(config)
    reset_local(env)
    env.up(records["baseline"].version)
    Releases.load().record(records["baseline"].version, "initial")
    console.print(f"  proxy {env.proxy_url}  Prometheus {env.prometheus_url}  logs {env.logs}")

    rows, targets = load.traffic_population(seed=config.model.seed, test_size=config.model.test_size)
    # The true targets of a share of answered requests come back as outcomes after a delay: online RMSE
    # per version (`mlship feedback report`, the Model and data dashboard) within minutes.
    sent_outcomes = load.Outcomes(
        targets=targets, share=config.feedback.outcome_share, delay_s=config.feedback.outcome_delay_s
    )
    stop = threading.Event()
    traffic = load.LoadReport(target=env.proxy_url, rps=DEMO_RPS, duration_s=24 * 3600)
    thread = threading.Thread(
        target=load.run_load,
        args=(env.proxy_url, rows),
        kwargs={
            "rps": DEMO_RPS,
            "duration_s": 24 * 3600,
            "stop": stop,
            "report": traffic,
            "outcomes": sent_outcomes if config.feedback.outcome_share > 0 else None,
        },
        daemon=True,
    )
    thread.start()
    console.print(
        f"  traffic: {DEMO_RPS:g} requests/s of patient rows through the proxy; the true outcome of "
        f"{config.feedback.outcome_share:.0%} of them goes to /feedback "
        f"{config.feedback.outcome_delay_s:g} s later"
    )
    time.sleep(5)

    controller = local_controller(config, env)
    outcomes = []
    try:
        for scenario, variant, shadow, expected in SCENARIOS:
            console.rule(f"5. release: {scenario}")
            outcome = release(
                controller, scenario, records[variant], blessed[variant], shadow, traffic, console
            )
            outcome.expected = expected
            outcomes.append(outcome)
    finally:
        stop.set()
        thread.join(timeout=30)
    print_summary(outcomes, traffic, env, console)
    summary = {"outcomes": [asdict(o) for o in outcomes], "traffic": traffic.to_dict()}
    path = state_dir() / "demo-summary.json"
    path.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    console.print(f"summary written to {path}")
    return outcomes


def release(
    controller: Controller,
    scenario: str,
    record: registry.ModelRecord,
    blessed: bool,
    shadow: bool,
    traffic: load.LoadReport,
    console: Console,
) -> Outcome:
    if not blessed:
        console.print(
            f"  the gate vetoed {record.version}; releasing it anyway (--force) to show the canary catch it"
        )
    errors_before = traffic.server_errors
    state = controller.start(record.version, shadow=shadow, force=not blessed)
    last: dict[str, Any] = {}

    def show(s: Any, verdict: Any) -> None:
        last["line"] = f"  {s.phase:<12} weight {s.weight:>3}%  {verdict.decision}: {verdict.reason[:140]}"
        if verdict.decision != "wait":
            console.print(last["line"])

    with status(f"canary {record.version}"):
        state = controller.run_until_done(show)
    _, page = write_report(state)
    evidence = state.last_verdict.evidence if state.last_verdict else {}
    return Outcome(
        scenario=scenario,
        expected="",
        version=record.version,
        gate="blessed" if blessed else "vetoed (forced)",
        decision=state.phase,
        triggered_by=", ".join(evidence.get("triggered_by", [])) or "-",
        canary_requests=float(evidence.get("canary_requests", 0.0)),
        seconds=round((state.finished_at or time.time()) - state.started_at, 1),
        user_5xx=traffic.server_errors - errors_before,
        report=str(page),
    )


def print_summary(
    outcomes: list[Outcome], traffic: load.LoadReport, env: LocalEnvironment, console: Console
) -> None:
    table = Table(title="mlship demo: releases", title_justify="left")
    for col in ("scenario", "gate", "decision", "signal", "canary requests", "seconds", "5xx seen by users"):
        table.add_column(
            col, justify="right" if col in ("canary requests", "seconds", "5xx seen by users") else "left"
        )
    for o in outcomes:
        color = "green" if o.decision == "promoted" else "red"
        table.add_row(
            o.scenario,
            o.gate,
            f"[{color}]{o.decision}[/]",
            o.triggered_by,
            f"{o.canary_requests:.0f}",
            f"{o.seconds:.0f}",
            str(o.user_5xx),
        )
    console.print(table)
    lat = traffic.latency_ms
    console.print(
        f"traffic: {traffic.sent} sent, {traffic.ok} ok, {traffic.client_errors} 4xx, "
        f"{traffic.server_errors} 5xx, {traffic.failed} failed; "
        f"p50 {lat.get('p50', '-')} ms, p99 {lat.get('p99', '-')} ms"
    )
    console.print(f"stable now: {Releases.load().stable}; Prometheus {env.prometheus_url}; logs {env.logs}")
    for o in outcomes:
        console.print(f"report ({o.scenario}): {Path(o.report)}")

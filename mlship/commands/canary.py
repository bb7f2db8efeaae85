"""`mlship canary ...`: release a new model version step by step, judged from Prometheus."""

from __future__ import annotations

import atexit
import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from mlship.canary.controller import Controller
from mlship.canary.judge import Verdict
from mlship.canary.report import write_report
from mlship.canary.state import RolloutState, StateStore
from mlship.config import Config, load_config
from mlship.errors import ConfigError, ExitCode, RefusedError
from mlship.promclient import Prometheus

app = typer.Typer(help="Canary releases: shadow, step, judge, promote or roll back.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)
# Reconciliations `canary status` lists (the state keeps more; `status --json` prints them all).
STATUS_RECONCILIATIONS = 10

EnvOption = Annotated[
    str | None,
    typer.Option("--env", help="`local` or a Pulumi stack (default: the running rollout's, else local)"),
]
PromOption = Annotated[
    str | None,
    typer.Option(
        help="Prometheus URL (default: the local environment's; for a stack, replica 0 of the cluster's "
        "Prometheus through `kubectl port-forward`)"
    ),
]
# Port-forwards opened for this process (the cluster's Prometheus), closed when it exits.
_FORWARDS = contextlib.ExitStack()
atexit.register(_FORWARDS.close)


def _parse_steps(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"--steps expects comma-separated percentages like 5,10,25,50,100, got {text!r}"
        ) from None


def build_controller(config: Config, env: str | None, prometheus_url: str | None) -> Controller:
    """The controller for ``env``: the local environment, or a Pulumi stack through the Automation API."""
    existing = StateStore().load()
    env = env or (existing.env if existing is not None and existing.active else "local")
    if env == "local":
        from mlship.canary.backends.local import local_controller
        from mlship.local.environment import LocalEnvironment

        return local_controller(config, LocalEnvironment(config), prometheus_url=prometheus_url)
    from mlship.canary.analysis import Analyzer, kubernetes_queries
    from mlship.canary.backends.kubernetes import AutomationWorkspace, KubernetesApi, KubernetesBackend
    from mlship.k8s.render import load_config as load_stack_config
    from mlship.paths import project_root

    program = project_root() / "pulumi"
    stack, _, _ = load_stack_config(env, program)
    if prometheus_url is None:
        prometheus_url = _cluster_prometheus(stack)
    prom = Prometheus(prometheus_url)
    # Weights and mirror go to the cluster's API (kubeconfig's current context, or in-cluster);
    # the Deployments' versions go to the stack config and a targeted `pulumi up`.
    backend = KubernetesBackend(
        AutomationWorkspace(env, program), KubernetesApi(), config.model.name, on_warning=err.print
    )
    queries = kubernetes_queries(config.model.name, stack.namespace)
    return Controller(config, backend, prom, env_name=env, analyzer=Analyzer(prom, queries))


def _cluster_prometheus(stack: Any) -> str:
    """Replica 0 of the stack's Prometheus through `kubectl port-forward` (kept open for this process)."""
    from mlship.k8s.components.monitoring import PROMETHEUS_PORT, prometheus_replica_service
    from mlship.k8s.portforward import port_forward

    if not stack.monitoring.enabled:
        raise RefusedError(
            "--prometheus-url is required: this stack installs no Prometheus "
            "(mlship:monitoring.enabled false)"
        )
    service = prometheus_replica_service(stack)
    url = _FORWARDS.enter_context(port_forward(stack.monitoring.namespace, service, PROMETHEUS_PORT))
    err.print(f"Prometheus: svc/{service} in {stack.monitoring.namespace} via kubectl port-forward ({url})")
    return url


@app.command()
def start(
    version: Annotated[str, typer.Argument(help="model version to release")],
    env: EnvOption = None,
    steps: Annotated[str | None, typer.Option(help="canary percentages, e.g. 5,10,25,50,100")] = None,
    shadow: Annotated[
        bool, typer.Option(help="mirror traffic to the candidate first (answers never served)")
    ] = False,
    force: Annotated[
        bool, typer.Option(help="release a model without the gate's blessing or a spec review (recorded)")
    ] = False,
    prometheus_url: PromOption = None,
) -> None:
    """Deploy VERSION as the canary at the first step (or in shadow). Refused changes nothing.

    VERSION must be blessed by the quality gate (`mlship model validate`) and its spec reviewed by someone
    other than its author (`mlship model review`); --force releases it anyway and records what it lacked.
    """
    config = load_config()
    controller = build_controller(config, env, prometheus_url)
    _check_plan(controller, version, _parse_steps(steps))
    state = controller.start(version, steps=_parse_steps(steps), shadow=shadow, force=force)
    _print_forced(state.forced)
    where = "shadow (mirrored traffic)" if state.phase == "shadow" else f"{state.weight}% of traffic"
    console.print(f"canary {state.canary_version} started: {where}; stable {state.stable_version}")


@app.command()
def status(
    as_json: Annotated[
        bool, typer.Option("--json", help="the RolloutState JSON (schema: docs/canary-status.md)")
    ] = False,
) -> None:
    """The current (or last) rollout: phase, versions, weight, step, last verdict with its evidence."""
    state = StateStore().load()
    if as_json:
        typer.echo(state.model_dump_json(indent=2) if state else json.dumps({"phase": "idle"}))
        return
    if state is None:
        console.print("no rollout yet")
        return
    console.print(_panel(state, None, history=STATUS_RECONCILIATIONS))


@app.command()
def analyze(
    env: EnvOption = None,
    prometheus_url: PromOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Judge the running canary now (no action taken)."""
    controller = build_controller(load_config(), env, prometheus_url)
    verdict = controller.analyze()
    if as_json:
        typer.echo(json.dumps(verdict.to_dict(), indent=2))
        return
    console.print(_verdict_table(verdict))
    console.print(f"[bold]{verdict.decision}[/]: {verdict.reason}")


ForceStable = Annotated[
    bool, typer.Option(help="serve a model the quality gate has not blessed as stable anyway (recorded)")
]


def _print_forced(forced: list[str]) -> None:
    for problem in forced:
        err.print(f"[yellow]forced (recorded):[/] {problem}")


@app.command()
def promote(env: EnvOption = None, prometheus_url: PromOption = None, force: ForceStable = False) -> None:
    """Make the canary the new stable version now (the previous one is kept for rollback --to previous).

    Refused for a model the quality gate has not blessed, unless --force (recorded in the release history).
    """
    controller = build_controller(load_config(), env, prometheus_url)
    state = controller.promote(force=force)
    _print_forced(state.forced)
    _finish(state)


@app.command()
def rollback(
    to: Annotated[
        str | None, typer.Option("--to", help="`previous`: serve the previous stable again")
    ] = None,
    env: EnvOption = None,
    prometheus_url: PromOption = None,
    force: ForceStable = False,
) -> None:
    """Send 0% to the canary at once and remove it; or, with --to previous, restore the previous stable
    (refused when the quality gate has not blessed it, unless --force, which is recorded)."""
    controller = build_controller(load_config(), env, prometheus_url)
    if to is not None:
        if to != "previous":
            raise typer.BadParameter("--to accepts only `previous`")
        version = controller.rollback_to_previous(force=force)
        console.print(f"stable is {version} again")
        return
    _finish(controller.rollback())


@app.command()
def run(
    version: Annotated[str, typer.Argument(help="model version to release")],
    env: EnvOption = None,
    steps: Annotated[str | None, typer.Option(help="canary percentages, e.g. 5,10,25,50,100")] = None,
    shadow: Annotated[bool, typer.Option(help="start with a shadow phase")] = False,
    force: Annotated[
        bool, typer.Option(help="release a model without the gate's blessing or a spec review (recorded)")
    ] = False,
    prometheus_url: PromOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the final state as JSON")] = False,
) -> None:
    """Start (or resume) a rollout and drive it until promoted, rolled back or expired, with a live view.

    Exit code 0 when promoted, 10 when rolled back (evidence against the canary), 11 when expired (a
    step ran out of time without evidence either way; the candidate was withdrawn).
    """
    config = load_config()
    controller = build_controller(config, env, prometheus_url)
    store = controller.store
    with store.runner_lock():
        state = store.load()
        if state is not None and state.active:
            if not state.canary_version.startswith(version.split(":")[-1]):
                raise RefusedError(
                    f"a rollout of {state.canary_version} is running; finish it before releasing {version}"
                )
            err.print(f"resuming rollout {state.rollout_id} ({state.phase}, weight {state.weight}%)")
        else:
            _check_plan(controller, version, _parse_steps(steps))
            state = controller.start(version, steps=_parse_steps(steps), shadow=shadow, force=force)
            _print_forced(state.forced)
        state = drive(controller, quiet=as_json)
    if as_json:
        png, page = write_report(state)
        err.print(f"report: {page} (plot {png})")
        typer.echo(state.model_dump_json(indent=2))
    else:
        _finish(state)
    if state.phase == "rolled_back":
        # A pipeline must not go on to the next environment after a rollback.
        raise typer.Exit(ExitCode.ROLLED_BACK)
    if state.phase == "expired":
        # Not a verdict against the canary, but not a release either: the pipeline stops too.
        raise typer.Exit(ExitCode.EXPIRED)


def drive(controller: Controller, *, quiet: bool = False) -> RolloutState:
    """Tick until the rollout ends, with a live view; Ctrl-C leaves it where it is (`run` resumes)."""
    state = controller.active()
    view = err if quiet else console
    try:
        with Live(_panel(state, None), console=view, refresh_per_second=4, transient=quiet) as live:
            return controller.run_until_done(lambda s, v: live.update(_panel(s, v)))
    except KeyboardInterrupt:
        state = controller.store.load() or state
        err.print(
            f"[yellow]interrupted[/]: the rollout stays at {state.weight}% "
            f"(`mlship canary run {state.canary_version}` resumes it)"
        )
        raise typer.Exit(ExitCode.INTERRUPTED) from None


def _finish(state: RolloutState) -> None:
    png, page = write_report(state)
    color = {"promoted": "green", "expired": "yellow"}.get(state.phase, "red")
    console.print(f"[bold {color}]{state.phase}[/] {state.canary_version}: {state.reason}")
    console.print(f"report: {page} (plot {png})")


def _verdict_table(verdict: Verdict) -> Table:
    table = Table(title="signals", title_justify="left")
    for col in ("signal", "ready", "rejected", "evidence"):
        table.add_column(col)
    signals: dict[str, Any] = verdict.evidence.get("signals", {})
    for name, ev in signals.items():
        keys = (
            "canary_rate",
            "stable_rate",
            "canary_estimate",
            "stable_estimate",
            "ratio_estimate",
            "psi",
            "share_beyond",
        )
        summary = ", ".join(f"{k}={_fmt(ev[k])}" for k in keys if ev.get(k) is not None)
        table.add_row(
            name, "yes" if ev.get("ready") else "no", "[red]YES[/]" if ev.get("rejected") else "no", summary
        )
    return table


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _panel(state: RolloutState, verdict: Verdict | None, *, history: int = 3) -> Panel:
    head = Table.grid(padding=(0, 2))
    step = "shadow" if state.step_index < 0 else f"{state.step_index + 1}/{len(state.steps)}"
    head.add_row("rollout", state.rollout_id, "phase", state.phase)
    head.add_row("stable", state.stable_version, "canary", state.canary_version)
    head.add_row("step", step, "weight", f"{state.weight}%")
    if state.paused:
        head.add_row("[bold yellow]paused[/]", state.paused)
    last = verdict.to_dict() if verdict else (state.last_verdict.model_dump() if state.last_verdict else None)
    parts: list[Any] = [head]
    if last:
        evidence = last.get("evidence", {})
        parts.append(
            f"canary samples this step: {evidence.get('step_canary_requests', 0):.0f}"
            f"/{evidence.get('required_samples', '?')}"
        )
        if verdict is not None:
            parts.append(_verdict_table(verdict))
        parts.append(f"[bold]{last['decision']}[/]: {last['reason']}")
    parts.append(_reconciliations(state, last=history))
    return Panel(Group(*parts), title="mlship canary", title_align="left")


def _reconciliations(state: RolloutState, *, last: int) -> Table | str:
    """The rollout's reconciliation history: when, what was found, what was done."""
    records = state.reconciliations[-last:]
    counts = ", ".join(f"{n} {result}" for result, n in sorted(state.routing_differences.items()))
    if not records:
        return "routing: no difference from the rollout found"
    table = Table(
        title=f"routing reconciliations ({counts or 'none'}; last {len(records)})", title_justify="left"
    )
    for col in ("when (UTC)", "by", "found", "done", "result"):
        table.add_column(col, overflow="fold")
    styles = {"repaired": "green", "failed": "red", "resumed": "cyan"}
    for r in records:
        when = datetime.fromtimestamp(r.at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(when, r.by, r.found, r.action, f"[{styles[r.result]}]{r.result}[/]")
    return table


@app.command()
def simulate(
    scenario: Annotated[
        str, typer.Option(help="aa (identical versions), errors, latency or shift (predictions)")
    ] = "aa",
    rps: Annotated[float, typer.Option(help="user requests per second (mean)")] = 50.0,
    runs: Annotated[int, typer.Option(min=1, help="rollouts to simulate")] = 20,
    seed: Annotated[int, typer.Option(help="first seed; run i uses seed + i")] = 0,
    stable_error_rate: Annotated[float, typer.Option(help="stable's error rate")] = 0.005,
    canary_error_rate: Annotated[
        float | None, typer.Option(help="canary's error rate (default: stable's; 0.05 for errors)")
    ] = None,
    latency_factor: Annotated[
        float, typer.Option(help="latency scenario: canary this many times slower")
    ] = 4.0,
    shift: Annotated[float, typer.Option(help="shift scenario: predictions moved by this many sd")] = 1.0,
    burst_error_rate: Annotated[
        float, typer.Option(help="extra error rate both versions share in bursts")
    ] = 0.0,
    burst_seconds: Annotated[float, typer.Option(help="length of each shared burst, seconds")] = 10.0,
    burst_period: Annotated[float, typer.Option(help="a shared burst every this many seconds")] = 120.0,
    diurnal_swing: Annotated[
        float, typer.Option(help="traffic swings by this share of --rps over an hour (0..1)")
    ] = 0.0,
    scrape_interval: Annotated[float, typer.Option(help="Prometheus scrape interval, seconds")] = 15.0,
    scrape_lag: Annotated[float, typer.Option(help="seconds before a scrape is visible to queries")] = 1.0,
    steps: Annotated[str | None, typer.Option(help="canary percentages, e.g. 10,25,50,100")] = None,
    config: Annotated[
        Path | None, typer.Option(help="the canary config from this file (default: ./mlship.yaml)")
    ] = None,
    max_seconds: Annotated[
        float, typer.Option(help="give up on a simulated rollout after this long")
    ] = 7200.0,
    as_json: Annotated[bool, typer.Option("--json", help="per-run endings and the medians and p90s")] = False,
) -> None:
    """What would rollouts do at this traffic? Simulated counters, scraped, through the real analysis.

    Traffic is simulated; everything after the scrape is production code: the Analyzer's raw
    counter differences and the judge. Nothing is deployed and no Prometheus is needed.
    """
    from mlship.canary import whatif

    cfg = load_config(config).canary
    try:
        sc = whatif.scenario(
            scenario,
            rps=rps,
            stable_error_rate=stable_error_rate,
            canary_error_rate=canary_error_rate,
            latency_factor=latency_factor,
            shift_sd=shift,
            steps=tuple(_parse_steps(steps) or ()) or None,
            burst_error_rate=burst_error_rate,
            burst_seconds=burst_seconds,
            burst_period=burst_period,
            diurnal_swing=diurnal_swing,
            max_seconds=max_seconds,
        )
        scraping = whatif.Scraping(scrape_interval, scrape_lag)
        if scrape_interval <= 0 or scrape_lag < 0:
            raise ValueError("--scrape-interval must be > 0 and --scrape-lag >= 0")
    except ValueError as exc:
        raise ConfigError(f"canary simulate: {exc}") from None
    done = [0]

    def progress(outcome: whatif.Outcome) -> None:
        done[0] += 1
        err.print(f"simulated {done[0]}/{runs} (seed {outcome.seed}: {outcome.ending})", end="\r")

    outcomes = whatif.run_many(sc, cfg, runs, seed, scraping, on_run=None if as_json else progress)
    if not as_json:
        err.print()
    result = {"scenario": sc.name, "rps": rps, "scrape_interval": scrape_interval, **whatif.summary(outcomes)}
    if as_json:
        typer.echo(json.dumps({**result, "per_run": [whatif.run_dict(o) for o in outcomes]}, indent=2))
        return
    table = Table(title=f"{runs} simulated rollouts: {sc.name}, {rps:g} req/s, scrape {scrape_interval:g}s")
    for col in ("ending", "runs", "total requests (median / p90)", "canary requests", "seconds"):
        table.add_column(col)
    for ending, n in result["endings"].items():
        if not n:
            continue
        row = result[ending]
        table.add_row(
            ending,
            str(n),
            *(
                f"{row[k]['median']:.0f} / {row[k]['p90']:.0f}"
                for k in ("total_requests", "canary_requests", "seconds")
            ),
        )
    console.print(table)


def _check_plan(controller: Controller, version: str, steps: list[int] | None) -> None:
    """Before anything changes: warn when today's traffic cannot bring a step to a decision in time."""
    from mlship.canary.plan import live_rps, make_plan
    from mlship.model import registry

    # An unknown version is refused first, with its one-line error: no plan for what cannot start.
    registry.resolve(controller.config.model.name, version)

    rps = live_rps(controller.prom, controller.analyzer.q)
    if rps is None or rps <= 0:  # nothing measured (no Prometheus, no traffic yet): start refuses or says
        return
    for warning in make_plan(controller.config.canary, rps, steps=steps).warnings:
        err.print(f"[yellow]plan:[/] {warning} (`mlship canary plan`)", soft_wrap=True)


@app.command()
def plan(
    rps: Annotated[
        float | None, typer.Option(help="user requests per second (default: measured over the last 10 min)")
    ] = None,
    steps: Annotated[str | None, typer.Option(help="canary percentages, e.g. 10,25,50,100")] = None,
    stable_error_rate: Annotated[
        float, typer.Option(help="stable's error rate, for the detection estimate")
    ] = 0.005,
    effect: Annotated[
        float, typer.Option(help="detect a canary with this many times stable's error rate")
    ] = 10.0,
    env: EnvOption = None,
    prometheus_url: PromOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """How long each step needs at today's traffic, and whether the config lets a rollout decide.

    Per judged step (weights below 100): the canary's request rate and the seconds to gather
    canary.min_samples, against canary.max_step_seconds; and the requests and seconds the errors test
    needs at the first step to roll back a canary with --effect times stable's error rate.
    """
    from mlship.canary.plan import live_rps, make_plan

    config = load_config()
    if rps is None:
        controller = build_controller(config, env, prometheus_url)
        measured = live_rps(controller.prom, controller.analyzer.q)
        if measured is None:
            raise RefusedError(
                f"Prometheus at {controller.prom.url} is unreachable: pass today's rate with --rps"
            )
        rps = measured
    try:
        result = make_plan(
            config.canary, rps, steps=_parse_steps(steps), stable_error_rate=stable_error_rate, effect=effect
        )
    except ValueError as exc:
        raise ConfigError(f"canary plan: {exc}") from None
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    table = Table(title=f"canary plan at {rps:.3g} req/s (max {config.canary.max_step_seconds:g}s a step)")
    for col in ("step", "canary req/s", f"seconds to {config.canary.min_samples} canary requests", "fits"):
        table.add_column(col)
    for s in result.steps:
        fits = "[red]no: expires[/]" if not s.fits else ("[yellow]at risk[/]" if s.at_risk else "yes")
        table.add_row(f"{s.weight}%", f"{s.canary_rps:.3g}", f"{s.seconds_to_samples:.0f}", fits)
    console.print(table)
    if result.seconds_to_promote is not None:
        console.print(f"a canary as good as stable: promoted after ~{result.seconds_to_promote:.0f}s")
    else:
        console.print(
            f"a canary as good as stable: expires at step {result.expires_at_weight}% after "
            f"~{result.expires_after_seconds or 0:.0f}s (rolled back, canary.max_step_seconds)",
            soft_wrap=True,
        )
    if result.detection_requests is not None and result.detection_expires:
        console.print(
            f"a canary with {effect:g}x stable's {100 * stable_error_rate:.3g}% errors: "
            f"its first step expires after {config.canary.max_step_seconds:g}s (rolled back by the expiry) "
            f"before the errors test has its ~{result.detection_requests:.0f} requests",
            soft_wrap=True,
        )
    elif result.detection_requests is not None:
        console.print(
            f"a canary with {effect:g}x stable's {100 * stable_error_rate:.3g}% errors: rolled back at the "
            f"first step after ~{result.detection_requests:.0f} requests "
            f"(~{result.detection_seconds or 0:.0f}s, "
            f"{result.detection_errors:.0f} errors), expected path",
            soft_wrap=True,
        )
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)

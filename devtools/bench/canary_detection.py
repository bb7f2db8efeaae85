"""Benchmark: how fast mlship's canary judge catches a bad model, and how often it rolls back a good one.

Runs the simulation harness (``mlship.canary.simulate``) for each scenario with mlship's judge and with a
Flagger-style rule (1-minute interval, 5 failed checks, error rate > 1 %, p99 latency > 1.5 x stable's
true p99) on the same kind of traffic, and reports them side by side: detection rate, total and canary
requests until rollback (median / p90), seconds until rollback, and the false-rollback rate of identical
versions (A/A) with its 95 % Clopper-Pearson interval.

Goals (issue 3): the 5 %-vs-0.5 % error canary at 10 % weight and 50 req/s is rolled back within
2,000 total requests (median and p90); <= 1 % false rollbacks over 200 A/A runs.

    python -m devtools.bench.canary_detection [--quick]

Writes ``<state_dir>/bench/canary_detection.json`` and ``canary_detection.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from scipy import stats as sps

from devtools.bench.flagger import FlaggerRule, run_flagger, run_oracle_sprt
from mlship.canary.simulate import (
    ModelBehaviour,
    Outcome,
    Scenario,
    lognormal_quantile,
    run_judge,
)
from mlship.config import CanaryConfig, load_config
from mlship.paths import state_dir

GOAL_REQUESTS = 2000
GOAL_FALSE_ROLLBACK = 0.01
STABLE = ModelBehaviour()


@dataclass(frozen=True)
class Case:
    key: str
    title: str
    scenario: Scenario
    runs: int
    bad: bool  # True: the canary is worse (a rollback is a detection); False: A/A (a rollback is false)


def cases(quick: bool) -> list[Case]:
    scale = 0.1 if quick else 1.0
    steps = (10, 25, 50, 100)

    def n(runs: int) -> int:
        return max(5, int(runs * scale))

    return [
        Case(
            "errors",
            "errors 5% vs 0.5%, 10% weight, 50 req/s",
            Scenario("errors", stable=STABLE, canary=ModelBehaviour(error_rate=0.05), steps=steps),
            n(200),
            True,
        ),
        Case(
            "aa",
            "A/A: identical versions, default steps",
            Scenario("aa", stable=STABLE, canary=STABLE),
            n(200),
            False,
        ),
        Case(
            "latency",
            "latency 4x slower (p99, limit 1.5x)",
            Scenario("latency", stable=STABLE, canary=ModelBehaviour(latency_median_s=0.16), steps=steps),
            n(100),
            True,
        ),
        Case(
            "predictions",
            "predictions shifted by 1 sd (PSI ~1)",
            Scenario("predictions", stable=STABLE, canary=ModelBehaviour(prediction_shift=50.0), steps=steps),
            n(100),
            True,
        ),
        Case(
            "shadow",
            "shadow: candidate disagrees on 40% of requests",
            Scenario("shadow", stable=STABLE, canary=ModelBehaviour(prediction_noise_sd=60.0), shadow=True),
            n(50),
            True,
        ),
    ]


def flagger_rule() -> FlaggerRule:
    """Flagger's built-in checks, tuned generously: the latency threshold knows stable's true p99."""
    return FlaggerRule(max_latency_s=1.5 * lognormal_quantile(STABLE, 0.99))


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    ci = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    return float(ci.low), float(ci.high)


def summarize(outcomes: Sequence[Outcome], bad: bool) -> dict[str, Any]:
    rolled = [o for o in outcomes if o.ending == "rolled_back"]
    k, n = len(rolled), len(outcomes)
    low, high = clopper_pearson(k, n)
    row: dict[str, Any] = {
        "runs": n,
        "rollbacks": k,
        "rollback_rate": k / n,
        "rollback_rate_ci95": [low, high],
        "promotions": sum(o.ending == "promoted" for o in outcomes),
        "expired": sum(o.ending == "expired" for o in outcomes),
        "timeouts": sum(o.ending == "timeout" for o in outcomes),
        "triggers": sorted({t for o in rolled for t in o.triggered_by}),
    }
    for label, values in (
        ("total_requests", [o.total_requests for o in rolled]),
        ("canary_requests", [o.canary_requests for o in rolled]),
        ("seconds", [o.seconds for o in rolled]),
    ):
        row[f"{label}_median"] = float(np.median(values)) if values else None
        row[f"{label}_p90"] = float(np.percentile(values, 90)) if values else None
    promoted = [o.seconds for o in outcomes if o.ending == "promoted"]
    row["seconds_to_promote_median"] = float(np.median(promoted)) if promoted else None
    if bad:
        row["rollback_total_requests"] = [o.total_requests for o in rolled]
    return row


def run_all(cfg: CanaryConfig, quick: bool, console: Console) -> dict[str, Any]:
    rule = flagger_rule()
    methods: dict[str, Callable[[Scenario, int], Outcome]] = {
        "mlship": lambda scenario, seed: run_judge(scenario, cfg, seed),
        "flagger": lambda scenario, seed: run_flagger(scenario, rule, seed, poll_seconds=cfg.poll_seconds),
    }
    todo = cases(quick)
    results: dict[str, Any] = {}
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("simulating rollouts", total=sum(c.runs for c in todo) * len(methods))
        for case in todo:
            results[case.key] = {"title": case.title, "bad": case.bad, "scenario": asdict(case.scenario)}
            for name, method in methods.items():
                started = time.process_time()
                outcomes = []
                for seed in range(case.runs):
                    outcomes.append(method(case.scenario, seed))
                    progress.advance(task)
                results[case.key][name] = {
                    **summarize(outcomes, case.bad),
                    "cpu_s": time.process_time() - started,
                }
    # The floor for the error signal: Wald's SPRT told the true rates (no real test can be).
    errors = next(c for c in todo if c.key == "errors")
    oracle = [run_oracle_sprt(errors.scenario, cfg, seed) for seed in range(errors.runs)]
    results["errors"]["oracle_sprt"] = summarize(oracle, True)
    return results


def goals(results: dict[str, Any]) -> dict[str, Any]:
    errors = results["errors"]["mlship"]
    aa = results["aa"]["mlship"]
    return {
        "detection_median_within_2000": errors["total_requests_median"] is not None
        and errors["total_requests_median"] <= GOAL_REQUESTS,
        "detection_p90_within_2000": errors["total_requests_p90"] is not None
        and errors["total_requests_p90"] <= GOAL_REQUESTS,
        "detection_rate": errors["rollback_rate"],
        "oracle_sprt_total_requests_median": results["errors"]["oracle_sprt"]["total_requests_median"],
        "oracle_sprt_total_requests_p90": results["errors"]["oracle_sprt"]["total_requests_p90"],
        "false_rollbacks_at_most_1pct": aa["rollback_rate"] <= GOAL_FALSE_ROLLBACK,
        "false_rollback_ci95_upper": aa["rollback_rate_ci95"][1],
    }


def _fmt(x: float | None, unit: str = "") -> str:
    return "-" if x is None else f"{x:,.0f}{unit}"


def print_table(results: dict[str, Any], console: Console) -> None:
    table = Table(title="Canary analysis: mlship judge vs Flagger-style rule (simulated)")
    for column in (
        "scenario",
        "method",
        "rollbacks",
        "95% CI",
        "total req. median / p90",
        "canary req. median",
        "seconds median / p90",
        "promoted after (median)",
        "vs Flagger",
    ):
        table.add_column(column, justify="left" if column in ("scenario", "method") else "right")
    for case in results.values():
        flagger_median = case["flagger"]["total_requests_median"]
        for method in [m for m in ("mlship", "flagger", "oracle_sprt") if m in case]:
            row = case[method]
            low, high = row["rollback_rate_ci95"]
            label = "false rollbacks" if not case["bad"] else "detected"
            median = row["total_requests_median"]
            ratio = ""
            if method == "mlship" and case["bad"] and median and flagger_median:
                ratio = f"{flagger_median / median:.1f}x fewer requests"
            elif method == "mlship" and case["bad"] and median and not flagger_median:
                ratio = "Flagger never detects"
            elif method == "oracle_sprt":
                ratio = "floor: knows true rates"
            table.add_row(
                case["title"] if method == "mlship" else "",
                method,
                f"{row['rollbacks']}/{row['runs']} {label}",
                f"{100 * low:.1f}-{100 * high:.1f}%",
                f"{_fmt(median)} / {_fmt(row['total_requests_p90'])}",
                _fmt(row["canary_requests_median"]),
                f"{_fmt(row['seconds_median'], 's')} / {_fmt(row['seconds_p90'], 's')}",
                _fmt(row["seconds_to_promote_median"], "s"),
                ratio,
            )
        table.add_section()
    console.print(table)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    ax = axes[0]
    for method, color in (("mlship", "tab:blue"), ("flagger", "tab:orange"), ("oracle_sprt", "tab:green")):
        values = np.sort(results["errors"][method].get("rollback_total_requests", []))
        if len(values):
            ax.step(
                values,
                np.arange(1, len(values) + 1) / results["errors"][method]["runs"],
                where="post",
                color=color,
                label=method,
            )
    ax.axvline(GOAL_REQUESTS, color="grey", linestyle="--", label=f"goal {GOAL_REQUESTS:,} requests")
    ax.set_xscale("log")
    ax.set_xlabel("total requests until rollback")
    ax.set_ylabel("share of runs rolled back")
    ax.set_title(results["errors"]["title"])
    ax.legend()

    bad = [k for k, c in results.items() if c["bad"]]
    x = np.arange(len(bad))
    ax = axes[1]
    for offset, (method, color) in zip(
        (-0.2, 0.2), (("mlship", "tab:blue"), ("flagger", "tab:orange")), strict=True
    ):
        medians = [results[k][method]["total_requests_median"] or np.nan for k in bad]
        rates = [results[k][method]["rollback_rate"] for k in bad]
        bars = ax.bar(x + offset, medians, width=0.4, color=color, label=method)
        for bar, rate, median in zip(bars, rates, medians, strict=True):
            centre = bar.get_x() + bar.get_width() / 2
            if np.isfinite(median):
                ax.annotate(f"{100 * rate:.0f}%", (centre, median), ha="center", va="bottom", fontsize=8)
            else:  # never rolled back: say so at the foot of the axis
                ax.text(
                    centre,
                    0.02,
                    f"{method}:\nnever",
                    transform=ax.get_xaxis_transform(),
                    ha="center",
                    fontsize=8,
                )
    ax.set_yscale("log")
    ax.set_xticks(x, [results[k]["scenario"]["name"] for k in bad])
    ax.set_ylabel("median total requests until rollback (label: detection rate)")
    ax.set_title("bad canaries")
    ax.legend()

    ax = axes[2]
    for i, (method, color) in enumerate((("mlship", "tab:blue"), ("flagger", "tab:orange"))):
        row = results["aa"][method]
        low, high = row["rollback_rate_ci95"]
        rate = row["rollback_rate"]
        ax.bar(i, 100 * rate, color=color)
        ax.errorbar(
            i, 100 * rate, yerr=[[100 * (rate - low)], [100 * (high - rate)]], color="black", capsize=6
        )
    ax.axhline(100 * GOAL_FALSE_ROLLBACK, color="grey", linestyle="--", label="goal <= 1%")
    ax.set_xticks([0, 1], ["mlship", "flagger"])
    ax.set_ylabel("false rollbacks, % of A/A runs (95% Clopper-Pearson)")
    ax.set_title(f"A/A over {results['aa']['mlship']['runs']} runs")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the runs (smoke test)")
    args = parser.parse_args(argv)
    config = load_config()
    console = Console() if Console().is_terminal else Console(width=190)
    started = time.process_time()
    results = run_all(config.canary, args.quick, Console(stderr=True))
    report = {
        "canary_config": config.canary.model_dump(),
        "flagger_rule": asdict(flagger_rule()),
        "quick": args.quick,
        "results": results,
        "goals": goals(results),
        "cpu_seconds": time.process_time() - started,
    }
    print_table(results, console)
    out = state_dir() / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "canary_detection.json").write_text(json.dumps(report, indent=2) + os.linesep, encoding="utf-8")
    plot(results, out / "canary_detection.png")
    g = report["goals"]

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    console.print(
        f"goals: detection median <= {GOAL_REQUESTS:,}: {verdict(g['detection_median_within_2000'])}; "
        f"p90 <= {GOAL_REQUESTS:,}: {verdict(g['detection_p90_within_2000'])}; "
        f"A/A false rollbacks <= 1%: {verdict(g['false_rollbacks_at_most_1pct'])} "
        f"(95% upper bound {100 * g['false_rollback_ci95_upper']:.1f}%)"
    )
    console.print(f"wrote {out}/canary_detection.json and .png ({report['cpu_seconds']:.0f}s CPU)")
    return report


if __name__ == "__main__":
    main()

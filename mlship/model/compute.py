"""Computing performance has not regressed (ML Test Score, Monitor 6): the model compute benchmark.

Measures, in one run on one machine, the serving cost of models trained by the current code: single-row
prediction latency (p50, p99, through the same feature code as the server), batch throughput and the
memory one prediction call allocates. Models are timed in interleaved rounds, so load from other
processes hits them alike. Every figure is a ratio against the ``baseline`` recipe measured
in the same run, so a noisy or slower machine shifts both sides alike; the goal is <= ``LIMIT`` (the
canary's latency ratio limit). A slow leak across commits shows against the stored baseline
(``model_compute.baseline.json``): the baseline recipe's latency in units of a fixed NumPy workload
measured in the same run, compared with the first recorded value.

    python -m mlship.model.compute [--quick] [--rebaseline]

Writes ``<state_dir>/bench/model_compute.json`` and ``model_compute.png``.
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlship.model import data, features

LIMIT = 1.5
BENCH_FILE = "model_compute.json"
BASELINE_FILE = "model_compute.baseline.json"
PLOT_FILE = "model_compute.png"


@dataclass(frozen=True)
class Figures:
    p50_us: float  # single-row prediction latency
    p99_us: float
    batch_rows_per_s: float  # throughput on a batch of held-out rows
    alloc_bytes: int  # peak memory allocated by one single-row prediction call


def _timed(fn: Callable[[], Any], repeats: int) -> np.ndarray:
    out = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - start
    return out


def measure(
    models: dict[str, tuple[Any, str]],
    rows: pd.DataFrame,
    *,
    repeats: int = 200,
    every: dict[str, int] | None = None,
) -> dict[str, Figures]:
    """Serving cost of each ``name -> (estimator, feature version)`` on ``rows`` (raw feature columns).

    Models are timed in interleaved rounds (A, B, C, A, B, C, ...), so load from other processes that
    comes and goes hits every model alike; ``every[name] = k`` times a model only every k-th round.
    """
    every = every or {}
    one = rows.iloc[[0]]

    def single(name: str) -> Callable[[], Any]:
        estimator, version = models[name]
        return lambda: estimator.predict(features.transform(one, version))

    def batch(name: str) -> Callable[[], Any]:
        estimator, version = models[name]
        return lambda: estimator.predict(features.transform(rows, version))

    singles: dict[str, list[float]] = {name: [] for name in models}
    batches: dict[str, list[float]] = {name: [] for name in models}
    for name in models:
        single(name)()  # warm caches
    for i in range(repeats):
        for name in models:
            if i % every.get(name, 1) == 0:
                singles[name].append(float(_timed(single(name), 1)[0]))
                if i % (20 * every.get(name, 1)) == 0:
                    batches[name].append(float(_timed(batch(name), 1)[0]))
    out = {}
    for name in models:
        tracemalloc.start()
        try:
            single(name)()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        out[name] = Figures(
            p50_us=round(float(np.median(singles[name])) * 1e6, 2),
            p99_us=round(float(np.quantile(singles[name], 0.99)) * 1e6, 2),
            batch_rows_per_s=round(len(rows) / float(np.median(batches[name])), 1),
            alloc_bytes=int(peak),
        )
    return out


def reference_us(repeats: int = 200) -> float:
    """Median time of a fixed NumPy workload: the machine's speed, for comparisons across runs."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((64, 64))
    return round(float(np.median(_timed(lambda: np.linalg.inv(a @ a.T + np.eye(64)), repeats))) * 1e6, 2)


def ratios(current: Figures, reference: Figures) -> dict[str, float]:
    """Cost ratios against ``reference`` (> 1 means ``current`` costs more)."""
    return {
        "p50": round(current.p50_us / reference.p50_us, 3),
        "p99": round(current.p99_us / reference.p99_us, 3),
        "throughput": round(reference.batch_rows_per_s / current.batch_rows_per_s, 3),
        "alloc": round(current.alloc_bytes / max(reference.alloc_bytes, 1), 3),
    }


def regressions(cost_ratios: dict[str, float], limit: float = LIMIT) -> list[str]:
    """The ratios over ``limit``, described."""
    return [f"{name} {value:.2f}x > {limit}x" for name, value in cost_ratios.items() if value > limit]


def compare_with_stored(normalised: float, baseline_file: Path, *, rebaseline: bool) -> dict[str, Any]:
    """Slow-leak check: the baseline recipe's normalised latency against the first one recorded."""
    if rebaseline or not baseline_file.exists():
        baseline_file.parent.mkdir(parents=True, exist_ok=True)
        record = {"normalised_p50": normalised, "at": datetime.now(UTC).isoformat(timespec="seconds")}
        baseline_file.write_text(json.dumps(record, indent=2), encoding="utf-8")
        return {"stored": record, "ratio": 1.0, "recorded_now": True, "passed": True}
    stored = json.loads(baseline_file.read_text(encoding="utf-8"))
    ratio = round(normalised / float(stored["normalised_p50"]), 3)
    return {"stored": stored, "ratio": ratio, "recorded_now": False, "passed": ratio <= LIMIT}


def run(state: Path, *, quick: bool, rebaseline: bool) -> dict[str, Any]:
    from rich.console import Console
    from rich.table import Table

    from mlship.model import training
    from mlship.paths import project_root
    from mlship.progress import status
    from mlship.score import artifacts

    console = Console(width=110)
    rows = data.split(data.load_frame(), seed=42, test_size=0.2).x_test
    repeats = 100 if quick else 600
    models = {}
    for variant in ("baseline", "candidate", "slow"):
        with status(f"training {variant}"):
            trained = training.train(variant, seed=42, test_size=0.2, name="bench")
        models[variant] = (trained.estimator, trained.metadata["feature_version"])
    with status("measuring (interleaved rounds)"):
        # The slow forest takes ~100 ms per row: timed every 10th round keeps the run short.
        figures = measure(models, rows, repeats=repeats, every={"slow": 10})
    machine = reference_us(repeats)
    cost = {v: ratios(f, figures["baseline"]) for v, f in figures.items() if v != "baseline"}
    stored = compare_with_stored(
        round(figures["baseline"].p50_us / machine, 4), state / BASELINE_FILE, rebaseline=rebaseline
    )
    # The envelope `mlship score` checks: name, time, commit, clean tree (docs/score.md).
    result = {
        **artifacts.bench_fields(BENCH_FILE.removesuffix(".json"), project_root()),
        "quick": quick,
        "limit": LIMIT,
        "reference_workload_us": machine,
        "figures": {v: asdict(f) for v, f in figures.items()},
        "ratios_vs_baseline": cost,
        "candidate_regressions": regressions(cost["candidate"]),
        # Self-check: a benchmark that cannot see the 500-tree forest would prove nothing.
        "detects_slow_model": bool(regressions(cost["slow"])),
        "against_stored_baseline": stored,
    }
    result["passed"] = bool(
        not result["candidate_regressions"] and result["detects_slow_model"] and stored["passed"]
    )
    state.mkdir(parents=True, exist_ok=True)
    (state / BENCH_FILE).write_text(json.dumps(result, indent=2), encoding="utf-8")
    _plot(cost, state / PLOT_FILE)
    table = Table(title="model compute cost vs baseline (same run)", title_justify="left")
    for col in ("model", "p50 µs", "p99 µs", "rows/s", "alloc B", "p50 x", "p99 x", "rows/s x", "alloc x"):
        table.add_column(col, no_wrap=True)
    for variant, f in figures.items():
        r = cost.get(variant, {"p50": 1.0, "p99": 1.0, "throughput": 1.0, "alloc": 1.0})
        table.add_row(
            variant,
            f"{f.p50_us:.0f}",
            f"{f.p99_us:.0f}",
            f"{f.batch_rows_per_s:.0f}",
            str(f.alloc_bytes),
            *(f"{r[k]:.2f}x" for k in ("p50", "p99", "throughput", "alloc")),
        )
    console.print(table)
    console.print(
        f"against the stored baseline: {stored['ratio']:.2f}x"
        + (" (recorded now)" if stored["recorded_now"] else "")
        + f"; goal <= {LIMIT}x; {'PASS' if result['passed'] else 'FAIL'}"
    )
    return result


def _plot(cost: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = ["p50", "p99", "throughput", "alloc"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / len(cost)
    for i, (variant, r) in enumerate(cost.items()):
        ax.bar(np.arange(len(metrics)) + i * width, [r[m] for m in metrics], width, label=variant)
    ax.axhline(LIMIT, color="red", linestyle="--", label=f"limit {LIMIT}x")
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(metrics)) + width * (len(cost) - 1) / 2, metrics)
    ax.set_ylabel("cost vs baseline (x, log)")
    ax.set_title("Model compute cost against the baseline recipe, same run")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from mlship.paths import state_dir

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--rebaseline", action="store_true", help="store this run as the new baseline")
    args = parser.parse_args(argv)
    result = run(state_dir() / "bench", quick=args.quick, rebaseline=args.rebaseline)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

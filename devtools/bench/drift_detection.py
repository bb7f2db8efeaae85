"""Benchmark: how well and how fast mlship's drift checks detect a shifted input population.

On the real diabetes data (scikit-learn's bundled set, unscaled), with the training split's decile
bins as the reference exactly as the model servers export them:

1. Power: detection rate of each decision rule against the size of a BMI shift (in training
   standard deviations) and the number of served values: PSI > drift.psi_threshold alone,
   chi-square alone, KS alone (p < drift.p_value), the FeatureDrift alert (PSI and chi-square and
   5 expected per bin) and `mlship drift`'s verdict (PSI and KS). Shift 0 gives the false-alarm
   rate: the reference is itself a sample of 353 patients, so significance alone alarms on
   sampling noise once traffic is large. Served values are a smoothed bootstrap of all 442
   patients (Silverman bandwidth), clipped to the valid range as `mlship load --shift` does.
2. Time to detection: a steady stream of r values per second, unshifted for a full window, then
   shifted; per minute, the 1-hour window of bin counts is what the recording rules see. Reports
   the minutes until the alert condition first holds (the expression crosses its threshold) and
   until the alert fires (15 more minutes).
3. ``--live``: the same measurement on the running local environment: `mlship load --shift` sends
   the shifted population through the proxy and Prometheus is polled until the FeatureDrift
   expression returns the shifted feature (and, with --until-firing, until the alert fires).

Figures are ratios against the PSI-alone rule measured in the same run (minimum shift detected in
80% of trials at each sample size).

    python -m devtools.bench.drift_detection [--quick] [--trials N]
    python -m devtools.bench.drift_detection --live [--rps 20] [--shift bmi=6] [--history 60]

Writes ``<state_dir>/bench/drift_detection.json`` and ``drift_detection.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy import stats

from mlship.config import load_config
from mlship.model import data
from mlship.model.schema import NumericFeature, Schema
from mlship.monitoring import drift
from mlship.paths import state_dir

FEATURE = "bmi"
SHIFTS_SD = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 1.0)
SIZES = (50, 100, 200, 500, 1000, 2000, 5000, 20000)
RATES = (0.5, 2.0, 10.0, 50.0)  # served values per second
TIMING_SHIFTS_SD = (0.25, 0.5, 1.0, 1.5)
WINDOW_MIN = 60
FOR_MIN = 15
POWER_GOAL = 0.8
METHODS = ("psi", "chi2", "ks", "alert", "cli")
STYLES = ("o-", "s--", "^--", "D-", "x:")  # PSI, the alert and the CLI overlap: tell them apart
LABELS = {
    "psi": "PSI > limit",
    "chi2": "chi-square p < level",
    "ks": "KS p < level",
    "alert": "FeatureDrift alert (PSI and chi2)",
    "cli": "mlship drift (PSI and KS)",
}


class Population:
    """Smoothed bootstrap of one feature over all patients, with the training split's bins."""

    def __init__(self, feature: NumericFeature, values: np.ndarray, train_sd: float) -> None:
        self.feature = feature
        self.values = values
        self.sd = train_sd
        self.bandwidth = 1.06 * values.std() * len(values) ** -0.2  # Silverman
        self.reference = np.asarray(feature.reference_share, dtype=float)

    def sample(self, rng: np.random.Generator, size: tuple[int, ...], shift_sd: float) -> np.ndarray:
        picked = rng.choice(self.values, size=size) + rng.normal(0.0, self.bandwidth, size=size)
        return np.clip(picked + shift_sd * self.sd, self.feature.minimum, self.feature.maximum)

    def counts(self, rng: np.random.Generator, trials: int, n: int, shift_sd: float) -> np.ndarray:
        """(trials, bins) served counts in the reference bins."""
        bins = np.searchsorted(self.feature.bin_edges, self.sample(rng, (trials, n), shift_sd), side="left")
        k = len(self.reference)
        return np.stack([np.bincount(row, minlength=k) for row in bins]).astype(float)

    def bin_probabilities(
        self, rng: np.random.Generator, shift_sd: float, draws: int = 2_000_000
    ) -> np.ndarray:
        k = len(self.reference)
        bins = np.searchsorted(self.feature.bin_edges, self.sample(rng, (draws,), shift_sd), side="left")
        return np.bincount(bins, minlength=k) / draws


def load_population() -> Population:
    frame = data.load_frame()
    split = data.split(frame, seed=42, test_size=0.2)
    schema = Schema.derive(split.train, dataset=data.DATASET_NAME, data_hash=data.data_hash(frame))
    feature = schema.feature(FEATURE)
    assert isinstance(feature, NumericFeature)
    return Population(feature, frame[FEATURE].to_numpy(dtype=float), float(split.train[FEATURE].std()))


# --- the decision rules, vectorised over trials (rows of counts) ------------------------------


def statistics(counts: np.ndarray, reference: np.ndarray, *, with_ks: bool = True) -> dict[str, np.ndarray]:
    n = counts.sum(axis=1)
    share = counts / n[:, None]
    s = np.clip(share, drift.EPSILON, None)
    r = np.clip(reference, drift.EPSILON, None)
    psi = np.sum((s - r) * np.log(s / r), axis=1)
    chi2 = n * np.sum((share - reference) ** 2 / r, axis=1)
    ks = np.max(np.abs(np.cumsum(share, axis=1) - np.cumsum(reference))[:, :-1], axis=1)
    df = len(reference) - 1
    return {
        "n": n,
        "psi": psi,
        "chi2": chi2,
        "chi2_p": stats.chi2.sf(chi2, df),
        "ks": ks,
        "ks_p": np.array([drift.ks_p_value(d, m) for d, m in zip(ks, n, strict=True)]) if with_ks else None,
        "enough": n * reference.min() >= drift.MIN_EXPECTED,
    }


def decisions(st: dict[str, np.ndarray], psi_limit: float, level: float) -> dict[str, np.ndarray]:
    big = st["psi"] > psi_limit
    return {
        "psi": big,
        "chi2": st["chi2_p"] < level,
        "ks": st["ks_p"] < level,
        "alert": big & (st["chi2_p"] < level) & st["enough"],
        "cli": big & (st["ks_p"] < level) & st["enough"],
    }


def check_against_drift_module(population: Population, rng: np.random.Generator) -> None:
    """The vectorised rules compute what mlship.monitoring.drift (and the PromQL rules) compute."""
    counts = population.counts(rng, 3, 400, 0.4)
    st = statistics(counts, population.reference)
    for i, row in enumerate(counts):
        assert np.isclose(st["psi"][i], drift.psi_vs_reference(row, population.reference))
        assert np.isclose(st["chi2"][i], drift.chi_square(row, population.reference).statistic)
        assert np.isclose(st["ks_p"][i], drift.ks_vs_reference(row, population.reference).p_value)


# --- 1. power -----------------------------------------------------------------------------------


def power(population: Population, trials: int, psi_limit: float, level: float, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    rates: dict[str, list[list[float]]] = {m: [] for m in METHODS}
    for shift in SHIFTS_SD:
        row: dict[str, list[float]] = {m: [] for m in METHODS}
        for n in SIZES:
            st = statistics(population.counts(rng, trials, n, shift), population.reference)
            for method, hit in decisions(st, psi_limit, level).items():
                row[method].append(float(hit.mean()))
        for method in METHODS:
            rates[method].append(row[method])
    return {"shifts_sd": list(SHIFTS_SD), "sizes": list(SIZES), "trials": trials, "detection_rate": rates}


def min_detectable(result: dict[str, Any], method: str) -> list[float | None]:
    """Smallest shift (in SD) detected in >= 80% of trials, per sample size (None: none of them)."""
    table = np.array(result["detection_rate"][method])  # (shifts, sizes)
    found: list[float | None] = []
    for j in range(len(result["sizes"])):
        hits = [s for i, s in enumerate(result["shifts_sd"]) if s > 0 and table[i, j] >= POWER_GOAL]
        found.append(min(hits) if hits else None)
    return found


# --- 2. time to detection -------------------------------------------------------------------------


def time_to_detection(
    population: Population,
    trials: int,
    psi_limit: float,
    level: float,
    seed: int,
    history_min: int = WINDOW_MIN,
) -> dict[str, Any]:
    """Minutes after the shift until the alert condition holds, ``history_min`` minutes of unshifted
    traffic before it (the environment's age at the shift; at most the window)."""
    rng = np.random.default_rng(seed)
    reference = population.reference
    critical = stats.chi2.isf(level, len(reference) - 1)
    before = population.bin_probabilities(rng, 0.0)
    horizon = 2 * WINDOW_MIN
    results: dict[str, dict[str, list[float | None]]] = {}
    for shift in TIMING_SHIFTS_SD:
        after = population.bin_probabilities(rng, shift)
        for rate in RATES:
            per_minute = rate * 60
            crossing: list[float | None] = []
            for _ in range(trials):
                minutes = np.vstack(
                    [
                        np.zeros(
                            (WINDOW_MIN - history_min, len(reference))
                        ),  # before the environment started
                        rng.multinomial(rng.poisson(per_minute), before, size=history_min),
                        rng.multinomial(rng.poisson(per_minute), after, size=horizon),
                    ]
                ).astype(float)
                window = np.cumsum(minutes, axis=0)
                window = window[WINDOW_MIN:] - window[:-WINDOW_MIN]  # counts over the last hour, each minute
                st = statistics(np.maximum(window, 0), reference, with_ks=False)
                ok = (st["psi"] > psi_limit) & (st["chi2"] > critical) & st["enough"]
                first = int(np.argmax(ok)) + 1 if ok.any() else None
                crossing.append(first)
            results[f"{shift}@{rate}"] = {"crossing_min": crossing}
    summary = {}
    for key, value in results.items():
        known = [c for c in value["crossing_min"] if c is not None]
        summary[key] = {
            "shift_sd": float(key.split("@")[0]),
            "rate_per_s": float(key.split("@")[1]),
            "detected_share": len(known) / len(value["crossing_min"]),
            "crossing_median_min": float(np.median(known)) if known else None,
            "crossing_p90_min": float(np.percentile(known, 90)) if known else None,
            "firing_median_min": float(np.median(known)) + FOR_MIN if known else None,
        }
    return {
        "trials": trials,
        "window_min": WINDOW_MIN,
        "history_min": history_min,
        "for_min": FOR_MIN,
        "horizon_min": horizon,
        "cases": summary,
    }


# --- 3. live ---------------------------------------------------------------------------------------


def live(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """Shifted traffic through `mlship load` into the running local environment; poll Prometheus."""
    from mlship.monitoring import live as live_check
    from mlship.promclient import Prometheus

    config = load_config()
    url = args.prometheus_url or f"http://127.0.0.1:{config.local.prometheus_port}"
    prometheus = Prometheus(url)
    feature = args.shift.split("=", 1)[0]
    expr = next(e.expr for e in live_check.rule_expressions() if e.source == "alert FeatureDrift")
    firing = f'ALERTS{{alertname="FeatureDrift", alertstate="firing", feature="{feature}"}}'
    psi = f'mlship:feature_psi:1h{{feature="{feature}"}}'
    mlship = str(Path(sys.executable).parent / "mlship")

    def load(duration: float, *extra: str) -> subprocess.Popen:
        argv = [mlship, "load", "--rps", str(args.rps), "--duration", str(duration), *extra]
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    warmup = 60 * args.history
    if warmup > 0:
        console.print(f"history: {warmup} s of unshifted traffic at {args.rps} rps")
        load(warmup).wait()
    console.print(f"shifted traffic: --shift {args.shift} at {args.rps} rps; polling {url}")
    started = time.monotonic()
    shifted = load(args.timeout, "--shift", args.shift)
    crossed_s = fired_s = None
    trace = []
    try:
        while time.monotonic() - started < args.timeout:
            elapsed = time.monotonic() - started
            values = {s.labels.get("role", ""): s.value for s in prometheus.query(psi)}
            trace.append({"t_s": round(elapsed, 1), "psi": values})
            if crossed_s is None and any(s.labels.get("feature") == feature for s in prometheus.query(expr)):
                crossed_s = elapsed
                console.print(f"FeatureDrift expression holds for {feature} after {elapsed:.0f} s")
                if not args.until_firing:
                    break
            if crossed_s is not None and prometheus.query(firing):
                fired_s = elapsed
                console.print(f"FeatureDrift fires after {elapsed:.0f} s")
                break
            time.sleep(5)
    finally:
        shifted.terminate()
        shifted.wait(timeout=10)
        prometheus.close()
    return {
        "prometheus_url": url,
        "rps": args.rps,
        "shift": args.shift,
        "history_min": args.history,
        "crossing_s": crossed_s,
        "firing_s": fired_s,
        "psi_trace": trace,
    }


# --- report ----------------------------------------------------------------------------------------


def print_power(result: dict[str, Any], console: Console) -> None:
    sizes = result["sizes"]
    table = Table(title="false alarms: detection rate with no shift (reference = 353 training patients)")
    table.add_column("rule")
    for n in sizes:
        table.add_column(f"n={n}", justify="right")
    for method in METHODS:
        table.add_row(LABELS[method], *(f"{100 * r:.0f}%" for r in result["detection_rate"][method][0]))
    console.print(table)
    baseline = min_detectable(result, "psi")
    table = Table(
        title=f"smallest {FEATURE} shift (training SD) detected in >= {POWER_GOAL:.0%} of trials, "
        "and its ratio to PSI alone"
    )
    table.add_column("rule")
    for n in sizes:
        table.add_column(f"n={n}", justify="right")
    for method in METHODS:
        cells = []
        for base, found in zip(baseline, min_detectable(result, method), strict=True):
            if found is None:
                cells.append("-")
            elif base is None:
                cells.append(f"{found:g}")
            else:
                cells.append(f"{found:g} ({found / base:.2f}x)")
        table.add_row(LABELS[method], *cells)
    console.print(table)


def print_timing(result: dict[str, Any], console: Console) -> None:
    table = Table(
        title=f"minutes from the shift until the FeatureDrift condition holds (fires {FOR_MIN} min later); "
        f"1 h window, {result['history_min']} min of unshifted traffic before"
    )
    table.add_column("shift (SD)")
    for rate in RATES:
        table.add_column(f"{rate:g} values/s", justify="right")
    for shift in TIMING_SHIFTS_SD:
        cells = []
        for rate in RATES:
            case = result["cases"][f"{shift}@{rate}"]
            if case["crossing_median_min"] is None:
                cells.append("not within 2 h")
            else:
                cells.append(
                    f"{case['crossing_median_min']:.0f} (p90 {case['crossing_p90_min']:.0f})"
                    + ("" if case["detected_share"] == 1 else f" {case['detected_share']:.0%}")
                )
        table.add_row(f"{shift:g}", *cells)
    console.print(table)


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pw, timing = report["power"], report["timing"]
    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    sizes = pw["sizes"]
    for ax, n in zip(axes[:2], (200, 5000), strict=True):
        j = sizes.index(n)
        for method, style in zip(METHODS, STYLES, strict=True):
            rates = [row[j] for row in pw["detection_rate"][method]]
            ax.plot(pw["shifts_sd"], rates, style, label=LABELS[method], alpha=0.85)
        ax.axhline(POWER_GOAL, color="grey", linestyle=":")
        ax.set_xlabel(f"{FEATURE} shift, training standard deviations")
        ax.set_ylabel("detection rate")
        ax.set_title(f"{n} served values")
        ax.set_ylim(-0.02, 1.02)
    axes[0].legend(fontsize=8)
    ax = axes[2]
    for shift in TIMING_SHIFTS_SD:
        medians = [timing["cases"][f"{shift}@{rate}"]["crossing_median_min"] for rate in RATES]
        ax.plot(
            RATES, [m if m is not None else np.nan for m in medians], marker="o", label=f"shift {shift:g} SD"
        )
    ax.set_xscale("log")
    ax.set_xlabel("served values per second")
    ax.set_ylabel("minutes until the alert condition holds (median)")
    ax.set_title("time to detection (1 h window, +15 min to fire; missing: never)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials (smoke test)")
    parser.add_argument("--trials", type=int, default=None, help="trials per cell (default 300, quick 40)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--live", action="store_true", help="measure on the running local environment")
    parser.add_argument("--rps", type=float, default=20.0, help="live: requests per second")
    parser.add_argument("--shift", default="bmi=6", help="live: FEATURE=DELTA for mlship load --shift")
    parser.add_argument(
        "--history",
        type=int,
        default=WINDOW_MIN,
        help="minutes of unshifted traffic before the shift (<= 60)",
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="live: give up after this many seconds")
    parser.add_argument("--until-firing", action="store_true", help="live: wait for the alert to fire")
    parser.add_argument("--prometheus-url", default=None, help="live: default the local environment's")
    args = parser.parse_args(argv)
    config = load_config()
    console = Console() if Console().is_terminal else Console(width=170)
    out = state_dir() / "bench"
    out.mkdir(parents=True, exist_ok=True)
    if not 0 <= args.history <= WINDOW_MIN:
        parser.error(f"--history must be between 0 and {WINDOW_MIN} minutes")
    if args.live:
        report = live(args, Console(stderr=True))
        (out / "drift_detection_live.json").write_text(
            json.dumps(report, indent=2) + os.linesep, encoding="utf-8"
        )
        console.print(f"wrote {out}/drift_detection_live.json")
        return report
    trials = args.trials or (40 if args.quick else 300)
    psi_limit, level = config.drift.psi_threshold, config.drift.p_value
    started = time.process_time()
    population = load_population()
    check_against_drift_module(population, np.random.default_rng(args.seed))
    progress: Callable[[str], None] = lambda what: Console(stderr=True).print(f"... {what}")  # noqa: E731
    progress(f"power: {len(SHIFTS_SD)} shifts x {len(SIZES)} sample sizes x {trials} trials")
    pw = power(population, trials, psi_limit, level, args.seed)
    timing_trials = max(20, trials // 5)
    progress(
        f"time to detection: {len(TIMING_SHIFTS_SD)} shifts x {len(RATES)} rates x {timing_trials} trials"
    )
    timing = time_to_detection(population, timing_trials, psi_limit, level, args.seed + 1, args.history)
    report = {
        "feature": FEATURE,
        "feature_sd": population.sd,
        "psi_threshold": psi_limit,
        "p_value": level,
        "power": pw,
        "min_detectable_shift_sd": {m: min_detectable(pw, m) for m in METHODS},
        "timing": timing,
        "cpu_seconds": time.process_time() - started,
    }
    print_power(pw, console)
    print_timing(timing, console)
    (out / "drift_detection.json").write_text(json.dumps(report, indent=2) + os.linesep, encoding="utf-8")
    plot(report, out / "drift_detection.png")
    console.print(
        f"{FEATURE}: 1 training SD = {population.sd:.2f} kg/m2 (bmi=6 is {6 / population.sd:.2f} SD); "
        f"wrote {out}/drift_detection.json and .png ({report['cpu_seconds']:.0f}s CPU)"
    )
    return report


if __name__ == "__main__":
    main()

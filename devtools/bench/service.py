"""Benchmark: the model API's throughput and latency, as ratios against baselines measured in the same run.

Saturates (wrk, closed loop, 1 thread: the machine has 2 cores) the same model behind:
  - bare: a pure ASGI app under uvicorn with uvloop/httptools (devtools/bench/bare_app.py): the same
    validation, numpy row, feature code and estimator, no monitoring: the fastest honest server;
  - floor: that same app mounted in a default BentoML service (devtools/bench/floor_service.py): what
    BentoML itself costs;
  - mlship direct: the local environment's model server (bento/service.py), every monitoring feature on;
  - mlship via haproxy: the same server through the local environment's router;
  - /predict_batch with 32 rows per request on bare and mlship (rows per second).
Rounds are interleaved (every target once per round, the order rotating) and each ratio is the median of
its per-round ratios, so a machine shared with other work moves both sides of a ratio together.
Then a 60 s saturated run on mlship direct samples every server's memory (RSS of its process tree), and
py-spy records a flame graph of one saturated mlship worker.

    python -m devtools.bench.service [--quick] [--rounds N] [--seconds S]

Writes ``<state_dir>/bench/service.json``, ``service.png`` and ``service-flame.svg``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
from rich.console import Console
from rich.table import Table

from mlship import names
from mlship.paths import project_root, state_dir, use_project_bentoml_home

MODEL_NAME = "diabetes-regressor"
BATCH_ROWS = 32
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}
# Goals of issue 13, as ratios against the bare app (or, where BentoML's own floor is below them,
# against the floor: >= 0.9x its throughput with a p99 no worse than its own).
GOALS = {"throughput": 0.67, "p50": 1.5, "p99": 2.0, "haproxy": 0.95, "floor_throughput": 0.9}


def wrk(url: str, body: str, *, seconds: int, connections: int) -> dict[str, float]:
    """POST ``body`` to ``url`` for ``seconds`` with wrk; requests/s, p50/p90/p99 (s), errors."""
    wrk_bin = shutil.which("wrk")
    if wrk_bin is None:
        raise SystemExit("wrk is not installed: run `make setup`")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {json.dumps(body)}\n"
        )
    try:
        out = subprocess.run(
            [wrk_bin, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name, url],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        ).stdout
    finally:
        Path(script.name).unlink()

    def latency(pct: str) -> float:
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        if m is None:
            raise RuntimeError(f"no {pct}% latency in wrk output:\n{out}")
        return float(m.group(1)) * _UNITS[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if rps is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    return {
        "rps": float(rps.group(1)),
        "requests": float(total.group(1)) if total else 0.0,
        "p50_s": latency("50"),
        "p90_s": latency("90"),
        "p99_s": latency("99"),
        "non_2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "socket_errors": float(sum(int(g) for g in errors.groups())) if errors else 0.0,
    }


def wait_ready(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.post(url, content=b"{}", timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


def model_call_seconds(record: Any, row: dict[str, Any], calls: int) -> float:
    """Median seconds of one in-process model call (numpy row + features + estimator) on one row."""
    from mlship.model import features
    from mlship.serving.runtime import ModelRuntime

    runtime = ModelRuntime.from_directory(
        record.path, name=record.name, version=record.version, metadata=record.metadata
    )
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        runtime.estimator.predict(
            features.transform_matrix(runtime.raw_matrix([row]), runtime.feature_version)
        )
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its children."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return total


def tree_rss(pid: int) -> int:
    """Resident memory (bytes) of a process and its children (a BentoML server is an arbiter + workers)."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def worker_pid(pid: int) -> int:
    """The BentoML worker (the process that serves requests) under a `bentoml serve` arbiter."""
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if "_bentoml_impl.worker" in " ".join(child.cmdline()):
                return child.pid
        except psutil.NoSuchProcess:
            continue
    return pid


class MemorySampler(threading.Thread):
    """RSS of each server's process tree every ``every`` seconds, while the saturated run goes on."""

    def __init__(self, pids: dict[str, int], every: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.pids, self.every = pids, every
        self.samples: dict[str, list[tuple[float, int]]] = {name: [] for name in pids}
        self._done = threading.Event()
        self._t0 = time.monotonic()

    def run(self) -> None:
        while not self._done.is_set():
            for name, pid in self.pids.items():
                self.samples[name].append((round(time.monotonic() - self._t0, 1), tree_rss(pid)))
            self._done.wait(self.every)

    def stop(self) -> None:
        self._done.set()
        self.join()


def flame_graph(pid: int, url: str, body: str, *, seconds: int, connections: int, path: Path) -> str:
    """py-spy's flame graph (SVG) of ``pid`` during a saturated run; the path, or why there is none."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        return "py-spy is not installed: run `make setup`"
    spy = subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(seconds),
            "--rate",
            "200",
            "--nonblocking",
            "--format",
            "flamegraph",
            "--output",
            str(path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wrk(url, body, seconds=seconds + 1, connections=connections)
    try:
        _, err = spy.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        spy.kill()
        return "py-spy did not finish"
    if spy.returncode != 0 or not path.exists():
        return f"py-spy failed: {err.strip().splitlines()[-1] if err.strip() else spy.returncode}"
    return str(path)


def median_ratio(rounds: list[dict[str, dict[str, float]]], num: str, den: str, key: str) -> float:
    """Median over rounds of num/den for ``key`` (paired: both measured in the same round)."""
    return statistics.median(r[num][key] / r[den][key] for r in rounds)


def plot(results: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [k for k in results if "batch" not in k]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.bar(labels, [results[k]["rps"] for k in labels], color="#4c72b0")
    ax1.set_ylabel("predictions per second")
    ax1.set_title("throughput (saturated, median of rounds)")
    x = np.arange(len(labels))
    ax2.bar(x - 0.2, [results[k]["p50_s"] * 1000 for k in labels], 0.4, label="p50", color="#55a868")
    ax2.bar(x + 0.2, [results[k]["p99_s"] * 1000 for k in labels], 0.4, label="p99", color="#dd8452")
    ax2.set_xticks(x, labels)
    ax2.set_ylabel("ms")
    ax2.set_title("latency per request")
    ax2.legend()
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=project_root())


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s, 10 s memory run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10, help="per target per round")
    parser.add_argument("--memory-seconds", type=int, default=60)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args(argv)
    rounds, seconds, memory_s = (1, 3, 10) if args.quick else (args.rounds, args.seconds, args.memory_seconds)
    flame_s = 5 if args.quick else 15
    console = Console()
    out_dir = state_dir() / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    use_project_bentoml_home()

    from mlship.config import Config, LocalConfig
    from mlship.local import load
    from mlship.local.environment import LocalEnvironment, on_free_ports
    from mlship.local.processes import free_ports
    from mlship.model import registry, training

    with console.status("training and registering the baseline model"):
        record, _ = registry.register(training.train("baseline", seed=42, name=MODEL_NAME), MODEL_NAME)
    rows = load.heldout_rows(seed=42, test_size=0.2)
    one = json.dumps(rows[0])
    batch = json.dumps({"instances": rows[:BATCH_ROWS]})

    work = Path(tempfile.mkdtemp(prefix="mlship-bench-"))
    os.environ["MLSHIP_STATE_DIR"] = str(work)  # the bench's own environment, never the user's
    config = Config(local=on_free_ports(LocalConfig()))
    env = LocalEnvironment(config)
    bare_port, floor_port, floor_tuned_port = free_ports(3)
    gc_log = work / "gc.log"
    gc_pauses: dict[str, dict[str, float]] = {}
    router_added_p50_ms = float("nan")
    child_env = {
        **os.environ,
        "MLSHIP_BENCH_MODEL_DIR": str(record.path),
        "BENTOML_DO_NOT_TRACK": "True",
        "MLSHIP_BENCH_GC_LOG": str(gc_log),
    }
    bare = _spawn(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "devtools.bench.bare_app:app",
            "--port",
            str(bare_port),
            "--no-access-log",
            "--loop",
            "auto",
            "--http",
            "auto",
        ],
        child_env,
        work / "bare.log",
    )
    floor = _spawn(
        [
            str(Path(sys.executable).with_name("bentoml")),
            "serve",
            "devtools.bench.floor_service:Floor",
            "--host",
            "127.0.0.1",
            "--port",
            str(floor_port),
        ],
        child_env,
        work / "floor.log",
    )
    floor_tuned = _spawn(
        [
            str(Path(sys.executable).with_name("bentoml")),
            "serve",
            "devtools.bench.floor_service:FloorTuned",
            "--host",
            "127.0.0.1",
            "--port",
            str(floor_tuned_port),
        ],
        child_env,
        work / "floor-tuned.log",
    )
    per_round: list[dict[str, dict[str, float]]] = []
    memory: dict[str, list[tuple[float, int]]] = {}
    flame = ""
    try:
        env.up(record.version, force=True)  # the bench measures speed, not the quality gate
        wait_ready(f"http://127.0.0.1:{bare_port}/predict")
        wait_ready(f"http://127.0.0.1:{floor_port}/predict")
        wait_ready(f"http://127.0.0.1:{floor_tuned_port}/predict")
        direct = env.server_url(names.ROLE_STABLE)
        targets = {
            "bare": (f"http://127.0.0.1:{bare_port}/predict", one, 1),
            "floor (bentoml)": (f"http://127.0.0.1:{floor_port}/predict", one, 1),
            "floor (bentoml, tuned)": (f"http://127.0.0.1:{floor_tuned_port}/predict", one, 1),
            "mlship direct": (f"{direct}/predict", one, 1),
            "mlship via haproxy": (f"{env.proxy_url}/predict", one, 1),
            f"bare batch x{BATCH_ROWS}": (f"http://127.0.0.1:{bare_port}/predict_batch", batch, BATCH_ROWS),
            f"mlship batch x{BATCH_ROWS}": (f"{direct}/predict_batch", batch, BATCH_ROWS),
        }
        for url, body, _ in targets.values():  # warm-up: first requests, connection pools
            wrk(url, body, seconds=1, connections=args.connections)
        order = list(targets)
        stable = env.running(names.ROLE_STABLE)
        mlship_pid = stable.pid if stable is not None else 0
        # Whose CPU a target's requests cost (the server's process tree): CPU time per request does
        # not depend on how much of the machine other work leaves to the server.
        server_pid = {
            "bare": bare.pid,
            "floor (bentoml)": floor.pid,
            "floor (bentoml, tuned)": floor_tuned.pid,
            "mlship direct": mlship_pid,
            "mlship via haproxy": mlship_pid,
            f"bare batch x{BATCH_ROWS}": bare.pid,
            f"mlship batch x{BATCH_ROWS}": mlship_pid,
        }
        for i in range(rounds):
            this_round: dict[str, dict[str, float]] = {}
            for name in order[i % len(order) :] + order[: i % len(order)]:
                url, body, rows_per_request = targets[name]
                cpu_before = tree_cpu_s(server_pid[name])
                with console.status(f"round {i + 1}/{rounds}: {name}, wrk {seconds} s"):
                    figures = wrk(url, body, seconds=seconds, connections=args.connections)
                cpu = tree_cpu_s(server_pid[name]) - cpu_before
                figures["server_cpu_ms_per_request"] = cpu * 1000 / max(figures["requests"], 1.0)
                figures["rows_per_s"] = figures["rps"] * rows_per_request
                this_round[name] = figures
            per_round.append(this_round)

        # What the router adds to one request, not queued behind 15 others: one connection, interleaved.
        router_ms = []
        for _ in range(rounds * 2):
            alone = wrk(targets["mlship direct"][0], one, seconds=2, connections=1)
            routed = wrk(targets["mlship via haproxy"][0], one, seconds=2, connections=1)
            router_ms.append((routed["p50_s"] - alone["p50_s"]) * 1000)
        router_added_p50_ms = statistics.median(router_ms)
        servers = {"bare": bare.pid, "floor (bentoml)": floor.pid, "floor (bentoml, tuned)": floor_tuned.pid}
        if stable is not None:
            servers["mlship"] = stable.pid
        sampler = MemorySampler(servers)
        sampler.start()
        with console.status(f"memory: mlship direct saturated for {memory_s} s"):
            wrk(targets["mlship direct"][0], one, seconds=memory_s, connections=args.connections)
        sampler.stop()
        memory = sampler.samples
        if stable is not None:
            with console.status(f"flame graph: py-spy on the mlship worker, {flame_s} s saturated"):
                flame = flame_graph(
                    worker_pid(stable.pid),
                    targets["mlship direct"][0],
                    one,
                    seconds=flame_s,
                    connections=args.connections,
                    path=out_dir / "service-flame.svg",
                )
        compute_s = model_call_seconds(record, rows[0], 300 if args.quick else 2000)
        gc_pauses = _gc_pauses(gc_log)
    finally:
        _stop(bare)
        _stop(floor)
        _stop(floor_tuned)
        env.down()
        shutil.rmtree(work, ignore_errors=True)

    out = report(
        per_round, memory, flame, compute_s, rounds=rounds, seconds=seconds, args=args, out_dir=out_dir
    )
    for service, pauses in gc_pauses.items():
        console.print(
            f"garbage collections >= 1 ms in {service}: {pauses['count']:.0f} "
            f"(gen 2: {pauses['gen2']:.0f}), longest {pauses['max_ms']:.1f} ms"
        )
    out["gc_pauses"] = gc_pauses
    out["summary"]["router_added_p50_ms_one_connection"] = router_added_p50_ms
    ok = router_added_p50_ms <= 0.5
    out["summary"]["goals"]["haproxy adds <= 0.5 ms at p50 (1 connection)"] = ok
    console.print(
        f"HAProxy adds {router_added_p50_ms:.2f} ms at p50 to a request alone (1 connection): "
        f"{'met' if ok else 'missed'} (<= 0.5 ms)"
    )
    (out_dir / "service.json").write_text(json.dumps(out, indent=2), encoding="utf-8")
    return out


def _gc_pauses(path: Path) -> dict[str, dict[str, float]]:
    """Per floor service: collections of 1 ms or more, how many were full (gen 2), the longest (ms)."""
    out: dict[str, dict[str, float]] = {}
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        service, generation, ms = line.split()
        entry = out.setdefault(service, {"count": 0.0, "gen2": 0.0, "max_ms": 0.0})
        entry["count"] += 1
        entry["gen2"] += generation == "2"
        entry["max_ms"] = max(entry["max_ms"], float(ms))
    return out


def report(
    per_round: list[dict[str, dict[str, float]]],
    memory: dict[str, list[tuple[float, int]]],
    flame: str,
    compute_s: float,
    *,
    rounds: int,
    seconds: int,
    args: argparse.Namespace,
    out_dir: Path,
) -> dict[str, Any]:
    console = Console()
    names_ = list(per_round[0])
    results = {n: {k: statistics.median(r[n][k] for r in per_round) for k in per_round[0][n]} for n in names_}
    title = f"model API, saturated: {rounds} interleaved rounds x {seconds} s, {args.connections} connections"
    table = Table(title=title + " (median of rounds)")
    for col in ("target", "requests/s", "rows/s", "p50 ms", "p90 ms", "p99 ms", "CPU ms/req", "errors"):
        table.add_column(col, justify="right" if col != "target" else "left")
    for name, r in results.items():
        table.add_row(
            name,
            f"{r['rps']:.0f}",
            f"{r['rows_per_s']:.0f}",
            f"{r['p50_s'] * 1000:.1f}",
            f"{r['p90_s'] * 1000:.1f}",
            f"{r['p99_s'] * 1000:.1f}",
            f"{r['server_cpu_ms_per_request']:.3f}",
            f"{sum(x[name]['non_2xx'] + x[name]['socket_errors'] for x in per_round):.0f}",
        )
    console.print(table)

    def ratio(num: str, den: str, key: str) -> float:
        return median_ratio(per_round, num, den, key)

    batch_key = f"mlship batch x{BATCH_ROWS}"
    summary: dict[str, Any] = {
        "mlship_vs_bare": {k: ratio("mlship direct", "bare", k) for k in ("rps", "p50_s", "p99_s")},
        "floor_vs_bare": {k: ratio("floor (bentoml)", "bare", k) for k in ("rps", "p50_s", "p99_s")},
        "mlship_vs_floor": {
            k: ratio("mlship direct", "floor (bentoml)", k) for k in ("rps", "p50_s", "p99_s")
        },
        "tuned_floor_vs_bare": {
            k: ratio("floor (bentoml, tuned)", "bare", k) for k in ("rps", "p50_s", "p99_s")
        },
        "mlship_vs_tuned_floor": {
            k: ratio("mlship direct", "floor (bentoml, tuned)", k) for k in ("rps", "p50_s", "p99_s")
        },
        # CPU time per request does not depend on the share of the machine other work leaves the server
        "cpu_per_request_vs_bare": {
            n: ratio(n, "bare", "server_cpu_ms_per_request")
            for n in ("floor (bentoml)", "floor (bentoml, tuned)", "mlship direct")
        },
        "haproxy_vs_direct": {
            k: ratio("mlship via haproxy", "mlship direct", k) for k in ("rps", "p50_s", "p99_s")
        },
        "haproxy_added_p50_ms": statistics.median(
            (r["mlship via haproxy"]["p50_s"] - r["mlship direct"]["p50_s"]) * 1000 for r in per_round
        ),
        "batch_rows_per_s": results[batch_key]["rows_per_s"],
        "batch_vs_bare_batch_rows_per_s": ratio(batch_key, f"bare batch x{BATCH_ROWS}", "rows_per_s"),
        "batch_vs_single_rows_per_s": ratio(batch_key, "mlship direct", "rows_per_s"),
        "model_call_ms": compute_s * 1000,
        "model_call_share_of_request_cpu": compute_s * results["mlship direct"]["rps"],
    }
    mem = {}
    for name, samples in memory.items():
        if samples:
            values = [v for _, v in samples]
            mem[name] = {
                "start_mib": values[0] / 2**20,
                "end_mib": values[-1] / 2**20,
                "max_mib": max(values) / 2**20,
                "growth_mib": (values[-1] - values[0]) / 2**20,
            }
    summary["memory"] = mem
    m, f, h = summary["mlship_vs_bare"], summary["mlship_vs_floor"], summary["haproxy_vs_direct"]
    floor = summary["floor_vs_bare"]
    t, cpu = summary["mlship_vs_tuned_floor"], summary["cpu_per_request_vs_bare"]
    goals = {
        "throughput >= 0.67x bare": m["rps"] >= GOALS["throughput"],
        "p50 <= 1.5x bare": m["p50_s"] <= GOALS["p50"],
        "p99 <= 2x bare": m["p99_s"] <= GOALS["p99"],
        "haproxy >= 0.95x direct": h["rps"] >= GOALS["haproxy"],
        "haproxy adds <= 0.5 ms at p50 (saturated)": summary["haproxy_added_p50_ms"] <= 0.5,
        "floor-bound: >= 0.9x floor throughput": f["rps"] >= GOALS["floor_throughput"],
        "floor-bound: p99 <= floor p99": f["p99_s"] <= 1.0,
        "tuned floor-bound: >= 0.9x tuned floor throughput": t["rps"] >= GOALS["floor_throughput"],
        "tuned floor-bound: p99 <= tuned floor p99": t["p99_s"] <= 1.0,
        "BentoML's floor itself reaches 0.67x bare": floor["rps"] >= GOALS["throughput"],
    }
    summary["goals"] = goals
    console.print(
        f"mlship / bare: {m['rps']:.2f}x throughput, {m['p50_s']:.2f}x p50, {m['p99_s']:.2f}x p99.  "
        f"BentoML floor / bare: {floor['rps']:.2f}x, {floor['p50_s']:.2f}x, {floor['p99_s']:.2f}x.  "
        f"mlship / floor: {f['rps']:.2f}x, {f['p50_s']:.2f}x, {f['p99_s']:.2f}x.  "
        f"mlship / tuned floor: {t['rps']:.2f}x, {t['p50_s']:.2f}x, {t['p99_s']:.2f}x.\n"
        "Server CPU per request / bare: " + ", ".join(f"{n} {v:.2f}x" for n, v in cpu.items()) + ".\n"
        f"HAProxy / direct: {h['rps']:.2f}x throughput, "
        f"adds {summary['haproxy_added_p50_ms']:.2f} ms at p50.  "
        f"Batch of {BATCH_ROWS}: {summary['batch_rows_per_s']:.0f} rows/s "
        f"({summary['batch_vs_bare_batch_rows_per_s']:.2f}x bare's batch).\n"
        f"Model call alone: {summary['model_call_ms']:.2f} ms, about "
        f"{summary['model_call_share_of_request_cpu']:.0%} of mlship's saturated time."
    )
    for name, mm in mem.items():
        console.print(
            f"memory {name}: {mm['start_mib']:.0f} -> {mm['end_mib']:.0f} MiB over the saturated run "
            f"(max {mm['max_mib']:.0f}, growth {mm['growth_mib']:+.1f} MiB)"
        )
    for goal, ok in goals.items():
        console.print(f"  {'met   ' if ok else 'missed'} {goal}")
    console.print(f"flame graph: {flame}")
    out = {
        "seconds": seconds,
        "rounds": rounds,
        "connections": args.connections,
        "load_average": os.getloadavg(),
        "results": results,
        "per_round": per_round,
        "summary": summary,
        "memory_samples": memory,
        "flame_graph": flame,
    }
    (out_dir / "service.json").write_text(json.dumps(out, indent=2), encoding="utf-8")
    plot(results, out_dir / "service.png")
    console.print(f"wrote {out_dir / 'service.json'} and service.png")
    return out


if __name__ == "__main__":
    main()

"""Benchmark: the model API's throughput and latency, against baselines measured in the same run.

Saturates (wrk, closed loop) the same model behind:
  - a bare Starlette app (devtools/bench/bare_app.py): same validation, features and estimator, no BentoML;
  - the BentoML server of the local environment, directly;
  - the same server through HAProxy (the local environment's canary router);
  - /predict_batch with 32 rows per request (rows per second).
It also times the model call alone (features + estimator, in process) to show which share of a request
is model compute: that share bounds what adaptive batching of the model call could save.

    python -m devtools.bench.service [--quick]

Writes ``<state_dir>/bench/service.json`` and ``service.png``. Figures are ratios against the bare app.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from mlship.paths import state_dir, use_project_bentoml_home

MODEL_NAME = "diabetes-regressor"
BATCH_ROWS = 32
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def wrk(url: str, body: str, *, seconds: int, connections: int) -> dict[str, float]:
    """POST ``body`` to ``url`` for ``seconds`` with wrk; requests/s, p50/p99 (s), non-2xx count."""
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
            [wrk_bin, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name, url],
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
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if rps is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    return {
        "rps": float(rps.group(1)),
        "p50_s": latency("50"),
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
    """Median seconds of one in-process model call (frame + features + estimator) on one row."""
    from mlship.serving.runtime import ModelRuntime

    runtime = ModelRuntime.from_directory(
        record.path, name=record.name, version=record.version, metadata=record.metadata
    )
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        runtime.predict(runtime.frame([row]))
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def plot(results: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(results)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.bar(labels, [results[k]["rows_per_s"] for k in labels], color="#4c72b0")
    ax1.set_ylabel("predictions per second")
    ax1.set_title("throughput (saturated)")
    ax2.bar(labels, [results[k]["p99_s"] * 1000 for k in labels], color="#dd8452")
    ax2.set_ylabel("ms")
    ax2.set_title("p99 latency per request")
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 s per target instead of 20 s")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args(argv)
    seconds = 5 if args.quick else 20
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
    bare_port = free_ports(1)[0]
    bare = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "devtools.bench.bare_app:app",
            "--port",
            str(bare_port),
            "--no-access-log",
        ],
        env={**os.environ, "MLSHIP_BENCH_MODEL_DIR": str(record.path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results: dict[str, dict[str, float]] = {}
    try:
        env.up(record.version)
        wait_ready(f"http://127.0.0.1:{bare_port}/predict")
        targets = {
            "bare starlette": (f"http://127.0.0.1:{bare_port}/predict", one, 1),
            "bentoml direct": (f"{env.server_url('stable')}/predict", one, 1),
            "bentoml via haproxy": (f"{env.proxy_url}/predict", one, 1),
            f"bentoml batch x{BATCH_ROWS}": (f"{env.server_url('stable')}/predict_batch", batch, BATCH_ROWS),
        }
        for name, (url, body, rows_per_request) in targets.items():
            with console.status(f"{name}: wrk {seconds} s, {args.connections} connections"):
                figures = wrk(url, body, seconds=seconds, connections=args.connections)
            figures["rows_per_s"] = figures["rps"] * rows_per_request
            results[name] = figures
        compute_s = model_call_seconds(record, rows[0], 300 if args.quick else 2000)
    finally:
        bare.terminate()
        bare.wait(timeout=15)
        env.down()
        shutil.rmtree(work, ignore_errors=True)

    base = results["bare starlette"]
    direct = results["bentoml direct"]
    table = Table(title=f"model API, saturated ({seconds} s per target, {args.connections} connections)")
    for col in ("target", "predictions/s", "p50 ms", "p99 ms", "non-2xx", "rows/s vs bare"):
        table.add_column(col, justify="right" if col != "target" else "left")
    for name, r in results.items():
        table.add_row(
            name,
            f"{r['rows_per_s']:.0f}",
            f"{r['p50_s'] * 1000:.1f}",
            f"{r['p99_s'] * 1000:.1f}",
            f"{r['non_2xx'] + r['socket_errors']:.0f}",
            f"{r['rows_per_s'] / base['rows_per_s']:.2f}x",
        )
    console.print(table)
    direct_request_s = 1.0 / direct["rps"] * min(args.connections, 2)  # 2 cores busy at saturation
    summary = {
        "bentoml_vs_bare_throughput": direct["rps"] / base["rps"],
        "haproxy_vs_direct_throughput": results["bentoml via haproxy"]["rps"] / direct["rps"],
        "haproxy_vs_direct_p99": results["bentoml via haproxy"]["p99_s"] / direct["p99_s"],
        "batch_vs_single_rows_per_s": results[f"bentoml batch x{BATCH_ROWS}"]["rows_per_s"]
        / direct["rows_per_s"],
        "model_call_ms": compute_s * 1000,
        "model_call_share_of_request_cpu": compute_s / direct_request_s,
    }
    console.print(
        f"BentoML / bare Starlette throughput: {summary['bentoml_vs_bare_throughput']:.2f}x; "
        f"through HAProxy / direct: {summary['haproxy_vs_direct_throughput']:.2f}x throughput, "
        f"{summary['haproxy_vs_direct_p99']:.2f}x p99; batch of {BATCH_ROWS} / single: "
        f"{summary['batch_vs_single_rows_per_s']:.1f}x predictions/s.\n"
        f"Model call alone: {summary['model_call_ms']:.2f} ms, about "
        f"{summary['model_call_share_of_request_cpu']:.0%} of a request's CPU time: adaptive batching of the "
        "model call could save at most that share; clients that can batch should use /predict_batch."
    )
    report = {"seconds": seconds, "connections": args.connections, "results": results, "summary": summary}
    (out_dir / "service.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    plot(results, out_dir / "service.png")
    console.print(f"wrote {out_dir / 'service.json'} and service.png")
    return report


if __name__ == "__main__":
    main()

"""Benchmark: outcome ingestion throughput of the feedback store and of POST /feedback.

1. Store (mlship/feedback/store.py), one process: outcomes joined and stored per second, one outcome per
   transaction and 1000 per transaction, against the same rows inserted into a bare SQLite table in the
   same file mode (WAL, synchronous NORMAL): the floor any SQLite store pays. And the recorder's
   ``on_prediction`` hook cost on the request thread (microseconds per call), the queue's write rate.
2. HTTP, a real model server (`bentoml serve` of bento/service.py, one worker, on a free port): outcomes
   per second through POST /feedback, one per request and 100 per request, at 16 concurrent clients,
   against POST /predict's rate on the same server in the same run (the ratio is the target: taking an
   outcome must not cost more than serving a prediction).

    python -m devtools.bench.feedback [--quick]

Writes ``<state_dir>/bench/feedback_ingestion.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from mlship.feedback.recorder import PredictionRecorder
from mlship.feedback.store import FeedbackStore, Outcome, PredictionRow
from mlship.paths import project_root, state_dir, use_project_bentoml_home
from mlship.score import artifacts

MODEL_NAME = "diabetes-regressor"
BENCH = "feedback_ingestion"
# Targets: HTTP outcomes (one per request) at least half the prediction rate of the same server; the
# store's single-outcome join at least a tenth of a bare insert (it reads the prediction, checks for a
# duplicate and commits per outcome).
MIN_HTTP_RATIO = 0.5
MIN_STORE_RATIO = 0.1
CONCURRENCY = 16


def _bare_insert_rate(path: Path, n: int) -> float:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("CREATE TABLE bare (request_id TEXT, idx INTEGER, outcome REAL, at REAL)")
    started = time.perf_counter()
    for i in range(n):
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO bare VALUES (?, 0, 1.0, ?)", (f"b{i}", time.time()))
        db.execute("COMMIT")
    rate = n / (time.perf_counter() - started)
    db.close()
    return rate


def store_bench(work: Path, n: int) -> dict[str, Any]:
    store = FeedbackStore(work / "store.db")
    now = time.time()
    store.record_predictions(PredictionRow(f"r{i}", 0, "v1", "stable", 100.0, now) for i in range(2 * n))
    started = time.perf_counter()
    for i in range(n):
        store.add_outcomes([Outcome(f"r{i}", 0, 90.0)])
    single = n / (time.perf_counter() - started)
    batch = [Outcome(f"r{i}", 0, 90.0) for i in range(n, 2 * n)]
    started = time.perf_counter()
    for k in range(0, n, 1000):
        store.add_outcomes(batch[k : k + 1000])
    batched = n / (time.perf_counter() - started)
    bare = _bare_insert_rate(work / "bare.db", n)

    recorder = PredictionRecorder(FeedbackStore(work / "recorder.db"), capacity=10 * n)
    calls = []
    started = time.perf_counter()
    for i in range(n):
        t = time.perf_counter_ns()
        recorder(f"h{i}", "v1", "stable", [{}], [100.0])
        calls.append(time.perf_counter_ns() - t)
    recorder.flush(60)
    written = n / (time.perf_counter() - started)
    calls.sort()
    return {
        "outcomes": n,
        "single_per_s": round(single, 1),
        "batch_1000_per_s": round(batched, 1),
        "bare_insert_per_s": round(bare, 1),
        "single_vs_bare": round(single / bare, 3),
        "hook_us_p50": round(calls[len(calls) // 2] / 1000, 2),
        "hook_us_p99": round(calls[int(len(calls) * 0.99)] / 1000, 2),
        "recorder_predictions_per_s": round(written, 1),
        "recorder_dropped": recorder.dropped,
    }


async def _rate(url: str, bodies: list[bytes], per_body: int) -> tuple[float, int]:
    """Items per second posting ``bodies`` at CONCURRENCY, and the number of non-2xx answers."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    bad = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal bad
        while not queue.empty():
            body = queue.get_nowait()
            response = await client.post(url, content=body, headers={"content-type": "application/json"})
            bad += response.status_code >= 300

    async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
        return len(bodies) * per_body / (time.perf_counter() - started), bad


def http_bench(work: Path, n: int, console: Console) -> dict[str, Any]:
    from mlship.local import load
    from mlship.local.processes import free_ports
    from mlship.model import registry, training

    with console.status("training and registering the baseline model"):
        record, _ = registry.register(training.train("baseline", seed=42, name=MODEL_NAME), MODEL_NAME)
    row = load.heldout_rows(seed=42, test_size=0.2)[0]
    (port,) = free_ports(1)
    env = {
        **os.environ,
        "PYTHONPATH": f"{project_root()}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "MLSHIP_MODEL_TAG": record.tag,
        "MLSHIP_ROLE": "stable",
        "MLSHIP_FEEDBACK_DB": str(work / "server.db"),
    }
    argv = [str(Path(sys.executable).with_name("bentoml")), "serve", "service:ModelService"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--working-dir", str(project_root() / "bento")]
    log = (work / "server.log").open("wb")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=1, trust_env=False).status_code == 200:
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"model server did not start; see {work / 'server.log'}")
            time.sleep(0.5)
        # Predictions with known ids (the store holds them before outcomes arrive).
        ids = [f"bench-{i}" for i in range(2 * n)]
        with httpx.Client(timeout=30, trust_env=False) as client:
            started = time.perf_counter()
            for rid in ids:
                client.post(f"{url}/predict", json=row, headers={"x-request-id": rid})
            sequential_predict = len(ids) / (time.perf_counter() - started)
        predict_rate, predict_bad = asyncio.run(_rate(f"{url}/predict", [json.dumps(row).encode()] * n, 1))
        time.sleep(1)
        singles = [json.dumps({"request_id": r, "outcome": 1.0}).encode() for r in ids[:n]]
        single_rate, single_bad = asyncio.run(_rate(f"{url}/feedback", singles, 1))
        batches = [
            json.dumps([{"request_id": r, "outcome": 1.0} for r in ids[k : k + 100]]).encode()
            for k in range(n, 2 * n, 100)
        ]
        batch_rate, batch_bad = asyncio.run(_rate(f"{url}/feedback", batches, 100))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        log.close()
    stored = FeedbackStore(work / "server.db").counts()
    return {
        "outcomes": n,
        "concurrency": CONCURRENCY,
        "predict_per_s": round(predict_rate, 1),
        "predict_sequential_per_s": round(sequential_predict, 1),
        "feedback_single_per_s": round(single_rate, 1),
        "feedback_batch_100_per_s": round(batch_rate, 1),
        "single_vs_predict": round(single_rate / predict_rate, 3),
        "non_2xx": predict_bad + single_bad + batch_bad,
        "stored_outcomes": stored[1],
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke-test sizes")
    args = parser.parse_args(argv)
    n = 500 if args.quick else 3000
    console = Console()
    out_dir = state_dir() / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    use_project_bentoml_home()
    work = Path(tempfile.mkdtemp(prefix="mlship-bench-feedback-"))
    store = store_bench(work, n)
    http = http_bench(work, n, console)
    passed = (
        http["single_vs_predict"] >= MIN_HTTP_RATIO
        and store["single_vs_bare"] >= MIN_STORE_RATIO
        and http["non_2xx"] == 0
        and http["stored_outcomes"] == 2 * n
        and store["recorder_dropped"] == 0
    )
    report = {
        **artifacts.bench_fields(BENCH, project_root()),
        "passed": passed,
        "targets": {"http_single_vs_predict": MIN_HTTP_RATIO, "store_single_vs_bare": MIN_STORE_RATIO},
        "store": store,
        "http": http,
    }
    table = Table("measure", "value", title=f"feedback ingestion ({n} outcomes each)", title_justify="left")
    for section in ("store", "http"):
        for key, value in report[section].items():
            table.add_row(f"{section}.{key}", str(value))
    console.print(table)
    console.print(f"passed: {passed}")
    (out_dir / f"{BENCH}.json").write_text(json.dumps(report, indent=2) + os.linesep, encoding="utf-8")
    return report


if __name__ == "__main__":
    main()

"""A real model server process (`bentoml serve` of bento/service.py): outcomes sent before and after the
server is killed and started again are all joined, none is stored twice, no answer is a 5xx."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from mlship.feedback.store import FeedbackStore
from mlship.local.processes import free_ports

ROOT = Path(__file__).resolve().parents[2]


def _serve(port: int, tag: str, db: Path, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "MLSHIP_MODEL_TAG": tag,
        "MLSHIP_ROLE": "stable",
        "MLSHIP_FEEDBACK_DB": str(db),
    }
    argv = [str(Path(sys.executable).with_name("bentoml")), "serve", "service:ModelService"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--working-dir", str(ROOT / "bento")]
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-2000:]
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        time.sleep(0.3)
    raise AssertionError(f"server not ready: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)  # no graceful shutdown: what was answered must already be stored
    proc.wait(30)


def test_nothing_is_lost_or_stored_twice_across_a_server_restart(models, valid_row, tmp_path):
    db = tmp_path / "feedback.db"
    (port,) = free_ports(1)
    url = f"http://127.0.0.1:{port}"
    statuses: list[int] = []
    ids = [uuid.uuid4().hex for _ in range(20)]
    proc = _serve(port, models["baseline"].tag, db, tmp_path / "server.log")
    try:
        with httpx.Client(base_url=url, timeout=10) as http:
            for rid in ids:
                statuses.append(
                    http.post("/predict", json=valid_row, headers={"x-request-id": rid}).status_code
                )
            time.sleep(0.5)  # the recorder writes within FLUSH_WAIT_S
            first = http.post("/feedback", json=[{"request_id": r, "outcome": 100.0} for r in ids[:10]])
            statuses.append(first.status_code)
            assert first.json() == {"accepted": 10}, first.text
    finally:
        _stop(proc)
    proc = _serve(port, models["baseline"].tag, db, tmp_path / "server.log")
    try:
        with httpx.Client(base_url=url, timeout=10) as http:
            replay = http.post("/feedback", json={"request_id": ids[0], "outcome": 1.0})
            rest = http.post("/feedback", json=[{"request_id": r, "outcome": 150.0} for r in ids[10:]])
            statuses += [replay.status_code, rest.status_code]
            assert replay.status_code == 409, replay.text
            assert rest.json() == {"accepted": 10}, rest.text
    finally:
        _stop(proc)
    assert [s for s in statuses if s >= 500] == []
    store = FeedbackStore(db)
    assert store.counts() == (20, 20)
    assert [store.outcome(r) for r in ids] == [100.0] * 10 + [150.0] * 10

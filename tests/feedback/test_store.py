"""The feedback store: outcomes joined to predictions once, across processes and restarts, bounded writes."""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from pathlib import Path

import pytest

from mlship.feedback.recorder import PredictionRecorder
from mlship.feedback.store import FeedbackStore, Outcome, PredictionRow


def _rows(prefix: str, n: int, *, version: str = "v1", role: str = "stable", at: float | None = None):
    at = time.time() if at is None else at
    return [PredictionRow(f"{prefix}{i}", 0, version, role, 100.0 + i, at) for i in range(n)]


def test_outcomes_join_the_prediction_version_and_role(tmp_path):
    store = FeedbackStore(tmp_path / "fb.db")
    store.record_predictions(_rows("s", 3) + _rows("c", 2, version="v2", role="canary"))
    joined, refused = store.add_outcomes([Outcome("s0", 0, 110.0), Outcome("c1", 0, 90.0)])
    assert refused == []
    assert [(j.model_version, j.role, j.error) for j in joined] == [
        ("v1", "stable", -10.0),
        ("v2", "canary", 11.0),
    ]
    quality = {(q.model_version, q.role): q for q in store.quality()}
    assert quality[("v1", "stable")].rmse == pytest.approx(10.0)
    assert quality[("v2", "canary")].mae == pytest.approx(11.0)


def test_a_batch_is_all_or_nothing_and_nothing_is_stored_twice(tmp_path):
    store = FeedbackStore(tmp_path / "fb.db")
    store.record_predictions(_rows("r", 3))
    _, refused = store.add_outcomes([Outcome("r0", 0, 1.0), Outcome("nope", 0, 1.0)])
    assert [(r.index, r.reason) for r in refused] == [(1, "unknown_request_id")]
    assert store.counts() == (3, 0), "a refused batch stores nothing"
    _, refused = store.add_outcomes([Outcome("r0", 0, 1.0), Outcome("r0", 0, 2.0)])
    assert [(r.index, r.reason) for r in refused] == [(1, "duplicate")]
    joined, _ = store.add_outcomes([Outcome("r0", 0, 1.0)])
    assert len(joined) == 1
    _, refused = store.add_outcomes([Outcome("r0", 0, 5.0)])
    assert [r.reason for r in refused] == ["duplicate"]
    assert store.outcome("r0") == 1.0


def test_outcomes_for_predictions_past_retention_are_expired(tmp_path):
    store = FeedbackStore(tmp_path / "fb.db", retention_days=1)
    store.record_predictions(_rows("old", 1, at=time.time() - 2 * 86400) + _rows("new", 1))
    _, refused = store.add_outcomes([Outcome("old0", 0, 1.0)])
    assert [r.reason for r in refused] == ["expired"]
    assert store.add_outcomes([Outcome("new0", 0, 1.0)])[0]


def test_the_join_survives_reopening_the_file(tmp_path):
    path = tmp_path / "fb.db"
    first = FeedbackStore(path)
    first.record_predictions(_rows("p", 2))
    first.add_outcomes([Outcome("p0", 0, 1.0)])
    first.close()
    again = FeedbackStore(path)
    assert again.counts() == (2, 1)
    assert [r.reason for r in again.add_outcomes([Outcome("p0", 0, 1.0)])[1]] == ["duplicate"]
    assert again.add_outcomes([Outcome("p1", 0, 1.0)])[0]


def _writer(path: str, prefix: str, n: int) -> None:
    store = FeedbackStore(Path(path))
    for i in range(n):
        store.record_predictions([PredictionRow(f"{prefix}{i}", 0, prefix, "stable", 1.0, time.time())])
        store.add_outcomes([Outcome(f"{prefix}{i}", 0, 2.0)])


def test_several_processes_share_one_file(tmp_path):
    """Three processes (as three servers) write predictions and outcomes to one file concurrently."""
    path = tmp_path / "fb.db"
    FeedbackStore(path)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), f"w{k}-", 60)) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert FeedbackStore(path).counts() == (180, 180)


def test_the_recorder_never_blocks_and_counts_what_it_drops(tmp_path):
    store = FeedbackStore(tmp_path / "fb.db")
    dropped: list[int] = []
    recorder = PredictionRecorder(store, capacity=5, on_drop=dropped.append)
    # Hold the store's write lock, as a slow disk or another writer would: the recorder's thread waits,
    # the request path must not.
    blocker = FeedbackStore(tmp_path / "fb.db")._conn()
    blocker.execute("BEGIN IMMEDIATE")
    started = time.perf_counter()
    for i in range(50):
        recorder(f"q{i}", "v1", "stable", [{}], [1.0])
    elapsed = time.perf_counter() - started
    blocker.execute("COMMIT")
    assert elapsed < 0.5, f"50 hook calls took {elapsed:.3f} s while the store was locked"
    assert recorder.flush(10)
    stored, _ = store.counts()
    assert sum(dropped) == recorder.dropped == 50 - stored
    assert 5 <= stored <= 6, "at most the queue's capacity (and the batch being written) is kept"


def test_a_server_starting_while_the_store_is_locked_does_not_crash(tmp_path):
    """A bulk ingest or another writer holds the write lock past the busy timeout when a server
    opens the store: opening succeeds, and the store works once the lock is released."""
    path = tmp_path / "fb.db"
    FeedbackStore(path).record_predictions(_rows("p", 1))
    blocker = FeedbackStore(path)._conn()
    blocker.execute("BEGIN IMMEDIATE")
    starting = FeedbackStore(path, busy_timeout_s=0.2)
    assert starting.counts() == (1, 0), "opening an existing store writes nothing: reads work meanwhile"
    with pytest.raises(sqlite3.OperationalError):
        starting.add_outcomes([Outcome("p0", 0, 1.0)])
    blocker.execute("COMMIT")
    assert starting.add_outcomes([Outcome("p0", 0, 1.0)])[0]
    assert starting.counts() == (1, 1)


def test_bulk_ingest_writes_in_chunks(tmp_path, monkeypatch):
    """`mlship feedback ingest` of 2,500 outcomes commits 3 transactions of at most WRITE_CHUNK, so the
    write lock is never held for the whole file."""
    from typer.testing import CliRunner

    from mlship.cli import app
    from mlship.commands import feedback as command
    from mlship.feedback.store import WRITE_CHUNK

    store = FeedbackStore(tmp_path / "fb.db")
    n = 2 * WRITE_CHUNK + 500
    store.record_predictions(_rows("r", n))
    (tmp_path / "o.csv").write_text("request_id,outcome\n" + "".join(f"r{i},1.5\n" for i in range(n)))
    statements: list[str] = []
    store._conn().set_trace_callback(statements.append)
    monkeypatch.setattr(command, "open_store", lambda db: store)
    result = CliRunner().invoke(app, ["feedback", "ingest", str(tmp_path / "o.csv")])
    assert result.exit_code == 0, result.output
    assert f"stored {n} outcomes" in result.output
    assert statements.count("BEGIN IMMEDIATE") == 3
    assert store.counts() == (n, n)


def test_a_request_id_answered_twice_differently_is_ambiguous(tmp_path):
    """The same key recorded with another version or prediction (a client reusing X-Request-ID, a retried
    request answered by two servers): its outcome is refused, never joined to the first prediction."""
    store = FeedbackStore(tmp_path / "fb.db")
    at = time.time()
    store.record_predictions([PredictionRow("reused", 0, "v1", "stable", 100.0, at)])
    store.record_predictions([PredictionRow("reused", 0, "v2", "canary", 140.0, at)])
    store.record_predictions([PredictionRow("same", 0, "v1", "stable", 100.0, at)] * 2)
    joined, refused = store.add_outcomes([Outcome("reused", 0, 120.0)])
    assert (joined, [r.reason for r in refused]) == ([], ["ambiguous_request_id"])
    assert store.add_outcomes([Outcome("same", 0, 120.0)])[0], "the same prediction twice is no conflict"


def test_a_schema_1_store_is_migrated(tmp_path):
    """A store written by the previous version (no ambiguous column) opens and works."""
    path = tmp_path / "fb.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE predictions (request_id TEXT NOT NULL, idx INTEGER NOT NULL, model_version TEXT NOT "
        "NULL, role TEXT NOT NULL, prediction REAL NOT NULL, predicted_at REAL NOT NULL, PRIMARY KEY "
        "(request_id, idx)) WITHOUT ROWID; CREATE TABLE outcomes (request_id TEXT NOT NULL, idx INTEGER NOT "
        "NULL, outcome REAL NOT NULL, received_at REAL NOT NULL, PRIMARY KEY (request_id, idx)) WITHOUT "
        f"ROWID; INSERT INTO predictions VALUES ('p', 0, 'v1', 'stable', 1.0, {time.time()}); "
        "PRAGMA user_version = 1;"
    )
    old.close()
    store = FeedbackStore(path)
    assert store.add_outcomes([Outcome("p", 0, 2.0)])[0]
    store.record_predictions(_rows("p", 1, version="v9"))
    assert store.prediction("p0") is not None

"""Data 5: stored predictions and outcomes are readable by their owner only, and deletable - one request
(an erasure request) or everything past the retention period."""

from __future__ import annotations

import stat
import time

import pytest
from typer.testing import CliRunner

from mlship.cli import app
from mlship.errors import RefusedError
from mlship.feedback.store import FeedbackStore, Outcome, PredictionRow


@pytest.fixture
def store(tmp_path):
    s = FeedbackStore(tmp_path / "fb.db", retention_days=7)
    now = time.time()
    s.record_predictions(
        [
            PredictionRow("alice", 0, "v1", "stable", 120.0, now),
            PredictionRow("bob", 0, "v1", "stable", 90.0, now),
            PredictionRow("old", 0, "v1", "stable", 50.0, now - 30 * 86400),
        ]
    )
    s.add_outcomes([Outcome("alice", 0, 150.0), Outcome("bob", 0, 95.0)])
    return s


def test_the_store_files_are_readable_by_their_owner_only(store):
    """The database and its -wal and -shm files (which hold recent rows too), whatever the umask."""
    files = [store.path, store.path.with_name("fb.db-wal"), store.path.with_name("fb.db-shm")]
    for path in files:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & (stat.S_IRWXG | stat.S_IRWXO) == 0, f"{path.name}: {oct(mode)}"


def test_delete_removes_one_request_and_nothing_else(store):
    result = CliRunner().invoke(app, ["feedback", "delete", "alice", "--db", str(store.path)])
    assert result.exit_code == 0, result.output
    assert "deleted 1 predictions and 1 outcomes" in result.output
    assert store.prediction("alice") is None and store.outcome("alice") is None
    assert store.outcome("bob") == 95.0
    # Nothing of alice's is left on disk either, while the servers' connections stay open (the fixture's
    # store is one): secure_delete zeroes the freed bytes, and the delete empties the -wal file.
    for path in (store.path, store.path.with_name("fb.db-wal")):
        assert b"alice" not in path.read_bytes(), path.name
    again = CliRunner().invoke(app, ["feedback", "delete", "alice", "--db", str(store.path)])
    assert isinstance(again.exception, RefusedError)


def test_purge_deletes_what_is_past_the_retention(store):
    result = CliRunner().invoke(app, ["feedback", "purge", "--db", str(store.path), "--older-than-days", "7"])
    assert result.exit_code == 0, result.output
    assert "purged 1 predictions and 0 outcomes" in result.output
    assert store.prediction("old") is None
    assert store.counts() == (2, 2)

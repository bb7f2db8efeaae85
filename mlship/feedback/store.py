"""The outcome feedback store: served predictions and the outcomes joined to them, in one SQLite file.

Why SQLite (stdlib ``sqlite3``): an embedded, crash-safe database that several processes share through
one file. Every model server of the local environment (stable, stable-2, the canary, and each BentoML
worker inside them) opens the same file: WAL mode lets readers work while one writer commits, and the
busy timeout makes concurrent writers wait for each other instead of failing. A prediction is keyed by
the request id the server returns (``X-Request-ID``) and its row index within the request (0 for
``/predict``); an outcome is stored once per key, joined at write time to the prediction's model version
and role. Nothing lives in memory: the join survives any restart.

Retention: predictions older than ``retention_days`` are expired (an outcome for them is refused as
``expired``) and ``purge`` deletes them with their outcomes. ``delete`` removes one request's data.
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

BUSY_TIMEOUT_S = 10.0
DEFAULT_RETENTION_DAYS = 30.0
SCHEMA_VERSION = 2  # 2: predictions.ambiguous
# Largest transaction of a bulk write (`mlship feedback ingest`): the write lock is held for
# milliseconds, so servers recording predictions and joining /feedback never wait on a long ingest.
WRITE_CHUNK = 1000
# The -wal file is cut back to this size after a checkpoint (it would otherwise keep its largest size,
# with stale copies of pages in it, until the last connection closes).
JOURNAL_SIZE_LIMIT = 8 * 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    request_id    TEXT    NOT NULL,
    idx           INTEGER NOT NULL,
    model_version TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    prediction    REAL    NOT NULL,
    predicted_at  REAL    NOT NULL,
    ambiguous     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (request_id, idx)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS predictions_time ON predictions (predicted_at);
CREATE TABLE IF NOT EXISTS outcomes (
    request_id  TEXT    NOT NULL,
    idx         INTEGER NOT NULL,
    outcome     REAL    NOT NULL,
    received_at REAL    NOT NULL,
    PRIMARY KEY (request_id, idx)
) WITHOUT ROWID;
"""
# Schema 1 -> 2.
_AMBIGUOUS_COLUMN = "ALTER TABLE predictions ADD COLUMN ambiguous INTEGER NOT NULL DEFAULT 0"
# A request id recorded again with another prediction (a client reusing its X-Request-ID, a request
# retried by the router and answered by two servers): which prediction an outcome belongs to is
# unknown, so the key is marked ambiguous and its outcomes are refused (409 ambiguous_request_id)
# rather than joined to whichever prediction came first. The same prediction twice is no conflict.
_RECORD = (
    "INSERT INTO predictions (request_id, idx, model_version, role, prediction, predicted_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (request_id, idx) DO UPDATE SET ambiguous = 1 "
    "WHERE predictions.model_version <> excluded.model_version OR predictions.role <> excluded.role "
    "OR predictions.prediction <> excluded.prediction"
)


@dataclass(frozen=True)
class PredictionRow:
    request_id: str
    idx: int
    model_version: str
    role: str
    prediction: float
    predicted_at: float


@dataclass(frozen=True)
class Outcome:
    request_id: str
    idx: int
    outcome: float


@dataclass(frozen=True)
class Joined:
    """An accepted outcome with the prediction it was joined to."""

    request_id: str
    idx: int
    model_version: str
    role: str
    prediction: float
    outcome: float

    @property
    def error(self) -> float:
        return self.prediction - self.outcome


@dataclass(frozen=True)
class Refusal:
    """An outcome the store refused: ``reason`` is unknown_request_id | ambiguous_request_id | expired |
    duplicate."""

    index: int  # position in the submitted batch
    request_id: str
    reason: str


@dataclass(frozen=True)
class QualityRow:
    model_version: str
    role: str
    n: int
    rmse: float
    mae: float


class FeedbackStore:
    """One SQLite file shared by every process; a connection per thread (sqlite3's rule)."""

    def __init__(
        self,
        path: Path,
        *,
        retention_days: float = DEFAULT_RETENTION_DAYS,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
    ) -> None:
        if retention_days <= 0:
            raise ValueError("retention_days must be positive")
        self.path = Path(path)
        self.retention_s = retention_days * 86400
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._ready = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The store holds predictions linked to patients' requests: owner-only, like the state folder.
        # Created 0600 before SQLite opens it, because SQLite gives the -wal and -shm files the mode of
        # the database file when it creates them (a chmod afterwards would leave them 0644).
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        self.path.chmod(0o600)
        try:
            self._ensure_schema()
        except sqlite3.OperationalError:
            # Another process holds the write lock past the busy timeout (a bulk ingest, say): a server
            # starting now must not crash; the schema is checked again by the first operation.
            self._ready = False

    def _ensure_schema(self) -> None:
        """Create the tables once per file; a no-op read (no write lock) when they exist already."""
        if self._ready:
            return
        db = self._conn()
        if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            with self._tx_on(db):  # one process migrates; the others then see the new version
                version = db.execute("PRAGMA user_version").fetchone()[0]
                for statement in _SCHEMA.split(";"):  # IF NOT EXISTS: a no-op on an existing file
                    if statement.strip():
                        db.execute(statement)
                if version == 1:
                    db.execute(_AMBIGUOUS_COLUMN)
                if version != SCHEMA_VERSION:
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self._ready = True

    # --- connections ---------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode: a committed transaction survives a process crash (not a power loss).
            conn.execute("PRAGMA synchronous = NORMAL")
            # Deleted rows are overwritten with zeros, not left in free pages: `delete` really erases.
            conn.execute("PRAGMA secure_delete = ON")
            conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
            self._local.conn = conn
        return conn

    def _db(self) -> sqlite3.Connection:
        """The thread's connection, with the schema in place (raises sqlite3.OperationalError if locked)."""
        self._ensure_schema()
        return self._conn()

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        """A write transaction taken up front (BEGIN IMMEDIATE): checks and inserts see one state."""
        return self._tx_on(self._db())

    @staticmethod
    @contextmanager
    def _tx_on(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # --- writes --------------------------------------------------------------------------------
    def record_predictions(self, rows: Iterable[PredictionRow]) -> int:
        """Store served predictions; a key recorded again with another prediction becomes ambiguous."""
        batch = [
            (r.request_id, r.idx, r.model_version, r.role, r.prediction, r.predicted_at)
            for r in rows
            if math.isfinite(r.prediction)
        ]
        if not batch:
            return 0
        with self._tx() as db:
            before = db.total_changes
            db.executemany(_RECORD, batch)
            return db.total_changes - before

    def add_outcomes(
        self, outcomes: Sequence[Outcome], *, now: float | None = None
    ) -> tuple[list[Joined], list[Refusal]]:
        """All or nothing: every outcome is joined and stored, or none is and the refusals say why.

        A batch naming the same key twice is refused as a duplicate too, so a retried batch never
        stores anything twice.
        """
        now = time.time() if now is None else now
        with self._tx() as db:
            joined, refused = self._join(db, outcomes, now)
            if refused:
                return [], refused
            db.executemany(
                "INSERT INTO outcomes VALUES (?, ?, ?, ?)",
                [(j.request_id, j.idx, j.outcome, now) for j in joined],
            )
        return joined, []

    def check_outcomes(self, outcomes: Sequence[Outcome], *, now: float | None = None) -> list[Refusal]:
        """What ``add_outcomes`` would refuse now, read without taking the write lock (bulk ingest
        checks a whole file first, then writes it in chunks of ``WRITE_CHUNK``)."""
        now = time.time() if now is None else now
        db = self._db()
        db.execute("BEGIN")  # one read snapshot for the whole check
        try:
            return self._join(db, outcomes, now)[1]
        finally:
            db.execute("COMMIT")

    def _join(
        self, db: sqlite3.Connection, outcomes: Sequence[Outcome], now: float
    ) -> tuple[list[Joined], list[Refusal]]:
        joined: list[Joined] = []
        refused: list[Refusal] = []
        seen: set[tuple[str, int]] = set()
        for index, o in enumerate(outcomes):
            key = (o.request_id, o.idx)
            row = db.execute(
                "SELECT model_version, role, prediction, predicted_at, ambiguous FROM predictions "
                "WHERE request_id = ? AND idx = ?",
                key,
            ).fetchone()
            if row is None:
                refused.append(Refusal(index, o.request_id, "unknown_request_id"))
                continue
            if row[4]:
                refused.append(Refusal(index, o.request_id, "ambiguous_request_id"))
                continue
            if row[3] < now - self.retention_s:
                refused.append(Refusal(index, o.request_id, "expired"))
                continue
            stored = db.execute("SELECT 1 FROM outcomes WHERE request_id = ? AND idx = ?", key).fetchone()
            if stored is not None or key in seen:
                refused.append(Refusal(index, o.request_id, "duplicate"))
                continue
            seen.add(key)
            joined.append(Joined(o.request_id, o.idx, row[0], row[1], row[2], o.outcome))
        return joined, refused

    def delete(self, request_ids: Sequence[str]) -> tuple[int, int]:
        """Remove these requests' predictions and outcomes: (predictions, outcomes) deleted."""
        ids = [(r,) for r in request_ids]
        with self._tx() as db:
            before = db.total_changes
            db.executemany("DELETE FROM outcomes WHERE request_id = ?", ids)
            outcomes = db.total_changes - before
            db.executemany("DELETE FROM predictions WHERE request_id = ?", ids)
            predictions = db.total_changes - before - outcomes
        self._erase_wal()
        return predictions, outcomes

    def purge(self, *, older_than_s: float | None = None, now: float | None = None) -> tuple[int, int]:
        """Delete predictions older than the retention (or ``older_than_s``) with their outcomes."""
        now = time.time() if now is None else now
        cutoff = now - (self.retention_s if older_than_s is None else older_than_s)
        with self._tx() as db:
            before = db.total_changes
            db.execute(
                "DELETE FROM outcomes WHERE (request_id, idx) IN "
                "(SELECT request_id, idx FROM predictions WHERE predicted_at < ?)",
                (cutoff,),
            )
            outcomes = db.total_changes - before
            db.execute("DELETE FROM predictions WHERE predicted_at < ?", (cutoff,))
            predictions = db.total_changes - before - outcomes
        self._erase_wal()
        return predictions, outcomes

    def _erase_wal(self) -> bool:
        """Copy the WAL into the database file and empty it: the deleted rows' old page images in the
        -wal file are gone (secure_delete has zeroed them in the database file). False when a reader
        in another process kept part of the log (it is emptied by the next checkpoint)."""
        busy, _, _ = self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return busy == 0

    # --- reads ---------------------------------------------------------------------------------
    def counts(self) -> tuple[int, int]:
        """(predictions, outcomes) stored."""
        db = self._db()
        p = db.execute("SELECT count(*) FROM predictions").fetchone()[0]
        o = db.execute("SELECT count(*) FROM outcomes").fetchone()[0]
        return int(p), int(o)

    def prediction(self, request_id: str, idx: int = 0) -> PredictionRow | None:
        row = (
            self._db()
            .execute(
                "SELECT request_id, idx, model_version, role, prediction, predicted_at FROM predictions "
                "WHERE request_id = ? AND idx = ?",
                (request_id, idx),
            )
            .fetchone()
        )
        return PredictionRow(*row) if row else None

    def outcome(self, request_id: str, idx: int = 0) -> float | None:
        row = (
            self._db()
            .execute("SELECT outcome FROM outcomes WHERE request_id = ? AND idx = ?", (request_id, idx))
            .fetchone()
        )
        return float(row[0]) if row else None

    def quality(self, *, since: float | None = None, until: float | None = None) -> list[QualityRow]:
        """Online RMSE and MAE per model version and role, over outcomes received in [since, until)."""
        query = (
            "SELECT p.model_version, p.role, count(*), "
            "avg((p.prediction - o.outcome) * (p.prediction - o.outcome)), "
            "avg(abs(p.prediction - o.outcome)) "
            "FROM outcomes o JOIN predictions p USING (request_id, idx) "
            "WHERE o.received_at >= ? AND o.received_at < ? "
            "GROUP BY p.model_version, p.role ORDER BY p.model_version, p.role"
        )
        bounds = (since if since is not None else 0.0, until if until is not None else math.inf)
        rows = self._db().execute(query, bounds).fetchall()
        return [QualityRow(v, r, int(n), math.sqrt(mse), float(mae)) for v, r, n, mse, mae in rows]

"""Recording served predictions, off the request's critical path.

``PredictionRecorder`` is an ``on_prediction(request_id, version, role, rows, predictions)`` hook: the
request thread only puts one tuple on a bounded queue (no I/O, no lock held across a write); a
background thread drains it in batches into the feedback store. When the queue is full (the store is
slower than traffic, or unavailable) the predictions are dropped and counted
(``mlship_feedback_predictions_dropped_total``): serving never waits for the store.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from mlship.feedback.store import DEFAULT_RETENTION_DAYS, FeedbackStore, PredictionRow

ENV_DB = "MLSHIP_FEEDBACK_DB"  # the store file; unset: the server records nothing and /feedback is off
ENV_RETENTION_DAYS = "MLSHIP_FEEDBACK_RETENTION_DAYS"
QUEUE_CAPACITY = 20_000  # requests (each up to MAX_BATCH_SIZE rows) waiting to be written
FLUSH_BATCH = 500  # requests per transaction
FLUSH_WAIT_S = 0.2  # longest a prediction waits in the queue while traffic is low

# As fastpath.PredictionHook: (request_id, version, role, rows, predictions), rows and predictions arrays.
OnPrediction = Callable[[str, str, str, Any, Any], None]
_Item = tuple[str, str, str, list[float], float]

LOG = logging.getLogger("mlship.feedback")


class PredictionRecorder:
    def __init__(
        self,
        store: FeedbackStore,
        *,
        capacity: int = QUEUE_CAPACITY,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self.on_drop = on_drop
        self.dropped = 0
        self.written = 0
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=capacity)
        self._thread = threading.Thread(target=self._run, name="mlship-feedback-recorder", daemon=True)
        self._thread.start()
        atexit.register(self.flush, 2.0)

    def __call__(
        self, request_id: str, version: str, role: str, rows: Sequence[Any], predictions: Iterable[float]
    ) -> None:
        """The ``on_prediction`` hook: enqueue and return (never blocks, never raises)."""
        values = [float(p) for p in predictions]
        try:
            self._queue.put_nowait((request_id, version, role, values, time.time()))
        except queue.Full:
            self.dropped += len(values)
            if self.on_drop is not None:
                self.on_drop(len(values))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is written (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)
        return not self._queue.unfinished_tasks

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            items = [first]
            while len(items) < FLUSH_BATCH:
                try:
                    items.append(self._queue.get(timeout=FLUSH_WAIT_S if len(items) < 2 else 0))
                except queue.Empty:
                    break
            rows = [
                PredictionRow(rid, i, version, role, value, at)
                for rid, version, role, values, at in items
                for i, value in enumerate(values)
            ]
            try:
                self.written += self.store.record_predictions(rows)
            except Exception as exc:  # the store is down or locked past its timeout: count, keep serving
                self.dropped += len(rows)
                if self.on_drop is not None:
                    self.on_drop(len(rows))
                LOG.warning("feedback store write failed", extra={"fields": {"error": str(exc)[:200]}})
            finally:
                for _ in items:
                    self._queue.task_done()


def store_from_env() -> FeedbackStore | None:
    """The store ``MLSHIP_FEEDBACK_DB`` names (None when unset)."""
    path = os.environ.get(ENV_DB)
    if not path:
        return None
    retention = float(os.environ.get(ENV_RETENTION_DAYS, DEFAULT_RETENTION_DAYS))
    return FeedbackStore(Path(path), retention_days=retention)

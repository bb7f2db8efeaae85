"""Application-level shadow traffic (local environment): the stable server mirrors requests to a candidate.

HAProxy 2.6 has no native request mirroring (it needs an external SPOA agent that Debian does not
ship), so the stable server copies each successful prediction request to the candidate *after* its
own answer has been sent, compares the two predictions and records the result; the candidate's
answer is never served. On Kubernetes the Gateway API ``RequestMirror`` filter does the mirroring.

The shadow target is read from a small JSON file (``{"url": ..., "candidate_version": ...}``) that
``mlship canary`` writes and removes; the server re-reads it at most once a second.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import httpx

from mlship.serving.metrics import ServiceMetrics

# As patient as the router is with a served request (HAProxy `timeout server`).
MIRROR_TIMEOUT_S = 15.0
MAX_IN_FLIGHT = 32


class ShadowTarget:
    """The candidate to mirror to, re-read from ``path`` when it changes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._checked = 0.0
        self._mtime: float | None = None
        self.url: str | None = None
        self.version: str | None = None

    def current(self) -> tuple[str, str] | None:
        if self.path is None:
            return None
        now = time.monotonic()
        if now - self._checked >= 1.0:
            self._checked = now
            try:
                mtime = self.path.stat().st_mtime
            except FileNotFoundError:
                self._mtime, self.url, self.version = None, None, None
                return None
            if mtime != self._mtime:
                self._mtime = mtime
                try:
                    conf = json.loads(self.path.read_text(encoding="utf-8"))
                    self.url, self.version = str(conf["url"]).rstrip("/"), str(conf["candidate_version"])
                except (OSError, ValueError, KeyError):
                    self.url, self.version = None, None
        return (self.url, self.version) if self.url and self.version else None


class ShadowMirror:
    """After a 200 from a prediction endpoint, send the same request to the shadow candidate.

    Called by the prediction app (mlship/serving/fastpath.py) once its answer has been sent.
    """

    def __init__(self, *, target_file: str | None, metrics: ServiceMetrics) -> None:
        self.target = ShadowTarget(Path(target_file) if target_file else None)
        self.metrics = metrics
        self._client: httpx.AsyncClient | None = None
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def after(self, path: str, body: bytes, answer: bytes) -> None:
        """``body`` was answered 200 with ``answer`` on ``path``: mirror it if a candidate is set."""
        target = self.target.current()
        if target is not None:
            self._spawn(target, path, body, answer)

    def _spawn(self, target: tuple[str, str], path: str, body: bytes, answer: bytes) -> None:
        url, version = target
        if self._in_flight >= MAX_IN_FLIGHT:
            self.metrics.shadow_requests.labels(self.metrics.version, version, "dropped").inc()
            return
        self._in_flight += 1
        task = asyncio.get_running_loop().create_task(self._mirror(url + path, version, body, answer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _mirror(self, url: str, version: str, body: bytes, answer: bytes) -> None:
        try:
            if self._client is None:
                self._client = httpx.AsyncClient(timeout=MIRROR_TIMEOUT_S, trust_env=False)
            try:
                response = await self._client.post(
                    url, content=body, headers={"content-type": "application/json", "x-mlship-shadow": "1"}
                )
            except httpx.HTTPError:
                self.metrics.shadow_requests.labels(self.metrics.version, version, "error").inc()
                return
            if response.status_code != 200:
                self.metrics.shadow_requests.labels(self.metrics.version, version, "error").inc()
                return
            self.metrics.shadow_requests.labels(self.metrics.version, version, "ok").inc()
            stable, candidate = _predictions(answer), _predictions(response.content)
            if stable is not None and candidate is not None and len(stable) == len(candidate):
                hist = self.metrics.shadow_abs_diff.labels(self.metrics.version, version)
                for a, b in zip(stable, candidate, strict=True):
                    hist.observe(abs(a - b))
        finally:
            self._in_flight -= 1


def _predictions(body: bytes) -> list[float] | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if "prediction" in data:
        return [float(data["prediction"])]
    if "predictions" in data:
        return [float(v) for v in data["predictions"]]
    return None


def target_file_from_env() -> str | None:
    return os.environ.get("MLSHIP_SHADOW_FILE") or None

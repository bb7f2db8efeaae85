"""BentoML's floor for the service benchmark: devtools/bench/bare_app.py mounted in a BentoML service
(`bentoml.asgi_app`). Whatever this loses against the bare app is BentoML's, not mlship's.

* ``Floor``: BentoML's default configuration (its request metrics, access log, a tracing span per
  request, traffic control);
* ``FloorTuned``: what configuration removes: no access log, no span for /predict, and the objects
  loaded at start frozen out of the garbage collector (``gc.freeze``), as bento/service.py does.

With ``MLSHIP_BENCH_GC_LOG`` set, each garbage collection of 1 ms or more is appended to that file
("<service> <generation> <ms>"): the bench reports the pauses next to the latency tail.

    MLSHIP_BENCH_MODEL_DIR=<model dir> bentoml serve devtools.bench.floor_service:Floor --port PORT
"""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path
from typing import Any

import bentoml

from devtools.bench.bare_app import app


class _GcProbe:
    def __init__(self, service: str, path: str) -> None:
        self.service, self.path, self.started = service, path, 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        ms = (time.perf_counter() - self.started) * 1000
        if ms >= 1.0:
            with Path(self.path).open("a", encoding="utf-8") as log:
                log.write(f"{self.service} {info['generation']} {ms:.2f}\n")


@bentoml.service(name="mlship-bench-floor")
@bentoml.asgi_app(app, path="/")
class Floor:
    def __init__(self) -> None:
        if path := os.environ.get("MLSHIP_BENCH_GC_LOG"):
            gc.callbacks.append(_GcProbe("floor", path))


@bentoml.service(
    name="mlship-bench-floor-tuned",
    logging={"access": {"enabled": False}},
    tracing={"excluded_urls": ["/predict"]},
)
@bentoml.asgi_app(app, path="/")
class FloorTuned:
    def __init__(self) -> None:
        gc.collect()
        gc.freeze()
        if path := os.environ.get("MLSHIP_BENCH_GC_LOG"):  # after the start's own collection
            gc.callbacks.append(_GcProbe("floor-tuned", path))

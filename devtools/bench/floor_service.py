"""BentoML's floor for the service benchmark: devtools/bench/bare_app.py mounted in a default BentoML
service (`bentoml.asgi_app`, BentoML's default configuration: its request metrics, tracing middleware,
traffic control). Whatever this loses against the bare app is BentoML's, not mlship's.

    MLSHIP_BENCH_MODEL_DIR=<model dir> bentoml serve devtools.bench.floor_service:Floor --port PORT
"""

from __future__ import annotations

import bentoml

from devtools.bench.bare_app import app


@bentoml.service(name="mlship-bench-floor")
@bentoml.asgi_app(app, path="/")
class Floor:
    pass

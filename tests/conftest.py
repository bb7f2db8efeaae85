"""Shared fixtures: a session model store, and real local environments on free loopback ports.

BentoML reads BENTOML_HOME when first imported, so the session's store is chosen here, before any
test module imports bentoml. Every local environment gets its own state folder and free ports, so
tests never touch a developer's running environment (127.0.0.1:8080/9090).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="mlship-tests-"))
os.environ["BENTOML_HOME"] = str(_SESSION_DIR / "bentoml")
os.environ["MLSHIP_STATE_DIR"] = str(_SESSION_DIR / "state")
os.environ["BENTOML_DO_NOT_TRACK"] = "True"

MODEL_NAME = "diabetes-regressor"


@pytest.fixture(scope="session")
def trained() -> dict[str, object]:
    """Every demo variant trained once per session (seed 42): variant -> TrainedModel."""
    from mlship.model import training

    return {v: training.train(v, seed=42, test_size=0.2, name=MODEL_NAME) for v in training.VARIANTS}


# Figures the tests write for `mlship score` (tests/mltest, tests/feedback): beside the JUnit report.
@pytest.fixture(scope="session")
def figures_dir(request, tmp_path_factory) -> Path:
    from mlship.score import artifacts

    xml = request.config.getoption("xmlpath", default=None)
    folder = (
        Path(xml).resolve().parent / artifacts.FIGURES_DIR
        if xml
        else tmp_path_factory.mktemp(artifacts.FIGURES_DIR)
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def record_figure(figures_dir, request):
    """record_figure(name, payload, verdict=..., proxy_reason=None): write ``<figures>/<name>.json``.

    ``verdict`` is the test's own conclusion about the property ("passed", "failed", "proxy"); write the
    figure before asserting, so a failing test leaves its figures behind for a reader.
    """

    from mlship.score import artifacts

    def record(name: str, payload: dict, *, verdict: str, proxy_reason: str | None = None) -> Path:
        return artifacts.write_figure(
            figures_dir,
            name,
            test=request.node.nodeid,
            payload=payload,
            verdict=verdict,
            proxy_reason=proxy_reason,
            root=Path(str(request.config.rootpath)),
        )

    return record


REVIEWER = "reviewer@tests.invalid"


@pytest.fixture(scope="session")
def models(trained) -> dict[str, object]:
    """Every demo variant registered in the session's store, gated and its spec reviewed: variant -> record.

    The review is recorded by a second identity (``REVIEWER``), as `mlship model review` would, with
    uncommitted code allowed: tests run on working trees with changes, which a real review refuses.
    """
    from mlship.config import GateConfig
    from mlship.model import approval, gate, registry

    records = {}
    for variant, model in trained.items():
        records[variant], _ = registry.register(model, MODEL_NAME)
    for variant, record in records.items():
        against = None if variant == "baseline" else records["baseline"]
        registry.save_gate(record, gate.validate(record, against, GateConfig()))
        approval.review(record, REVIEWER, seen_hash=approval.spec_hash(record), allow_uncommitted=True)
    return {variant: registry.get(record.tag) for variant, record in records.items()}


@pytest.fixture(scope="session")
def service_module(models):
    """bento/service.py serving the baseline, imported once per session (it registers metrics at import).

    tests/service and tests/mltest share this module object: a second import would register the
    service's Prometheus metrics twice in the process-wide registry.
    """
    import importlib.util
    import sys

    if "mlship_bento_service" in sys.modules:
        return sys.modules["mlship_bento_service"]
    os.environ["MLSHIP_MODEL_TAG"] = models["baseline"].tag
    # The in-process server's feedback store (tests/feedback reads it); `local up` sets it for real servers.
    os.environ["MLSHIP_FEEDBACK_DB"] = str(_SESSION_DIR / "feedback" / "feedback.db")
    path = Path(__file__).resolve().parents[1] / "bento" / "service.py"
    spec = importlib.util.spec_from_file_location("mlship_bento_service", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["mlship_bento_service"] = module
    spec.loader.exec_module(module)
    return module


# The model image the tests build, once per session (tests/integration: the container, preflight, export).
# Its own repository, so the tests never retag or remove an image a developer built.
TEST_IMAGE_REPOSITORY = "mlship-prod-tests/diabetes-regressor"


@pytest.fixture(scope="session")
def model_image(models) -> str:
    """`mlship build --containerize` of the baseline, tagged <TEST_IMAGE_REPOSITORY>:<version>."""
    import shutil
    import subprocess

    from mlship import build

    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode:
        pytest.fail("no Docker engine answers: `make setup` installs and starts it")
    result = build.build(
        models["baseline"].version,
        model_name=MODEL_NAME,
        containerize_image=True,
        offline=True,
        image_repository=TEST_IMAGE_REPOSITORY,
    )
    assert result.image == f"{TEST_IMAGE_REPOSITORY}:{models['baseline'].version}"
    return result.image


@dataclass
class LocalEnv:
    """A running local environment (what `mlship local up` starts) with optional traffic."""

    env: object
    config: object
    state_dir: Path
    covers: set[str] = field(default_factory=set)
    traffic: object | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def prometheus_url(self) -> str:
        return self.env.prometheus_url

    @property
    def proxy_url(self) -> str:
        return self.env.proxy_url

    def start_traffic(self, rps: float, invalid_share: float = 0.0, outcome_share: float = 0.0) -> None:
        """``outcome_share``: the true target of that share of answered requests goes to /feedback 1 s
        later (every 1/invalid_share-th twice: refused duplicates)."""
        from mlship.local import load

        rows, targets = load.traffic_population(seed=42, test_size=0.2)
        every = round(1 / invalid_share) if invalid_share > 0 else 0
        outcomes = load.Outcomes(targets, outcome_share, 1.0, every) if outcome_share > 0 else None
        self.traffic = load.LoadReport(target=self.proxy_url, rps=rps, duration_s=3600)
        self._stop.clear()
        self._thread = threading.Thread(
            target=load.run_load,
            args=(self.proxy_url, rows),
            kwargs={
                "rps": rps,
                "duration_s": 3600,
                "invalid_share": invalid_share,
                "stop": self._stop,
                "report": self.traffic,
                "outcomes": outcomes,
            },
            daemon=True,
        )
        self._thread.start()

    def stop_traffic(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None


def make_local_env(state_dir: Path) -> LocalEnv:
    from mlship.config import Config, LocalConfig
    from mlship.local.environment import LocalEnvironment, on_free_ports

    os.environ["MLSHIP_STATE_DIR"] = str(state_dir)
    config = Config(local=on_free_ports(LocalConfig()))
    return LocalEnv(env=LocalEnvironment(config), config=config, state_dir=state_dir)


@pytest.fixture(scope="session")
def local_env_factory():
    """make_local_env as a fixture (tests/<area>/conftest.py modules shadow `import conftest`)."""
    return make_local_env


@pytest.fixture(scope="module")
def local_env(models, tmp_path_factory) -> Iterator[LocalEnv]:
    """The real local environment with traffic (5% invalid requests) and a canary rollout running.

    Covers what the monitoring live check needs: a canary server taking routed traffic, a rollout
    publishing its state, mirrored (shadow) requests before that, and rejected inputs.
    """
    from mlship.canary.backends.local import local_controller
    from mlship.config import CanaryConfig, Config
    from mlship.model.releases import Releases

    handle = make_local_env(tmp_path_factory.mktemp("local-env"))
    canary = CanaryConfig(steps=[50, 100], shadow_samples=100, min_samples=10**9)
    handle.config = Config(local=handle.config.local, canary=canary)
    handle.env.config = handle.config
    env = handle.env
    env.up(models["baseline"].version)
    Releases.load().record(models["baseline"].version, "initial")
    handle.start_traffic(rps=20, invalid_share=0.05, outcome_share=0.5)
    controller = local_controller(handle.config, env)
    # Shadow first (mirrored requests), then the canary takes half the routed traffic and stays there:
    # min_samples is out of reach, so the rollout keeps running while the tests look at it.
    controller.start(models["candidate"].version, shadow=True)
    deadline = time.monotonic() + 180
    while controller.tick()[0].phase == "shadow":
        if time.monotonic() > deadline:
            raise RuntimeError("the shadow phase did not end in 180 s under 20 req/s")
        time.sleep(2)
    handle.covers = {"canary", "rollout", "shadow", "rejections", "outcomes", "rejected-outcomes", "router"}
    time.sleep(5)
    try:
        yield handle
    finally:
        handle.stop_traffic()
        env.down()


@pytest.fixture
def fresh_env(models, tmp_path) -> Iterator[LocalEnv]:
    """A local environment for one test (stable = baseline), no traffic unless the test starts it."""
    from mlship.model.releases import Releases

    handle = make_local_env(tmp_path / "state")
    handle.env.up(models["baseline"].version)
    Releases.load().record(models["baseline"].version, "initial")
    try:
        yield handle
    finally:
        handle.stop_traffic()
        handle.env.down()

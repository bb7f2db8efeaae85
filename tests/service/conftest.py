"""The BentoML service of bento/service.py, in process (`to_asgi` + Starlette's test client)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
from starlette.testclient import TestClient

REPO = Path(__file__).resolve().parents[2]


def load_service_module(model_tag: str):
    """Import bento/service.py once per session (it registers Prometheus metrics at import)."""
    if "mlship_bento_service" in sys.modules:
        return sys.modules["mlship_bento_service"]
    os.environ["MLSHIP_MODEL_TAG"] = model_tag
    spec = importlib.util.spec_from_file_location("mlship_bento_service", REPO / "bento" / "service.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["mlship_bento_service"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def service_module(models):
    return load_service_module(models["baseline"].tag)


@pytest.fixture(scope="session")
def client(service_module):
    app = service_module.ModelService.to_asgi()
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def valid_row(service_module) -> dict:
    from mlship.schema import CategoricalFeature

    return {
        f.name: (f.allowed[0] if isinstance(f, CategoricalFeature) else round((f.minimum + f.maximum) / 2, 3))
        for f in service_module.SCHEMA.features
    }

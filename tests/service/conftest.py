"""The BentoML service of bento/service.py, in process (`to_asgi` + Starlette's test client)."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient


@pytest.fixture(scope="session")
def client(service_module):
    app = service_module.ModelService.to_asgi()
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def valid_row(service_module) -> dict:
    from mlship.model.schema import CategoricalFeature

    return {
        f.name: (f.allowed[0] if isinstance(f, CategoricalFeature) else round((f.minimum + f.maximum) / 2, 3))
        for f in service_module.SCHEMA.features
    }

"""Fixtures for outcome feedback: the real BentoML service in process, and its feedback store."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def feedback_client(service_module):
    """(service module, Starlette test client) of bento/service.py serving the baseline, with its store.

    Built by BentoML's app factory without BentoML's own request metrics (tests/service registers
    those in the process-wide registry already); the service's middlewares and API are the same.
    """
    from _bentoml_impl.server.app import ServiceAppFactory
    from starlette.testclient import TestClient

    module = service_module
    module.ModelService.inject_config()
    app = ServiceAppFactory(module.ModelService, is_main=True, enable_metrics=False)()
    with TestClient(app, raise_server_exceptions=False) as client:
        yield module, client


@pytest.fixture(scope="session")
def valid_row(service_module) -> dict:
    from mlship.model.schema import CategoricalFeature

    return {
        f.name: (f.allowed[0] if isinstance(f, CategoricalFeature) else round((f.minimum + f.maximum) / 2, 3))
        for f in service_module.SCHEMA.features
    }

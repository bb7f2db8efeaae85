"""Fixtures for the ML Test Score checks: held-out data, the in-process model server, recorded figures.

Figures (JSON) are written next to the JUnit report of the run (``<junit dir>/mltest/``), where
`mlship score` reads them as evidence of the same run; without a JUnit report they go to a temp folder.
Each carries the envelope the scorer checks (mlship/score/artifacts.py): the test's node id, the time,
the commit, and the test's verdict on the property.
"""

from __future__ import annotations

import pytest

from mlship.model import data, features


@pytest.fixture(scope="session")
def split():
    return data.split(data.load_frame(), seed=42, test_size=0.2)


@pytest.fixture(scope="session")
def heldout(split):
    """(held-out raw rows, v1 model matrix, targets) of the split every demo model uses."""
    return split.x_test, features.transform(split.x_test, "v1"), split.y_test


@pytest.fixture(scope="session")
def served(service_module):
    """(service module, Starlette test client) of the real BentoML service serving the baseline.

    BentoML registers its own request metrics in the process-wide Prometheus registry each time it
    builds an app, and tests/service builds one too: this app is built by the same factory as
    ``to_asgi()`` but without BentoML's metrics middleware. The service's mlship_* metrics, its
    middlewares (request guard, shadow mirror) and its API are the same.
    """
    from _bentoml_impl.server.app import ServiceAppFactory
    from starlette.testclient import TestClient

    module = service_module
    module.ModelService.inject_config()
    app = ServiceAppFactory(module.ModelService, is_main=True, enable_metrics=False)()
    with TestClient(app, raise_server_exceptions=False) as client:
        yield module, client

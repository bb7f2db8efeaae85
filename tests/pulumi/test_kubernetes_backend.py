"""The Kubernetes traffic backend against a test double of the Pulumi stack.

The backend's only outside dependency is ``StackWorkspace`` (get/set config, ``up``). Its real
implementation drives the Pulumi CLI through the Automation API, which cannot be installed here, so
these tests use ``FakeStack``: an in-memory config plus an ``up`` that renders the real program under
Pulumi's mocks with that config (what `pulumi up` would deploy) and can be told to fail.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pulumi_helpers import PROGRAM, one, stack_models

from mlship.canary.backend import Routing, TrafficBackend
from mlship.canary.backends.kubernetes import MODELS_KEY, KubernetesBackend
from mlship.errors import MlshipError, RefusedError
from mlship.k8s import render as renderer

MODEL = "diabetes-regressor"


class FakeStack:
    """In-memory stack config; ``up`` renders the program with it under mocks."""

    def __init__(self, models: list[dict[str, Any]], *, fail_up: bool = False) -> None:
        self.config: dict[str, Any] = {MODELS_KEY: copy.deepcopy(models)}
        self.fail_up = fail_up
        self.writes: list[Any] = []
        self.deployed: renderer.RenderResult | None = None

    def get_config(self, key: str) -> Any:
        return copy.deepcopy(self.config.get(key))

    def set_config(self, key: str, value: Any) -> None:
        self.writes.append(copy.deepcopy(value))
        self.config[key] = copy.deepcopy(value)

    def up(self) -> None:
        if self.fail_up:
            raise RuntimeError("update failed: 1 error (simulated)")
        self.deployed = renderer.run_program("dev", PROGRAM, {"models": self.config[MODELS_KEY]})


def weights(stack: FakeStack) -> dict[str, int]:
    route = one(stack.deployed, "HTTPRoute", MODEL)
    rule = route["spec"]["rules"][0]
    return {ref["name"].removeprefix(f"{MODEL}-"): ref["weight"] for ref in rule["backendRefs"]}


def mirrored(stack: FakeStack) -> bool:
    rule = one(stack.deployed, "HTTPRoute", MODEL)["spec"]["rules"][0]
    return any(f["type"] == "RequestMirror" for f in rule.get("filters", []))


@pytest.fixture
def stack() -> FakeStack:
    return FakeStack(stack_models("dev"))


def test_satisfies_the_traffic_backend_protocol(stack):
    backend: TrafficBackend = KubernetesBackend(stack, MODEL)
    assert backend.name == "kubernetes"
    assert backend.routing() == Routing(stable_version="1.0.0", canary_version=None, weight=0, shadow=False)


def test_release_lifecycle_drives_the_route(stack):
    backend = KubernetesBackend(stack, MODEL)
    backend.deploy_canary("1.1.0", shadow=True)
    assert backend.routing() == Routing("1.0.0", "1.1.0", 0, True)
    assert weights(stack) == {"stable": 100, "canary": 0} and mirrored(stack)
    one(stack.deployed, "Deployment", f"{MODEL}-canary")

    backend.set_weight(25)
    assert backend.routing() == Routing("1.0.0", "1.1.0", 25, False)
    assert weights(stack) == {"stable": 75, "canary": 25} and not mirrored(stack)

    backend.promote()
    assert backend.routing() == Routing("1.1.0", None, 0, False)
    assert weights(stack) == {"stable": 100}
    stable = one(stack.deployed, "Deployment", f"{MODEL}-stable")
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.1.0")
    assert [m for m in stack.deployed.manifests if m["metadata"]["name"] == f"{MODEL}-canary"] == []


def test_rollback_removes_the_canary(stack):
    backend = KubernetesBackend(stack, MODEL)
    backend.deploy_canary("1.1.0", shadow=False)
    backend.set_weight(50)
    backend.rollback()
    assert backend.routing() == Routing("1.0.0", None, 0, False)
    assert weights(stack) == {"stable": 100}


def test_failed_up_restores_the_previous_config(stack):
    backend = KubernetesBackend(stack, MODEL)
    backend.deploy_canary("1.1.0", shadow=False)
    before = stack.get_config(MODELS_KEY)
    stack.fail_up = True
    with pytest.raises(MlshipError, match="stack config restored"):
        backend.set_weight(40)
    assert stack.get_config(MODELS_KEY) == before
    assert stack.writes[-2][0]["canary"]["weight"] == 40  # it was written, then put back
    assert backend.routing().weight == 0


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda b: b.set_weight(10), "no canary is deployed"),
        (lambda b: b.promote(), "nothing to promote"),
        (lambda b: b.rollback(), "nothing to roll back"),
        (lambda b: b.deploy_canary("1.0.0", shadow=False), "already the stable version"),
        (lambda b: b.deploy_canary("latest", shadow=False), "moving tag"),
        (lambda b: b.set_weight(101), "between 0 and 100"),
    ],
)
def test_refusals_change_nothing(stack, action, message):
    backend = KubernetesBackend(stack, MODEL)
    with pytest.raises(RefusedError, match=message):
        action(backend)
    assert stack.writes == [] and stack.deployed is None


def test_second_canary_is_refused(stack):
    backend = KubernetesBackend(stack, MODEL)
    backend.deploy_canary("1.1.0", shadow=False)
    writes = len(stack.writes)
    with pytest.raises(RefusedError, match="already deployed"):
        backend.deploy_canary("1.2.0", shadow=False)
    assert len(stack.writes) == writes
    with pytest.raises(RefusedError, match="promote or roll it back"):
        backend.deploy_stable("0.9.0")


def test_unknown_model_is_refused(stack):
    with pytest.raises(RefusedError, match="not in mlship:models"):
        KubernetesBackend(stack, "other-model").routing()


def test_deploy_stable(stack):
    backend = KubernetesBackend(stack, MODEL)
    backend.deploy_stable("0.9.0")
    assert backend.routing().stable_version == "0.9.0"
    image = one(stack.deployed, "Deployment", f"{MODEL}-stable")["spec"]["template"]["spec"]["containers"][0][
        "image"
    ]
    assert image.endswith(":0.9.0")

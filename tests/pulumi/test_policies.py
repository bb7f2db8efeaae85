"""The pulumi-policy pack's policies, each shown passing on rendered objects and failing on a broken one.

The Pulumi CLI (which runs policy packs during `preview`) cannot run here, so each policy is called
the way the policy engine calls it: with ResourceValidationArgs built from the program's resources.
"""

from __future__ import annotations

import copy

import pytest
from pulumi_helpers import with_canary
from pulumi_policy import PolicyCustomTimeouts, PolicyResourceOptions, ResourceValidationArgs

from mlship.k8s import policies

POLICY = {p.name: p for p in policies.POLICIES}


def _args(resource_type: str, props: dict, stack: str = "prod") -> ResourceValidationArgs:
    urn = f"urn:pulumi:{stack}::mlship::{resource_type}::x"
    opts = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
    return ResourceValidationArgs(resource_type, props, urn, "x", opts, None)


def violations(name: str, resource_type: str, props: dict, stack: str = "prod") -> list[str]:
    found: list[str] = []
    POLICY[name].validate(_args(resource_type, props, stack), lambda message, urn=None: found.append(message))
    return found


def _type(result, kind: str, name: str) -> tuple[str, dict]:
    for res in result.resources:
        if res.type.endswith(f":{kind}") and res.inputs.get("metadata", {}).get("name") == name:
            return res.type, copy.deepcopy(res.inputs)
    raise AssertionError(f"{kind} {name} not registered")


@pytest.fixture
def deployment(render):
    return _type(render("prod"), "Deployment", "diabetes-regressor-stable")


def _container(props: dict) -> dict:
    return props["spec"]["template"]["spec"]["containers"][0]


def test_the_pack_has_the_six_policies():
    assert set(POLICY) == {
        "no-latest-tag",
        "limits-set",
        "non-root",
        "probes-present",
        "weights-sum-100",
        "no-loadbalancer-in-dev",
    }


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_rendered_resource_passes_every_policy(render, stack):
    for res in render(stack).resources:
        for name in POLICY:
            assert violations(name, res.type, res.inputs, stack) == [], (name, res.type, res.name)


@pytest.mark.parametrize(
    "image", ["registry.example.com/m", "registry.example.com/m:latest", "localhost:5000/m"]
)
def test_no_latest_tag(deployment, image):
    typ, props = deployment
    _container(props)["image"] = image
    (message,) = violations("no-latest-tag", typ, props)
    assert "latest" in message or "no tag" in message
    _container(props)["image"] = "localhost:5000/m@sha256:" + "0" * 64
    assert violations("no-latest-tag", typ, props) == []


def test_limits_set(deployment):
    typ, props = deployment
    del _container(props)["resources"]["limits"]["memory"]
    assert violations("limits-set", typ, props) == [
        "container 'model' has no resources.limits for ['memory']"
    ]


def test_non_root(deployment):
    typ, props = deployment
    pod = props["spec"]["template"]["spec"]
    del pod["securityContext"]["runAsNonRoot"], _container(props)["securityContext"]["runAsNonRoot"]
    _container(props)["securityContext"]["runAsUser"] = 0
    found = violations("non-root", typ, props)
    assert any("runAsNonRoot" in m for m in found) and any("uid 0" in m for m in found)


def test_probes_present(deployment):
    typ, props = deployment
    del _container(props)["readinessProbe"]
    assert violations("probes-present", typ, props) == ["container 'model' has no readinessProbe"]


def test_weights_sum_to_100(render):
    typ, props = _type(render("dev", models=with_canary("dev", weight=30)), "HTTPRoute", "diabetes-regressor")
    assert violations("weights-sum-100", typ, props) == []
    props["spec"]["rules"][0]["backendRefs"][1]["weight"] = 20
    (message,) = violations("weights-sum-100", typ, props)
    assert "sum to 90" in message
    del props["spec"]["rules"][1]["backendRefs"][0]["weight"]  # Gateway API default weight 1
    assert any("sum to 31" in m for m in violations("weights-sum-100", typ, props))


def test_no_load_balancer_in_dev(render):
    typ, props = _type(render("dev"), "Service", "diabetes-regressor-stable")
    props["spec"]["type"] = "LoadBalancer"
    assert len(violations("no-loadbalancer-in-dev", typ, props, stack="dev")) == 1
    assert violations("no-loadbalancer-in-dev", typ, props, stack="prod") == []


def test_stack_is_read_from_the_urn():
    assert policies.stack_of("urn:pulumi:dev::mlship::kubernetes:core/v1:Service::svc") == "dev"
    assert policies.stack_of("not-a-urn") == ""

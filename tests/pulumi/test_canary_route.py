"""CanaryRoute under Pulumi's mocks: the HTTPRoute's weights and mirroring follow the stack's canary."""

from __future__ import annotations

import pytest
from pulumi_helpers import find, one, with_canary

from mlship import names
from mlship.k8s import naming

MODEL = "diabetes-regressor"


def route(result) -> dict:
    return one(result, "HTTPRoute", MODEL)


def backend_weights(rule: dict) -> dict[str, int]:
    return {ref["name"]: ref["weight"] for ref in rule["backendRefs"]}


@pytest.mark.parametrize("weight", [0, 1, 37, 50, 99, 100])
def test_weights_sum_to_100(render, weight):
    result = render("dev", models=with_canary("dev", weight=weight))
    for rule in route(result)["spec"]["rules"]:
        weights = backend_weights(rule)
        assert sum(weights.values()) == 100
        assert weights == {f"{MODEL}-stable": 100 - weight, f"{MODEL}-canary": weight}


def test_without_canary_everything_goes_to_stable(render):
    for rule in route(render("prod"))["spec"]["rules"]:
        assert backend_weights(rule) == {f"{MODEL}-stable": 100}
        assert all(f["type"] != "RequestMirror" for f in rule.get("filters", []))


def test_shadow_mirrors_to_the_canary_with_zero_weight(render):
    result = render("staging", models=with_canary("staging", weight=0, shadow=True))  # a candidate in shadow
    assert result.config.models[0].canary.shadow
    canary_service = one(result, "Service", f"{MODEL}-canary")
    for rule in route(result)["spec"]["rules"]:
        assert backend_weights(rule)[f"{MODEL}-canary"] == 0
        (mirror,) = [f["requestMirror"] for f in rule["filters"] if f["type"] == "RequestMirror"]
        assert mirror["backendRef"]["name"] == canary_service["metadata"]["name"]
        assert mirror["backendRef"]["port"] == canary_service["spec"]["ports"][0]["port"]
        assert mirror["percent"] == 100


def test_shadow_off_means_no_mirror(render):
    result = render("staging", models=with_canary("staging", weight=25, shadow=False))
    for rule in route(result)["spec"]["rules"]:
        assert all(f["type"] != "RequestMirror" for f in rule.get("filters", []))
        assert backend_weights(rule)[f"{MODEL}-canary"] == 25


def test_partial_shadow(render):
    result = render("dev", models=with_canary("dev", shadow=True, shadowPercent=20))
    for rule in route(result)["spec"]["rules"]:
        (mirror,) = [f["requestMirror"] for f in rule["filters"] if f["type"] == "RequestMirror"]
        assert mirror["percent"] == 20


def test_only_prediction_endpoints_are_routed(render):
    result = render("dev")
    rules = route(result)["spec"]["rules"]
    paths = sorted(m["path"]["value"] for r in rules for m in r["matches"])
    assert paths == [f"/{MODEL}{names.ENDPOINT_PREDICT}", f"/{MODEL}{names.ENDPOINT_PREDICT_BATCH}"]
    for rule in rules:
        (rewrite,) = [f["urlRewrite"] for f in rule["filters"] if f["type"] == "URLRewrite"]
        assert rule["matches"][0]["path"]["value"].endswith(rewrite["path"]["replaceFullPath"])


def test_route_attaches_to_the_gateway_listener(render):
    for stack in ("dev", "prod"):
        result = render(stack)
        gateway = one(result, "Gateway", result.config.gateway.name)
        (parent,) = route(result)["spec"]["parentRefs"]
        assert parent["name"] == gateway["metadata"]["name"]
        listeners = {listener["name"]: listener for listener in gateway["spec"]["listeners"]}
        assert parent["sectionName"] in listeners
        assert listeners[parent["sectionName"]]["allowedRoutes"]["namespaces"]["from"] == "Same"
        assert route(result)["metadata"]["namespace"] == gateway["metadata"]["namespace"]


def test_prod_terminates_tls(render):
    gateway = one(render("prod"), "Gateway", "mlship")
    (listener,) = gateway["spec"]["listeners"]
    assert (listener["protocol"], listener["port"]) == ("HTTPS", 443)
    assert listener["tls"]["certificateRefs"] == [{"kind": "Secret", "name": "models-example-com-tls"}]


def test_gateway_class_and_implementation(render):
    result = render("dev")
    gateway = one(result, "Gateway", "mlship")
    gateway_class = one(result, "GatewayClass", gateway["spec"]["gatewayClassName"])
    assert gateway_class["spec"]["controllerName"] == "gateway.envoyproxy.io/gatewayclass-controller"
    (envoy,) = [r for r in result.releases if r["release"] == "envoy-gateway"]
    assert envoy["chart"].startswith("oci://") and envoy["version"] == result.config.gateway.chart_version
    # an existing implementation: no Helm release and no GatewayClass of ours, the class name is used as is
    external = render("dev", gateway={"install": False, "className": "cilium", "namespace": "kube-system"})
    assert find(external, "GatewayClass") == []
    assert one(external, "Gateway", "mlship")["spec"]["gatewayClassName"] == "cilium"
    assert all(r["release"] != "envoy-gateway" for r in external.releases)


def test_pulumi_leaves_the_rules_to_the_canary_controller(render):
    """`pulumi up` creates the route, then never touches spec.rules (the controller applies them); the
    Deployments' replicas are left to their HPAs."""
    result = render("staging")
    assert result.ignore_changes == {
        "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute::diabetes-regressor-route": ["spec.rules"],
        "kubernetes:apps/v1:Deployment::diabetes-regressor-stable": ["spec.replicas"],
    }


def test_each_backend_gets_its_own_gateway_cluster(render):
    """A per-backend filter makes Envoy Gateway build one cluster per backend (NeedsClusterPerSetting),
    named by the backend's position, so the gateway's counts tell stable from canary."""
    result = render("dev", models=with_canary("dev", weight=30))
    for rule in route(result)["spec"]["rules"]:
        refs = rule["backendRefs"]
        assert [ref["name"] for ref in refs] == [
            f"{MODEL}-{r}" for r in sorted(naming.BACKEND_INDEX, key=naming.BACKEND_INDEX.__getitem__)
        ]
        for ref in refs:
            role = ref["name"].removeprefix(f"{MODEL}-")
            (header,) = ref["filters"][0]["requestHeaderModifier"]["set"]
            assert header == {"name": "x-mlship-role", "value": role}
    paths = [r["matches"][0]["path"]["value"] for r in route(result)["spec"]["rules"]]
    assert paths == [f"/{MODEL}{endpoint}" for endpoint in naming.ROUTED_ENDPOINTS]

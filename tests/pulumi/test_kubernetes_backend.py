"""The Kubernetes traffic backend: the route through the API, the Deployments through Pulumi.

No API server and no Pulumi CLI exist here. ``FakeApiServer`` (tests/pulumi/fake_kubernetes.py) stands in
for the API server's server-side apply (field ownership, atomic lists, conflicts, force); ``FakeStack``
for ``pulumi up``: the real program rendered under Pulumi's mocks and applied to that fake server the
way pulumi-kubernetes does (its own field manager, no force, ignore_changes as handleSSAIgnoreFields).
The tests assert the exact patch the backend sends, who owns which field afterwards, that a later
``pulumi up`` keeps what the controller did, and two rollouts on one stack at the same time.
"""

from __future__ import annotations

import threading

import pytest
from fake_kubernetes import PULUMI_MANAGER, Conflict, FakeApiServer, FakeStack
from pulumi_helpers import PROGRAM, stack_models, with_canary

from mlship import names
from mlship.canary.backend import MIXED_WEIGHTS, Routing, TrafficBackend
from mlship.canary.backends.kubernetes import (
    FIELD_MANAGER,
    MODELS_KEY,
    ROLE_RESOURCES,
    KubernetesBackend,
)
from mlship.errors import MlshipError, RefusedError
from mlship.k8s import render as renderer
from mlship.k8s.components.canary_route import rules
from mlship.k8s.stack_config import validate_models

MODEL = "diabetes-regressor"
OTHER = "fraud-scorer"
ROUTE = ("gateway.networking.k8s.io/v1", "HTTPRoute", "mlship")
V2, V3 = "2b7c0ffee000", "3c8d0ffee000"


def _two_models() -> list[dict]:
    models = stack_models("dev")
    return [*models, {**models[0], "name": OTHER, "image": "registry.example.com/mlship/fraud-scorer"}]


@pytest.fixture
def api() -> FakeApiServer:
    return FakeApiServer()


@pytest.fixture
def stack(api) -> FakeStack:
    stack = FakeStack(api, "dev", _two_models())
    stack.up()  # the first deployment, as `pulumi up` makes it
    api.calls.clear()
    stack.ups.clear()
    return stack


STABLE = stack_models("dev")[0]["stable"]


def backend(stack: FakeStack, model: str = MODEL, warnings: list[str] | None = None) -> KubernetesBackend:
    return KubernetesBackend(
        stack, stack.api, model, on_warning=(warnings if warnings is not None else []).append
    )


def route(api: FakeApiServer, model: str = MODEL) -> dict:
    found = api.get(*ROUTE, model)
    assert found is not None
    return found


def weights(api: FakeApiServer, model: str = MODEL) -> list[dict[str, int]]:
    """Per rule: backend Service -> weight."""
    return [
        {ref["name"]: ref["weight"] for ref in r["backendRefs"]} for r in route(api, model)["spec"]["rules"]
    ]


def deployed(api: FakeApiServer, model: str, role: str) -> str | None:
    found = api.get("apps/v1", "Deployment", "mlship", f"{model}-{role}")
    return (
        None
        if found is None
        else found["spec"]["template"]["spec"]["containers"][0]["image"].rsplit(":", 1)[1]
    )


def expected_rules(stack: FakeStack, model: str, **canary) -> list[dict]:
    entry = next(m for m in stack.config[MODELS_KEY] if m["name"] == model)
    (parsed,) = validate_models([{**entry, "canary": canary} if canary else {**entry, "canary": None}])
    return rules(parsed)


def test_satisfies_the_traffic_backend_protocol(stack):
    b: TrafficBackend = backend(stack)
    assert b.name == "kubernetes"
    assert b.routing() == Routing(stable_version=STABLE, canary_version=None, weight=0, shadow=False)


def test_a_step_is_one_server_side_apply_of_the_rules(stack, api):
    b = backend(stack)
    b.deploy_canary(V2, shadow=False)
    ups = len(stack.ups)
    api.calls.clear()
    b.set_weight(25)
    applies = [c for c in api.calls if c.verb == "apply"]
    assert len(applies) == 1 and len(stack.ups) == ups  # no pulumi up for a step
    (call,) = applies
    assert call.field_manager == FIELD_MANAGER == "mlship-canary" and call.force is True
    # exactly the fields the controller owns, nothing else
    assert call.body == {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": MODEL, "namespace": "mlship"},
        "spec": {"rules": expected_rules(stack, MODEL, version=V2, weight=25)},
    }
    assert weights(api) == [{f"{MODEL}-stable": 75, f"{MODEL}-canary": 25}] * 2
    assert b.routing() == Routing(STABLE, V2, 25, False)


def test_who_owns_which_field(stack, api):
    owners = api.owners(*ROUTE, MODEL)
    assert owners["spec.rules"] == {PULUMI_MANAGER}  # Pulumi created the route with its rules
    b = backend(stack)
    b.deploy_canary(V2, shadow=False)
    b.set_weight(10)
    owners = api.owners(*ROUTE, MODEL)
    assert owners["spec.rules"] == {FIELD_MANAGER}  # the whole atomic list moved to the controller
    assert owners["spec.parentRefs"] == {PULUMI_MANAGER}  # everything else stays Pulumi's
    labels = [o for path, o in owners.items() if path.startswith("metadata.labels.")]
    assert labels and all(o == {PULUMI_MANAGER} for o in labels)
    deployment = api.owners("apps/v1", "Deployment", "mlship", f"{MODEL}-canary")
    assert set().union(*deployment.values()) == {PULUMI_MANAGER}  # Deployments are Pulumi's only


def test_a_later_pulumi_up_keeps_the_weights(stack, api):
    b = backend(stack)
    b.deploy_canary(V2, shadow=False)
    b.set_weight(40)
    generation = route(api)["metadata"]["generation"]
    stack.up()  # everything, as a user or the pipeline runs it
    assert weights(api) == [{f"{MODEL}-stable": 60, f"{MODEL}-canary": 40}] * 2
    assert route(api)["metadata"]["generation"] == generation
    assert api.owners(*ROUTE, MODEL)["spec.rules"] == {FIELD_MANAGER}


def test_without_ignore_changes_pulumi_up_would_fight_the_controller(stack, api):
    """The program before issue 11: every step was a `pulumi up` because Pulumi owned the weights."""
    b = backend(stack)
    b.deploy_canary(V2, shadow=False)
    b.set_weight(40)
    stack.honour_ignore_changes = False
    with pytest.raises(Conflict, match=r"spec\.rules owned by mlship-canary"):
        stack.up()


def test_rollback_moves_traffic_before_any_pulumi_up(stack, api):
    warnings: list[str] = []
    b = backend(stack, warnings=warnings)
    b.deploy_canary(V2, shadow=False)
    b.set_weight(50)
    api.calls.clear()
    b.rollback()
    verbs = [c.verb for c in api.calls if c.verb in ("apply", "up")]
    assert verbs[0] == "apply" and "up" in verbs[1:]  # route first (seconds), clean-up after
    assert weights(api) == [{f"{MODEL}-stable": 100}] * 2
    assert b.routing() == Routing(STABLE, None, 0, False)
    assert deployed(api, MODEL, "canary") is None  # the canary's objects are gone
    assert "canary" not in next(m for m in stack.config[MODELS_KEY] if m["name"] == MODEL)
    assert warnings == []


def test_rollback_when_cleanup_fails_still_moves_traffic(stack, api):
    warnings: list[str] = []
    b = backend(stack, warnings=warnings)
    b.deploy_canary(V2, shadow=False)
    b.set_weight(50)
    stack.fail_up = True
    b.rollback()
    assert weights(api) == [{f"{MODEL}-stable": 100}] * 2
    assert len(warnings) == 1 and "next `pulumi up` removes it" in warnings[0]
    stack.fail_up = False
    stack.up()  # the next regular deployment
    assert deployed(api, MODEL, "canary") is None


def test_promotion_rolls_stable_out_before_moving_traffic(stack, api):
    b = backend(stack)
    b.deploy_canary(V2, shadow=False)
    b.set_weight(100)
    api.calls.clear()
    stack.ups.clear()
    b.promote()
    (first_up, cleanup) = stack.ups
    assert first_up == [
        stack.urn("mlship:k8s:ModelDeployment", "kubernetes:apps/v1:Deployment", f"{MODEL}-stable")
    ]
    assert cleanup == [stack.urn("mlship:k8s:ModelDeployment", t, f"{MODEL}-canary") for t in ROLE_RESOURCES]
    order = [(c.verb, c.key[3]) for c in api.calls if c.verb in ("apply", "up")]
    stable_rolled = order.index(("apply", f"{MODEL}-stable"))
    route_moved = order.index(("apply", MODEL))
    assert stable_rolled < route_moved  # stable runs V2 before it gets the traffic back
    assert b.routing() == Routing(V2, None, 0, False)
    assert deployed(api, MODEL, "stable") == V2 and deployed(api, MODEL, "canary") is None
    stack.up()  # a later full `pulumi up` never brings the old version back
    assert deployed(api, MODEL, "stable") == V2
    assert weights(api) == [{f"{MODEL}-stable": 100}] * 2


def test_two_rollouts_on_one_stack_at_once(stack, api):
    a, b = backend(stack, MODEL), backend(stack, OTHER)
    a.deploy_canary(V2, shadow=False)
    b.deploy_canary(V3, shadow=True)
    ups = len(stack.ups)
    steps = {MODEL: [5, 10, 25], OTHER: [10, 50]}

    def walk(backend_: KubernetesBackend) -> None:
        for weight in steps[backend_.model]:
            backend_.set_weight(weight)

    threads = [threading.Thread(target=walk, args=(x,)) for x in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(stack.ups) == ups  # steps never wait for Pulumi's stack lock
    assert a.routing() == Routing(STABLE, V2, 25, False)
    assert b.routing() == Routing(STABLE, V3, 50, False)
    a.rollback()
    b.promote()
    assert a.routing() == Routing(STABLE, None, 0, False)
    assert b.routing() == Routing(V3, None, 0, False)
    config = {m["name"]: m for m in stack.config[MODELS_KEY]}
    assert config[MODEL]["stable"] == STABLE and "canary" not in config[MODEL]  # no lost update
    assert config[OTHER]["stable"] == V3 and "canary" not in config[OTHER]


def test_routing_reads_the_live_route(stack, api):
    b = backend(stack)
    b.deploy_canary(V2, shadow=False)
    # someone changes the route by hand (kubectl apply --server-side --force-conflicts)
    body = b.route_body(
        validate_models([{**stack.config[MODELS_KEY][0], "canary": {"version": V2, "weight": 40}}])[0]
    )
    api.apply(body, field_manager="kubectl", force=True)
    assert stack.config[MODELS_KEY][0]["canary"]["weight"] == 0  # the file still says 0
    assert b.routing() == Routing(STABLE, V2, 40, False)  # the cluster says 40
    api.delete("apps/v1", "Deployment", "mlship", f"{MODEL}-canary")
    assert b.routing().canary_version is None  # routed to a canary that is not running
    b.set_weight(25)  # a repair (the rollout's weight) takes the rules back, whoever changed them
    assert api.owners(*ROUTE, MODEL)["spec.rules"] == {FIELD_MANAGER}
    assert b.routing().weight == 25


def test_set_weight_is_idempotent(stack, api):
    b = backend(stack)
    b.deploy_canary(V2, shadow=False)
    b.set_weight(25)
    generation = route(api)["metadata"]["generation"]
    b.set_weight(25)
    assert route(api)["metadata"]["generation"] == generation
    bodies = [c.body for c in api.calls if c.verb == "apply" and c.key[3] == MODEL]
    assert bodies[-1] == bodies[-2]


def test_shadow_mirrors_with_zero_weight(stack, api):
    b = backend(stack)
    b.deploy_canary(V2, shadow=True)
    assert b.routing() == Routing(STABLE, V2, 0, True)
    for rule in route(api)["spec"]["rules"]:
        (mirror,) = [f["requestMirror"] for f in rule["filters"] if f["type"] == "RequestMirror"]
        assert mirror["backendRef"]["name"] == f"{MODEL}-canary" and mirror["percent"] == 100
    b.set_weight(5)  # shadow ends with the first step
    assert b.routing() == Routing(STABLE, V2, 5, False)


def test_failed_up_restores_the_config_and_leaves_the_route(stack, api):
    b = backend(stack)
    before = stack.get_config(MODELS_KEY)
    rules_before = route(api)["spec"]["rules"]
    stack.fail_up = True
    with pytest.raises(MlshipError, match="stack config restored"):
        b.deploy_canary(V2, shadow=False)
    assert stack.get_config(MODELS_KEY) == before
    assert route(api)["spec"]["rules"] == rules_before
    assert b.routing() == Routing(STABLE, None, 0, False)


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda b: b.set_weight(10), "no canary is deployed"),
        (lambda b: b.promote(), "nothing to promote"),
        (lambda b: b.rollback(), "nothing to roll back"),
        (lambda b: b.deploy_canary(STABLE, shadow=False), "already the stable version"),
        (lambda b: b.deploy_canary("latest", shadow=False), "moving tag"),
        (lambda b: b.set_weight(101), "between 0 and 100"),
    ],
)
def test_refusals_change_nothing(stack, api, action, message):
    with pytest.raises(RefusedError, match=message):
        action(backend(stack))
    assert stack.writes == [] and stack.ups == []
    assert [c for c in api.calls if c.verb == "apply"] == []


def test_second_canary_is_refused(stack):
    b = backend(stack)
    b.deploy_canary(V2, shadow=False)
    writes = len(stack.writes)
    with pytest.raises(RefusedError, match="already deployed"):
        b.deploy_canary(V3, shadow=False)
    assert len(stack.writes) == writes
    with pytest.raises(RefusedError, match="promote or roll it back"):
        b.deploy_stable(V3)


def test_unknown_model_is_refused(stack):
    with pytest.raises(RefusedError, match="not in mlship:models"):
        backend(stack, "other-model").deploy_canary(V2, shadow=False)


def test_deploy_stable(stack, api):
    b = backend(stack)
    b.deploy_stable(V3)
    assert b.routing().stable_version == V3
    assert stack.ups == [
        [stack.urn("mlship:k8s:ModelDeployment", "kubernetes:apps/v1:Deployment", f"{MODEL}-stable")]
    ]


def test_targeted_urns_name_resources_of_the_program(render):
    """The URNs of a targeted `pulumi up` must name resources the program declares."""
    result = render("staging", models=with_canary("staging", weight=0, shadow=True))
    declared = {(r.type, r.name) for r in result.resources}
    for role in names.ROLES:
        for type_ in ROLE_RESOURCES:
            assert (type_, f"{MODEL}-{role}") in declared
    assert ("mlship:k8s:ModelDeployment", MODEL) in declared
    assert renderer.project_name(PROGRAM) == "mlship"


# --- the HPA owns spec.replicas (review of issue 11, defect 2) -----------------------------------------
HPA_MANAGER = "kube-controller-manager"  # what the API server records for the HPA's scale subresource


def hpa_scales(api: FakeApiServer, model: str, role: str, replicas: int) -> None:
    """The HPA controller scaling a Deployment: an update of spec.replicas through the scale subresource."""
    api.update(
        "apps/v1", "Deployment", "mlship", f"{model}-{role}", {"spec.replicas": replicas}, manager=HPA_MANAGER
    )


def test_the_first_rollout_starts_at_the_stack_replicas(stack, api):
    replicas = stack_models("dev")[0]["replicas"]
    found = api.get("apps/v1", "Deployment", "mlship", f"{MODEL}-stable")
    assert found["spec"]["replicas"] == replicas  # set on creation, not left to the API default of 1


def test_promotion_after_the_hpa_scaled_stable(stack, api):
    """Before: the program applied spec.replicas on every update, so once the HPA had scaled stable the
    promotion's targeted `pulumi up` failed with the conflict of pulumi-kubernetes #2491/#2569."""
    hpa_scales(api, MODEL, "stable", 5)
    b = backend(stack)
    b.deploy_canary(V2, shadow=False)
    hpa_scales(api, MODEL, "canary", 3)
    b.set_weight(100)
    b.promote()
    stable = api.get("apps/v1", "Deployment", "mlship", f"{MODEL}-stable")
    assert deployed(api, MODEL, "stable") == V2
    assert stable["spec"]["replicas"] == 5  # the HPA's count survives the promotion
    assert api.owners("apps/v1", "Deployment", "mlship", f"{MODEL}-stable")["spec.replicas"] == {HPA_MANAGER}
    stack.up()  # and a full `pulumi up` later
    assert api.get("apps/v1", "Deployment", "mlship", f"{MODEL}-stable")["spec"]["replicas"] == 5


def test_without_ignore_changes_the_hpa_conflict_comes_back(stack, api):
    """The double reproduces the upstream failure when the program does not leave spec.replicas alone."""
    hpa_scales(api, MODEL, "stable", 5)
    stack.honour_ignore_changes = False
    with pytest.raises(Conflict, match=rf"spec\.replicas owned by {HPA_MANAGER}"):
        stack.up()


def test_the_program_leaves_replicas_to_the_hpa_of_each_role(render):
    result = render("dev", models=with_canary("dev", weight=10))
    for role in names.ROLES:
        key = f"kubernetes:apps/v1:Deployment::{MODEL}-{role}"
        assert result.ignore_changes[key] == ["spec.replicas"]
        hpa = [m for m in result.manifests if m["kind"] == "HorizontalPodAutoscaler"]
        assert any(h["spec"]["scaleTargetRef"]["name"] == f"{MODEL}-{role}" for h in hpa)


# --- a canary without a ready pod is not running (review of issue 11, defect 6) -----------------------
def test_a_canary_without_ready_pods_is_reported_not_running(stack, api):
    """Envoy Gateway sends a backend without endpoints to `invalid-backend-cluster` (503 charged to no
    backend): the backend reads the Deployment's readyReplicas instead, so the controller rolls back."""
    b = backend(stack)
    b.deploy_canary(V2, shadow=False)
    b.set_weight(25)
    assert b.routing() == Routing(STABLE, V2, 25, False)
    api.set_status("apps/v1", "Deployment", "mlship", f"{MODEL}-canary", readyReplicas=0)  # crash-looping
    assert b.routing() == Routing(STABLE, None, 25, False)
    api.set_status("apps/v1", "Deployment", "mlship", f"{MODEL}-canary", readyReplicas=1)
    assert b.routing().canary_version == V2


def test_the_controller_rolls_back_a_crashed_canary(stack, api):
    """Controller._require_canary (the controller's own check) with the real backend reading the cluster."""
    from types import SimpleNamespace

    from mlship.canary.controller import Controller
    from mlship.canary.judge import Verdict

    b = backend(stack)
    b.deploy_canary(V2, shadow=False)
    b.set_weight(10)
    controller = Controller.__new__(Controller)  # only the backend is needed for this check
    controller.backend = b
    rollout = SimpleNamespace(canary_version=V2)
    waiting = Verdict("wait", "wait: not enough canary samples", {})
    assert controller._require_canary(rollout, waiting).decision == "wait"  # type: ignore[arg-type]
    api.set_status("apps/v1", "Deployment", "mlship", f"{MODEL}-canary", readyReplicas=0)
    verdict = controller._require_canary(rollout, waiting)  # type: ignore[arg-type]
    assert verdict.decision == "rollback" and "not running" in verdict.reason


def test_a_stable_without_ready_pods_serves_nothing(stack, api):
    api.set_status("apps/v1", "Deployment", "mlship", f"{MODEL}-stable", readyReplicas=0)
    assert backend(stack).routing().stable_version is None  # `canary start` refuses: nothing is serving


def test_the_canary_share_is_read_from_every_rule_as_envoy_splits_it(stack, api):
    """Review of issue 16: the raw weight of rule 0 only was read, so a hand edit went unseen."""
    b = backend(stack)
    b.deploy_canary(V2, shadow=False)
    b.set_weight(10)
    assert b.routing() == Routing(STABLE, V2, 10, False)
    live = api.objects[(*ROUTE, MODEL)].obj  # the stored object, as an edit by hand changes it
    canary, stable = f"{MODEL}-canary", f"{MODEL}-stable"
    # `kubectl edit`: stable 90 -> 900 on every path: the canary's raw weight is still 10, its share 1 %
    for rule in live["spec"]["rules"]:
        for ref in rule["backendRefs"]:
            if ref["name"] == stable:
                ref["weight"] = 900
    assert b.routing().weight == 1
    # /predict_batch sends everything to the canary while /predict looks right: the paths disagree
    live["spec"]["rules"][0]["backendRefs"] = [
        {**r, "weight": 90 if r["name"] == stable else 10} for r in live["spec"]["rules"][0]["backendRefs"]
    ]
    for ref in live["spec"]["rules"][1]["backendRefs"]:
        ref["weight"] = 100 if ref["name"] == canary else 0
    assert b.routing().weight == MIXED_WEIGHTS

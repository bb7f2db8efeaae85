"""A later `pulumi up` cannot undo a promotion (review of issue 11, defect 4).

Before: the stable version's only record was Pulumi.<stack>.yaml in a checkout, and the workflow deployed
the tag's copy, so a tag older than the last release, a failed push of the record, or a promotion by hand
never committed silently downgraded stable at the next `pulumi up` (the first test shows it happening with
a plain `pulumi up`). Now the controller records each stable change in the cluster (ConfigMap
<model>-release, field manager mlship-canary) and `mlship deploy` compares the stack config with it and with
the live stable Deployment before `pulumi up`.

Stands in: FakeApiServer for the API server's server-side apply, FakeStack for `pulumi up` (the real program
rendered under Pulumi's mocks, applied as pulumi-kubernetes does): tests/pulumi/fake_kubernetes.py.
"""

from __future__ import annotations

import copy

import pytest
from fake_kubernetes import FakeApiServer, FakeStack
from pulumi_helpers import stack_models
from test_kubernetes_backend import MODEL, OTHER, STABLE, V2, V3, _two_models, backend, deployed

from mlship.canary.backends.kubernetes import FIELD_MANAGER, MODELS_KEY
from mlship.errors import RefusedError
from mlship.k8s import deploy as deployer
from mlship.k8s import release_record

RECORD = ("v1", "ConfigMap", "mlship")


@pytest.fixture
def api() -> FakeApiServer:
    return FakeApiServer()


@pytest.fixture
def promoted(api) -> FakeStack:
    """A stack deployed with `mlship deploy`, then V2 promoted by the canary (the release's checkout)."""
    stack = FakeStack(api, "dev", _two_models())
    deployer.deploy("dev", stack, api)
    b = backend(stack)
    b.deploy_canary(V2, shadow=False)
    b.set_weight(100)
    b.promote()
    return stack


def stale_checkout(api: FakeApiServer, promoted: FakeStack) -> FakeStack:
    """Another checkout of the same stack: its Pulumi.dev.yaml still names the version before V2."""
    stale = FakeStack(api, "dev", _two_models())
    stale.managed = set(promoted.managed)  # the same Pulumi state (the backend is shared)
    assert stack_models("dev")[0]["stable"] == STABLE
    return stale


def test_a_plain_pulumi_up_from_a_stale_checkout_downgrades(api, promoted):
    """The defect, as the workflow ran it: `pulumi up` of the tag's stack config."""
    stale_checkout(api, promoted).up()
    assert deployed(api, MODEL, "stable") == STABLE  # V2 silently replaced


def test_the_promotion_is_recorded_in_the_cluster(api, promoted):
    record = release_record.read(api, "mlship", MODEL)
    assert record is not None and (record.stable, record.previous, record.how) == (V2, STABLE, "promoted")
    owners = api.owners(*RECORD, f"{MODEL}-release")
    assert owners["data.stable"] == {FIELD_MANAGER}  # the controller's object; Pulumi never declares it
    promoted.up()  # a full `pulumi up` leaves it alone
    assert release_record.read(api, "mlship", MODEL).stable == V2


def test_deploy_refuses_a_stale_stack_config_and_changes_nothing(api, promoted):
    stale = stale_checkout(api, promoted)
    calls = len(api.calls)
    with pytest.raises(RefusedError) as refused:
        deployer.deploy("dev", stale, api)
    message = str(refused.value)
    assert f"the stack config says {STABLE}, the cluster runs {V2}" in message
    assert "--stable-from cluster" in message and "--stable-from config" in message
    assert stale.ups == [] and stale.writes == []
    assert [c for c in api.calls[calls:] if c.verb in ("apply", "up")] == []
    assert deployed(api, MODEL, "stable") == V2


def test_the_pipeline_adopts_the_cluster_version(api, promoted):
    stale = stale_checkout(api, promoted)
    deployer.deploy("dev", stale, api, stable_from="cluster")
    assert deployed(api, MODEL, "stable") == V2
    stables = {m["name"]: m["stable"] for m in stale.config[MODELS_KEY]}
    assert stables == {MODEL: V2, OTHER: STABLE}  # the other model was never promoted: left as it was


def test_a_downgrade_on_purpose_is_deployed_and_recorded(api, promoted):
    stale = stale_checkout(api, promoted)
    deployer.deploy("dev", stale, api, stable_from="config")
    assert deployed(api, MODEL, "stable") == STABLE
    record = release_record.read(api, "mlship", MODEL)
    assert (record.stable, record.previous, record.how) == (STABLE, V2, "deployed")
    deployer.deploy("dev", stale, api)  # from now on this checkout agrees with the cluster


def test_rollback_to_previous_is_recorded(api, promoted):
    backend(promoted).deploy_stable(STABLE)
    assert release_record.read(api, "mlship", MODEL).stable == STABLE
    deployer.deploy("dev", promoted, api)  # the checkout that made the change agrees


def test_a_pulumi_up_outside_mlship_is_not_taken_for_the_cluster_version(api, promoted):
    stale_checkout(api, promoted).up()  # record V2, the Deployment now runs the old version
    fresh = FakeStack(api, "dev", copy.deepcopy(promoted.config[MODELS_KEY]))  # names V2
    fresh.managed = set(promoted.managed)
    with pytest.raises(RefusedError, match=f"the release record says {V2} but the stable Deployment runs"):
        deployer.deploy("dev", fresh, api, stable_from="cluster")
    deployer.deploy("dev", fresh, api, stable_from="config")  # a human picks V2 in the file
    assert deployed(api, MODEL, "stable") == V2


def test_the_first_deploy_creates_the_record(api):
    stack = FakeStack(api, "dev", _two_models())
    assert deployer.check(stack, api)[0].record is None
    deployer.deploy("dev", stack, api)
    assert release_record.read(api, "mlship", MODEL).stable == STABLE
    assert release_record.read(api, "mlship", OTHER).how == "deployed"


def test_a_record_that_cannot_be_written_is_reported(api):
    stack = FakeStack(api, "dev", _two_models())
    deployer.deploy("dev", stack, api)
    warnings: list[str] = []
    b = backend(stack, warnings=warnings)
    b.deploy_canary(V3, shadow=False)
    original = api.apply

    def no_configmaps(body, *, field_manager, force):
        if body["kind"] == "ConfigMap":
            raise PermissionError('configmaps "diabetes-regressor-release" is forbidden')
        return original(body, field_manager=field_manager, force=force)

    api.apply = no_configmaps  # type: ignore[method-assign]
    b.promote()  # traffic still moves
    assert b.routing().stable_version == V3
    assert len(warnings) == 1 and "was not updated to" in warnings[0] and "configmaps" in warnings[0]
    api.apply = original  # type: ignore[method-assign]
    with pytest.raises(
        RefusedError, match=f"the release record says {STABLE} but the stable Deployment runs {V3}"
    ):
        deployer.deploy("dev", stack, api)

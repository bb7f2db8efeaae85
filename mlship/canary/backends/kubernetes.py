"""Kubernetes traffic backend: the route through the Kubernetes API, the Deployments through Pulumi.

Who owns what (one owner per field, so nothing is undone by anyone else):

* The HTTPRoute's ``spec.rules`` (weights, the RequestMirror filter, matches, rewrites) belong to this
  backend. Gateway API makes ``spec.rules`` an atomic list (gateway-api v1.4.1 httproute_types.go
  ``+listType=atomic``): whoever changes one weight applies the whole list. The backend applies it
  server-side as field manager ``mlship-canary`` with ``force`` (which takes the list from Pulumi, who
  created the route), so a step or a rollback reaches Envoy in seconds, and rollouts of different models
  never wait for each other. The Pulumi program sets ``ignore_changes=["spec.rules"]`` on the route:
  pulumi-kubernetes then leaves a field another manager owns out of its own apply (await.go
  handleSSAIgnoreFields), so a later ``pulumi up`` neither reverts a step nor conflicts.
* Deployments, Services, PDBs and HPAs stay Pulumi's. The versions they run are recorded in the stack
  config (``mlship:models``, the record the next ``pulumi up`` deploys), and only the resources a
  transition needs are updated, with a targeted ``pulumi up`` (``--target`` their URNs): starting a
  canary creates the canary's four objects; promoting updates the stable Deployment (Pulumi waits for
  its rollout) before the route moves; the canary's objects are deleted once no traffic reaches them.
  The promoted version is written to the stack config and, once the stable Deployment runs it, to the
  cluster's release record (ConfigMap ``<model>-release``, mlship/k8s/release_record.py): ``mlship deploy``
  refuses a ``pulumi up`` whose stack config names another stable version (a stale checkout, an unpushed
  record), so a later deploy never brings the old version back.

``routing()`` reads the live HTTPRoute (weights and mirror of the ``/predict`` rule) and the versions the
live Deployments' pod templates run, counting a Deployment without a ready pod as not running: it reports
what the cluster does, not what a file says.
The Kubernetes API sits behind ``ClusterApi`` and the Pulumi CLI behind ``StackWorkspace``;
``KubernetesApi`` and ``AutomationWorkspace`` are the real ones.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from mlship import names
from mlship.canary.backend import MIXED_WEIGHTS, Routing
from mlship.errors import ConfigError, MlshipError, RefusedError
from mlship.k8s import naming, release_record, stack_config
from mlship.k8s.components.canary_route import rules as route_rules
from mlship.k8s.stack_config import Model

MODELS_KEY = f"{stack_config.NAMESPACE}:models"
NAMESPACE_KEY = f"{stack_config.NAMESPACE}:namespace"
FIELD_MANAGER = "mlship-canary"
ROUTE_API = ("gateway.networking.k8s.io/v1", "HTTPRoute")
DEPLOYMENT_API = ("apps/v1", "Deployment")
MODEL_COMPONENT = "mlship:k8s:ModelDeployment"
# (Pulumi type, logical name suffix) of one role's objects, as ModelDeployment declares them.
ROLE_RESOURCES = (
    "kubernetes:apps/v1:Deployment",
    "kubernetes:core/v1:Service",
    "kubernetes:policy/v1:PodDisruptionBudget",
    "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
)


class ClusterApi(Protocol):
    """The two Kubernetes API calls the backend makes."""

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The live object, or None if it does not exist."""
        ...

    def apply(self, body: dict[str, Any], *, field_manager: str, force: bool) -> dict[str, Any]:
        """Server-side apply ``body`` as ``field_manager``; returns the object after the apply."""
        ...


class StackWorkspace(Protocol):
    """What the backend needs from a Pulumi stack."""

    def get_config(self, key: str) -> Any:
        """Structured value of a config key (``mlship:models`` -> list of dicts); None if unset."""
        ...

    def set_config(self, key: str, value: Any) -> None:
        """Write a structured value to the stack's config."""
        ...

    def up(self, targets: list[str] | None = None) -> None:
        """``pulumi up`` (of ``targets`` only, when given); raise if the update fails."""
        ...

    def urn(self, parent_type: str, type_: str, name: str) -> str:
        """URN of a resource of this stack's program (a child of a ``parent_type`` component)."""
        ...

    def config_lock(self) -> contextlib.AbstractContextManager[None]:
        """Held while the stack config is read, changed and written (two rollouts, one file)."""
        ...


class KubernetesApi:
    """``ClusterApi`` over the ``kubernetes`` client's dynamic client (kubeconfig or in-cluster)."""

    def __init__(self, context: str | None = None) -> None:
        from kubernetes import config, dynamic
        from kubernetes.client import api_client

        try:
            config.load_kube_config(context=context)
        except config.ConfigException:
            config.load_incluster_config()
        self._client = dynamic.DynamicClient(api_client.ApiClient())

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        from kubernetes.dynamic.exceptions import NotFoundError

        resource = self._client.resources.get(api_version=api_version, kind=kind)
        try:
            return dict(resource.get(name=name, namespace=namespace).to_dict())
        except NotFoundError:
            return None

    def apply(self, body: dict[str, Any], *, field_manager: str, force: bool) -> dict[str, Any]:
        resource = self._client.resources.get(api_version=body["apiVersion"], kind=body["kind"])
        applied = self._client.server_side_apply(
            resource, body=body, field_manager=field_manager, force_conflicts=force
        )
        return dict(applied.to_dict())


class AutomationWorkspace:
    """``StackWorkspace`` over the Pulumi Automation API (needs the Pulumi CLI on PATH)."""

    LOCK_RETRIES = 30  # another model's targeted `up` holds the stack lock for a short while

    def __init__(self, stack: str, program_dir: Path, on_output: Callable[[str], None] = print) -> None:
        from pulumi import automation

        self._stack = automation.select_stack(stack_name=stack, work_dir=str(program_dir))
        self._on_output = on_output
        self._lock_file = program_dir / f".Pulumi.{stack}.yaml.lock"
        self._name = stack
        self._project = str(self._stack.workspace.project_settings().name)

    def get_config(self, key: str) -> Any:
        value = self._stack.get_all_config().get(key)
        if value is None:
            return None
        try:
            return json.loads(value.value)
        except json.JSONDecodeError:
            return value.value

    def set_config(self, key: str, value: Any) -> None:
        # `pulumi config set-all --json` (the `pulumi config --json` format) keeps structured values
        # structured in Pulumi.<stack>.yaml, so the stack file stays readable after a change.
        payload = {key: {"value": json.dumps(value), "objectValue": value, "secret": False}}
        self._stack.set_all_config_json(json.dumps(payload))

    def up(self, targets: list[str] | None = None) -> None:
        from pulumi.automation.errors import ConcurrentUpdateError

        for attempt in range(self.LOCK_RETRIES):
            try:
                self._stack.up(on_output=self._on_output, target=targets, target_dependents=False)
                return
            except ConcurrentUpdateError:
                if attempt == self.LOCK_RETRIES - 1:
                    raise
                time.sleep(min(2.0 * (attempt + 1), 10.0))

    def urn(self, parent_type: str, type_: str, name: str) -> str:
        return resource_urn(self._name, self._project, parent_type, type_, name)

    @contextlib.contextmanager
    def config_lock(self) -> Iterator[None]:
        with self._lock_file.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def resource_urn(stack: str, project: str, parent_type: str, type_: str, name: str) -> str:
    """A Pulumi URN: ``urn:pulumi:<stack>::<project>::<parent type>$<type>::<name>``."""
    return f"urn:pulumi:{stack}::{project}::{parent_type}${type_}::{name}"


class KubernetesBackend:
    """``TrafficBackend`` for one model of one Pulumi stack."""

    name = "kubernetes"

    def __init__(
        self,
        workspace: StackWorkspace,
        api: ClusterApi,
        model: str,
        *,
        on_warning: Callable[[str], None] = print,
    ) -> None:
        self.workspace = workspace
        self.api = api
        self.model = model
        self.on_warning = on_warning

    # --- the stack config (the record of what the Deployments run) ------------------------------
    @property
    def namespace(self) -> str:
        return str(self.workspace.get_config(NAMESPACE_KEY) or "mlship")

    def _models(self) -> list[dict[str, Any]]:
        models = self.workspace.get_config(MODELS_KEY)
        if not isinstance(models, list):
            raise MlshipError(f"the stack has no {MODELS_KEY} list")
        return models

    def _entry(self, models: list[dict[str, Any]]) -> dict[str, Any]:
        for entry in models:
            if isinstance(entry, dict) and entry.get("name") == self.model:
                return entry
        known = [m.get("name") for m in models if isinstance(m, dict)]
        raise RefusedError(f"model {self.model!r} is not in {MODELS_KEY} (known: {known})")

    def _config_model(self) -> Model:
        entry = self._entry(self._models())
        (model,) = self._validate([entry])
        return model

    @staticmethod
    def _validate(models: list[dict[str, Any]]) -> list[Model]:
        try:
            return stack_config.validate_models(models)
        except ConfigError as exc:
            raise RefusedError(f"refused, the change would make the stack config invalid: {exc}") from exc

    def _record(self, change: Callable[[dict[str, Any]], None]) -> tuple[list[dict[str, Any]], Model]:
        """Change this model's entry in the stack config (validated first); returns (previous, new)."""
        with self.workspace.config_lock():
            previous = self._models()
            models = copy.deepcopy(previous)
            entry = self._entry(models)
            change(entry)
            (model,) = self._validate([entry])
            self.workspace.set_config(MODELS_KEY, models)
        return previous, model

    def _restore(self, previous: list[dict[str, Any]]) -> None:
        """Put back this model's previous entry (other models' entries may have changed meanwhile)."""
        with self.workspace.config_lock():
            models = self._models()
            old = self._entry(copy.deepcopy(previous))
            for i, entry in enumerate(models):
                if isinstance(entry, dict) and entry.get("name") == self.model:
                    models[i] = old
            self.workspace.set_config(MODELS_KEY, models)

    def _urns(self, role: str, kinds: tuple[str, ...] = ROLE_RESOURCES) -> list[str]:
        name = naming.workload_name(self.model, role)
        return [self.workspace.urn(MODEL_COMPONENT, kind, name) for kind in kinds]

    def _up(self, targets: list[str], previous: list[dict[str, Any]] | None) -> None:
        """Targeted ``pulumi up``; on failure the previous stack config is written back."""
        try:
            self.workspace.up(targets)
        except Exception as exc:
            if previous is None:
                raise MlshipError(f"pulumi up failed: {exc}") from exc
            try:
                self._restore(previous)
            except Exception as restore_exc:
                raise MlshipError(
                    f"pulumi up failed ({exc}) and restoring the previous {MODELS_KEY} failed too "
                    f"({restore_exc}): check the stack config before the next change"
                ) from exc
            raise MlshipError(f"pulumi up failed, stack config restored: {exc}") from exc

    def _record_stable(self, version: str, how: str) -> None:
        """The cluster's release record (after the stable Deployment runs ``version``). A failure is
        reported, not raised: traffic must still move; `mlship deploy` then sees the mismatch."""
        try:
            release_record.write(self.api, self.namespace, self.model, version, how)
        except Exception as exc:
            self.on_warning(
                f"the release record {self.namespace}/{release_record.name(self.model)} was not updated to "
                f"{version} ({exc}): `mlship deploy` will refuse until told which version is stable; "
                "grant the canary configmaps get/create/patch in the model namespace"
            )

    def _remove_canary_objects(self) -> None:
        """Delete the canary's objects (no traffic reaches them any more); a failure is only reported:
        the stack config no longer names them, so the next ``pulumi up`` removes them."""
        try:
            self.workspace.up(self._urns(names.ROLE_CANARY))
        except Exception as exc:
            self.on_warning(
                f"the canary's Deployment of {self.model} was not removed ({exc}); it receives no "
                "traffic, and the next `pulumi up` removes it"
            )

    # --- the route (owned by this backend) ------------------------------------------------------
    def _live_route(self) -> dict[str, Any]:
        route = self.api.get(*ROUTE_API, self.namespace, self.model)
        if route is None:
            raise RefusedError(
                f"HTTPRoute {self.namespace}/{self.model} does not exist: deploy the stack with `pulumi up`"
            )
        return route

    def route_body(self, model: Model) -> dict[str, Any]:
        """The apply configuration of the route: exactly the fields this backend owns."""
        return {
            "apiVersion": ROUTE_API[0],
            "kind": ROUTE_API[1],
            "metadata": {"name": self.model, "namespace": self.namespace},
            "spec": {"rules": route_rules(model)},
        }

    def _apply_route(self, model: Model) -> None:
        self._live_route()  # never create a route Pulumi did not make (no parentRefs, no labels)
        self.api.apply(self.route_body(model), field_manager=FIELD_MANAGER, force=True)

    def _routed(self, stable: Model, canary: stack_config.Canary | None) -> Model:
        return stable.model_copy(update={"canary": canary})

    # --- reading ----------------------------------------------------------------------------------
    def _deployed_version(self, role: str) -> str | None:
        """The version a role's Deployment serves, or None when it serves nothing: no Deployment, or no
        ready pod (``status.readyReplicas``, from the Deployment controller).

        A canary whose pods crash or never become ready has no endpoints, and Envoy Gateway (v1.7.5
        internal/ir/xds.go ToBackendWeights, internal/xds/translator/route.go) then sends its share of the
        traffic to a cluster that does not exist, ``invalid-backend-cluster``, answered 503 by the route
        itself (cluster_not_found_response_code). Those 503s are counted by no backend's cluster: Envoy
        charges them to the listener (``http.<prefix>.no_cluster``, downstream 5xx), not to
        ``httproute/<ns>/<route>/rule/<i>/backend/<j>``, so the canary analysis cannot attribute them to
        the canary. Reporting such a canary as not running makes the controller roll it back at its next
        tick (it rolls back when ``routing().canary_version`` is not the rollout's canary)."""
        deployment = self.api.get(*DEPLOYMENT_API, self.namespace, naming.workload_name(self.model, role))
        if deployment is None:
            return None
        ready = int((deployment.get("status") or {}).get("readyReplicas") or 0)
        if ready < 1:
            return None
        labels = deployment.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
        return labels.get(naming.VERSION)

    def routing(self) -> Routing:
        """What the cluster does now: the live route's /predict rule and the Deployments' versions."""
        route = self._live_route()
        rules = route.get("spec", {}).get("rules") or []
        if not rules:
            raise MlshipError(f"HTTPRoute {self.namespace}/{self.model} has no rules")
        canary_service = naming.workload_name(self.model, names.ROLE_CANARY)
        # Every rule (one per path: /predict, /predict_batch, ...) is read: set_weight writes them all
        # alike, so rules that disagree (one edited by hand) are a difference to repair.
        shares, mirrors, routed = set(), set(), False
        for rule in rules:
            weights = {ref.get("name"): int(ref.get("weight", 1)) for ref in rule.get("backendRefs", [])}
            total = sum(weights.values())
            # The canary's share of the rule's traffic, as Envoy splits it: its weight over the sum.
            shares.add(round(100 * weights.get(canary_service, 0) / total) if total else 0)
            mirrors.add(
                any(
                    f.get("type") == "RequestMirror"
                    and f.get("requestMirror", {}).get("backendRef", {}).get("name") == canary_service
                    for f in rule.get("filters", [])
                )
            )
            routed = routed or canary_service in weights
        consistent = len(shares) == 1 and len(mirrors) == 1
        return Routing(
            stable_version=self._deployed_version(names.ROLE_STABLE),
            canary_version=self._deployed_version(names.ROLE_CANARY) if routed or True in mirrors else None,
            weight=shares.pop() if consistent else MIXED_WEIGHTS,
            shadow=mirrors == {True},
        )

    # --- changing ---------------------------------------------------------------------------------
    def _require_canary(self, model: Model, action: str) -> stack_config.Canary:
        if model.canary is None:
            raise RefusedError(f"no canary is deployed for {self.model}: nothing to {action}")
        return model.canary

    def deploy_canary(self, version: str, *, shadow: bool) -> None:
        """Record the canary, create its objects (targeted up), then route 0% (or mirror) to it."""

        def change(entry: dict[str, Any]) -> None:
            current = entry.get("canary")
            if current and current.get("version") != version:
                raise RefusedError(
                    f"canary {current.get('version')} is already deployed for {self.model}: "
                    "promote or roll it back first"
                )
            if version == entry.get("stable"):
                raise RefusedError(f"{version} is already the stable version of {self.model}")
            entry["canary"] = {**(current or {}), "version": version, "weight": 0, "shadow": shadow}

        previous, model = self._record(change)
        self._up(self._urns(names.ROLE_CANARY), previous)
        self._apply_route(model)

    def set_weight(self, weight: int) -> None:
        """Route ``weight`` percent to the canary (mirroring stops). Only the route changes."""
        if not 0 <= weight <= 100:
            raise RefusedError(f"weight must be between 0 and 100, got {weight}")
        model = self._config_model()
        canary = self._require_canary(model, "weight")
        self._apply_route(self._routed(model, canary.model_copy(update={"weight": weight, "shadow": False})))

    def promote(self) -> None:
        """Stable runs the canary's version (targeted up, rolled out), then gets all traffic."""

        def change(entry: dict[str, Any]) -> None:
            if not entry.get("canary"):
                raise RefusedError(f"no canary is deployed for {self.model}: nothing to promote")
            entry["stable"] = entry.pop("canary")["version"]

        previous, model = self._record(change)
        # Traffic stays where it is (mostly on the canary) while the stable Deployment rolls out.
        self._up(self._urns(names.ROLE_STABLE, ROLE_RESOURCES[:1]), previous)
        self._record_stable(model.stable, "promoted")
        self._apply_route(model)
        self._remove_canary_objects()

    def rollback(self) -> None:
        """All traffic to stable at once (the route only), then forget and remove the canary."""
        model = self._config_model()
        self._require_canary(model, "roll back")
        self._apply_route(self._routed(model, None))

        def change(entry: dict[str, Any]) -> None:
            entry.pop("canary", None)

        self._record(change)
        self._remove_canary_objects()

    def deploy_stable(self, version: str) -> None:
        """Replace the stable version without analysis (``rollback --to previous``, first deploy)."""

        def change(entry: dict[str, Any]) -> None:
            if entry.get("canary"):
                raise RefusedError(f"a canary is deployed for {self.model}: promote or roll it back first")
            entry["stable"] = version

        previous, _ = self._record(change)
        self._up(self._urns(names.ROLE_STABLE, ROLE_RESOURCES[:1]), previous)
        self._record_stable(version, "deployed-stable")

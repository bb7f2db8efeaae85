"""Test doubles of the Kubernetes API server and of a Pulumi stack (no cluster, no Pulumi CLI here).

``FakeApiServer`` stands in for the API server's server-side apply, to the depth the canary backend
relies on (Kubernetes "Server-Side Apply" docs, merge strategy): every field of an applied object is
owned by the field managers that applied it; a list is one field (atomic: HTTPRoute ``spec.rules``,
``parentRefs`` and ``hostnames`` are ``+listType=atomic`` in gateway-api v1.4.1); applying a different
value to a field another manager owns is a 409 conflict unless ``force``, which moves the ownership;
applying the same value shares it; a field the manager applied before and leaves out now is removed
when nobody else owns it. ``generation`` moves only when the spec changes. A non-apply write (``update``:
PUT/PATCH, e.g. the HPA controller writing ``spec.replicas`` through the scale subresource, recorded as
manager "kube-controller-manager") never conflicts, and "whenever a field's value does change, ownership
moves from its current manager to the manager making the change" (Kubernetes docs, Server-Side Apply,
field management). ``status`` is written by controllers (``set_status``) and owned by no applier. Every
call is recorded.

``FakeStack`` stands in for ``pulumi up`` with pulumi-kubernetes' server-side apply: the real program is
rendered under Pulumi's mocks with the stack config, and the targeted (or all) Deployments and routes
are applied to the fake API server as the provider would, with its own random-looking field manager
(provider.go fieldManagerName) and no force. For the ``ignore_changes`` paths the program declares
(recorded by ``mlship render``) it follows await.go handleSSAIgnoreFields (pulumi-kubernetes v4.32.0): on an
update, a field another manager owns and Pulumi does not is left out of the apply, otherwise the live value
is sent; a creation applies the program's value. Pulumi waits for a Deployment's rollout, so after an
applied Deployment the double sets ``status.readyReplicas`` as the Deployment controller would.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pulumi_helpers import PROGRAM

from mlship.canary.backends.kubernetes import MODELS_KEY, NAMESPACE_KEY, resource_urn
from mlship.k8s import render as renderer

PULUMI_MANAGER = "pulumi-kubernetes-4f2a9c1e"
API_VERSIONS = {
    "Deployment": "apps/v1",
    "Service": "v1",
    "PodDisruptionBudget": "policy/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "HTTPRoute": "gateway.networking.k8s.io/v1",
}


class Conflict(Exception):
    """HTTP 409 from a server-side apply: fields owned by another manager with another value."""

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{path} owned by {owner}" for path, owner in fields))
        self.fields = fields


Path = tuple[str, ...]


def leaves(obj: Any, prefix: Path = ()) -> dict[Path, Any]:
    """Field path -> value; maps are granular, lists atomic (one field)."""
    if isinstance(obj, dict) and obj:
        out: dict[Path, Any] = {}
        for key, value in obj.items():
            out |= leaves(value, (*prefix, key))
        return out
    return {prefix: obj}


def _set(obj: dict[str, Any], path: Path, value: Any) -> None:
    *parents, last = path
    for key in parents:
        obj = obj.setdefault(key, {})
    obj[last] = copy.deepcopy(value)


def _delete(obj: dict[str, Any], path: Path) -> None:
    *parents, last = path
    for key in parents:
        obj = obj.get(key, {})
    obj.pop(last, None)


def dotted(path: Path) -> str:
    return ".".join(path)


IDENTITY = {("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace")}


@dataclass
class Stored:
    obj: dict[str, Any]
    owners: dict[Path, set[str]] = field(default_factory=dict)  # field path -> managers
    generation: int = 1


@dataclass
class Call:
    verb: str
    key: tuple[str, str, str, str]
    body: dict[str, Any] | None = None
    field_manager: str | None = None
    force: bool | None = None


class FakeApiServer:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str, str], Stored] = {}
        self.calls: list[Call] = []
        self._lock = threading.Lock()

    @staticmethod
    def key(obj: dict[str, Any]) -> tuple[str, str, str, str]:
        meta = obj["metadata"]
        return (obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"])

    # --- ClusterApi -------------------------------------------------------------------------------
    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        key = (api_version, kind, namespace, name)
        self.calls.append(Call("get", key))
        stored = self.objects.get(key)
        return None if stored is None else self.view(stored)

    def apply(self, body: dict[str, Any], *, field_manager: str, force: bool) -> dict[str, Any]:
        with self._lock:
            key = self.key(body)
            self.calls.append(Call("apply", key, copy.deepcopy(body), field_manager, force))
            stored = self.objects.get(key)
            if stored is None:
                stored = self.objects[key] = Stored(obj={})
            live = leaves(stored.obj)
            applied = {p: v for p, v in leaves(body).items() if p not in IDENTITY}
            conflicts = [
                (path, owner)
                for path, value in applied.items()
                for owner in stored.owners.get(path, set())
                if owner != field_manager and live.get(path) != value
            ]
            if conflicts and not force:
                raise Conflict([(dotted(path), owner) for path, owner in conflicts])
            before = copy.deepcopy(stored.obj.get("spec"))
            for path, value in applied.items():
                if live.get(path) != value:
                    stored.owners[path] = set()  # a changed value: only the applier owns it now
                stored.owners.setdefault(path, set()).add(field_manager)
                _set(stored.obj, path, value)
            for path in IDENTITY:
                value = leaves(body).get(path)
                if value is not None:
                    _set(stored.obj, path, value)
            for path, owners in list(stored.owners.items()):
                if field_manager in owners and path not in applied:
                    owners.discard(field_manager)
                    if not owners:
                        del stored.owners[path]
                        _delete(stored.obj, path)
            if before is not None and stored.obj.get("spec") != before:
                stored.generation += 1
            return self.view(stored)

    def update(
        self, api_version: str, kind: str, namespace: str, name: str, changes: dict[str, Any], *, manager: str
    ) -> dict[str, Any]:
        """A non-apply write (PUT/PATCH) of dotted ``changes``: never a conflict; changed fields move to
        ``manager`` alone (e.g. the HPA controller scaling a Deployment through its scale subresource)."""
        with self._lock:
            key = (api_version, kind, namespace, name)
            self.calls.append(Call("update", key, copy.deepcopy(changes), manager))
            stored = self.objects[key]
            live = leaves(stored.obj)
            before = copy.deepcopy(stored.obj.get("spec"))
            for dotted_path, value in changes.items():
                path = tuple(dotted_path.split("."))
                if live.get(path) != value:
                    stored.owners[path] = {manager}
                    _set(stored.obj, path, value)
            if stored.obj.get("spec") != before:
                stored.generation += 1
            return self.view(stored)

    def set_status(self, api_version: str, kind: str, namespace: str, name: str, **status: Any) -> None:
        """What a controller writes to ``status`` (e.g. the Deployment controller's ``readyReplicas``)."""
        stored = self.objects[(api_version, kind, namespace, name)]
        stored.obj.setdefault("status", {}).update(copy.deepcopy(status))

    # --- for tests ------------------------------------------------------------------------------
    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        self.calls.append(Call("delete", (api_version, kind, namespace, name)))
        self.objects.pop((api_version, kind, namespace, name), None)

    @staticmethod
    def view(stored: Stored) -> dict[str, Any]:
        obj = copy.deepcopy(stored.obj)
        obj["metadata"]["generation"] = stored.generation
        managers: dict[str, list[str]] = {}
        for path, owners in stored.owners.items():
            for owner in owners:
                managers.setdefault(owner, []).append(dotted(path))
        obj["metadata"]["managedFields"] = [
            {"manager": m, "operation": "Apply", "fields": sorted(p)} for m, p in sorted(managers.items())
        ]
        return obj

    def owners(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, set[str]]:
        """Dotted field path -> managers."""
        stored = self.objects[(api_version, kind, namespace, name)]
        return {dotted(path): set(owners) for path, owners in stored.owners.items()}


class FakeStack:
    """A Pulumi stack: in-memory config; ``up`` renders the real program and applies it to ``api``."""

    def __init__(self, api: FakeApiServer, stack: str, models: list[dict[str, Any]]) -> None:
        self.api = api
        self.stack = stack
        self.project = renderer.project_name(PROGRAM)
        self.config: dict[str, Any] = {MODELS_KEY: copy.deepcopy(models), NAMESPACE_KEY: "mlship"}
        self.ups: list[list[str] | None] = []
        self.fail_up = False
        self.writes: list[Any] = []
        self.honour_ignore_changes = True  # False: as if the program declared no ignore_changes
        self._lock = threading.Lock()
        self.managed: set[str] = set()  # URNs in the stack's state

    def get_config(self, key: str) -> Any:
        return copy.deepcopy(self.config.get(key))

    def set_config(self, key: str, value: Any) -> None:
        self.writes.append(copy.deepcopy(value))
        self.config[key] = copy.deepcopy(value)

    @contextlib.contextmanager
    def config_lock(self) -> Iterator[None]:
        with self._lock:
            yield

    def urn(self, parent_type: str, type_: str, name: str) -> str:
        return resource_urn(self.stack, self.project, parent_type, type_, name)

    def up(self, targets: list[str] | None = None) -> None:
        self.ups.append(None if targets is None else list(targets))
        self.api.calls.append(Call("up", ("pulumi", "up", self.stack, ""), {"targets": targets}))
        if self.fail_up:
            raise RuntimeError("update failed: 1 error (simulated)")
        result = renderer.run_program(self.stack, PROGRAM, {"models": self.config[MODELS_KEY]})
        parents = {
            "Deployment": "mlship:k8s:ModelDeployment$kubernetes:apps/v1:Deployment",
            "Service": "mlship:k8s:ModelDeployment$kubernetes:core/v1:Service",
            "PodDisruptionBudget": "mlship:k8s:ModelDeployment$kubernetes:policy/v1:PodDisruptionBudget",
            "HorizontalPodAutoscaler": (
                "mlship:k8s:ModelDeployment$kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
            ),
            "HTTPRoute": "mlship:k8s:CanaryRoute$kubernetes:gateway.networking.k8s.io/v1:HTTPRoute",
        }
        declared: dict[str, tuple[dict[str, Any], list[str]]] = {}
        for manifest in result.manifests:
            if manifest["kind"] in parents:
                name = manifest["metadata"]["name"]
                logical = f"{name}-route" if manifest["kind"] == "HTTPRoute" else name
                type_ = parents[manifest["kind"]].split("$", 1)[1]
                ignored = result.ignore_changes.get(f"{type_}::{logical}", [])
                declared[
                    f"urn:pulumi:{self.stack}::{self.project}::{parents[manifest['kind']]}::{logical}"
                ] = (manifest, ignored)
        wanted = set(declared) | self.managed if targets is None else set(targets)
        for urn in sorted(wanted):
            if urn not in declared:  # in the state, no longer in the program: deleted
                if urn in self.managed:
                    kind = urn.split("::")[2].rsplit(":", 1)[-1]
                    name = urn.rsplit("::", 1)[-1]
                    self.api.delete(API_VERSIONS[kind], kind, "mlship", name)
                    self.managed.discard(urn)
                continue
            manifest, ignored = declared[urn]
            body = copy.deepcopy(manifest)
            if self.honour_ignore_changes:
                body = self._ignoring(body, ignored)
            applied = self.api.apply(body, field_manager=PULUMI_MANAGER, force=False)
            self.managed.add(urn)
            if manifest["kind"] == "Deployment":  # Pulumi waits for the rollout: the pods are ready
                meta = applied["metadata"]
                replicas = applied["spec"].get("replicas", 1)
                self.api.set_status(
                    "apps/v1", "Deployment", meta["namespace"], meta["name"], readyReplicas=replicas
                )

    def _ignoring(self, body: dict[str, Any], paths: list[str]) -> dict[str, Any]:
        """handleSSAIgnoreFields: what Pulumi sends for ``ignore_changes`` paths on an update."""
        stored = self.api.objects.get(FakeApiServer.key(body))
        if stored is None:
            return body  # creation: the program's values
        for dotted_path in paths:
            path = tuple(dotted_path.split("."))
            owners = stored.owners.get(path, set())
            live = leaves(stored.obj)
            if owners - {PULUMI_MANAGER} and PULUMI_MANAGER not in owners:
                _delete(body, path)  # owned by another manager only: left out of Pulumi's apply
            elif path in live:
                _set(body, path, live[path])  # the live value
        return body

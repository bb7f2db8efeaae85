"""Offline validation of rendered manifests: Kubernetes schemas and CRD schemas.

* Core kinds: ``kubernetes-validate`` in strict mode (unknown fields are errors) against
  ``KUBERNETES_VERSION``.
* Custom resources (HTTPRoute, Gateway, ServiceMonitor, PrometheusRule, ...): ``jsonschema``
  against the CRD's ``openAPIV3Schema`` kept in ``pulumi/crds/`` (each file names its upstream
  source and version). As the API server does with strict field validation, a field the schema
  does not declare is an error (objects get ``additionalProperties: false`` unless the schema
  preserves unknown fields). CEL rules (``x-kubernetes-validations``) need an API server and are
  not evaluated.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

# The Kubernetes minor of the cluster the roles install (k3s v1.34.x, versions.yaml `kubernetes.minor`).
KUBERNETES_VERSION = "1.34"

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class Problem:
    """One validation failure of one object."""

    object: str  # kind/namespace/name
    message: str

    def __str__(self) -> str:
        return f"{self.object}: {self.message}"


@dataclass(frozen=True)
class CrdSchema:
    group: str
    version: str
    kind: str
    source: str  # upstream file the schema was taken from, with its release
    schema: dict[str, Any]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


def ref(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    parts = [obj.get("kind", "?"), meta.get("namespace", ""), meta.get("name", "?")]
    return "/".join(p for p in parts if p)


def load_crd_schemas(crd_dir: Path) -> dict[tuple[str, str], CrdSchema]:
    """(apiVersion, kind) -> schema, from every CustomResourceDefinition YAML in ``crd_dir``."""
    schemas: dict[tuple[str, str], CrdSchema] = {}
    for path in sorted(crd_dir.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            annotations = doc["metadata"].get("annotations", {})
            source = annotations.get("mlship.io/source", path.name)
            for version in spec["versions"]:
                schema = strict_schema(version["schema"]["openAPIV3Schema"])
                crd = CrdSchema(spec["group"], version["name"], spec["names"]["kind"], source, schema)
                schemas[(crd.api_version, crd.kind)] = crd
    return schemas


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Copy of an openAPIV3Schema where undeclared fields are errors (strict field validation)."""
    result = copy.deepcopy(schema)

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if (
                node.get("type") == "object"
                and "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(result)
    return result


def validate_core(obj: dict[str, Any]) -> list[Problem]:
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path) or "(root)"
        return [Problem(ref(obj), f"{path}: {exc.message}")]
    return []


def is_core(obj: dict[str, Any]) -> bool:
    """True if kubernetes-validate has a schema for this kind (built-in Kubernetes API)."""
    return _has_core_schema(str(obj.get("apiVersion")), str(obj.get("kind")))


@functools.cache
def _has_core_schema(api_version: str, kind: str) -> bool:
    probe = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "probe"}}
    try:
        kubernetes_validate.validate(probe, KUBERNETES_VERSION, strict=False)
    except kubernetes_validate.SchemaNotFoundError:
        return False
    except kubernetes_validate.ValidationError:
        return True
    return True


def validate_custom(obj: dict[str, Any], schemas: dict[tuple[str, str], CrdSchema]) -> list[Problem]:
    key = (obj.get("apiVersion", ""), obj.get("kind", ""))
    crd = schemas.get(key)
    if crd is None:
        return [Problem(ref(obj), f"no CRD schema for {key[0]} {key[1]} in the repository")]
    problems = _metadata_problems(obj)
    validator = jsonschema.Draft7Validator(crd.schema)
    for err in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(p) for p in err.absolute_path) or "(root)"
        problems.append(Problem(ref(obj), f"{path}: {err.message} [{crd.source}]"))
    return problems


def _metadata_problems(obj: dict[str, Any]) -> list[Problem]:
    """The API server validates ObjectMeta of custom resources itself; the CRD schema does not."""
    meta = obj.get("metadata") or {}
    problems = []
    name = meta.get("name")
    if not isinstance(name, str) or not _DNS_SUBDOMAIN.match(name) or len(name) > 253:
        problems.append(Problem(ref(obj), f"metadata.name {name!r} is not a DNS-1123 subdomain"))
    namespace = meta.get("namespace")
    if namespace is not None and (not isinstance(namespace, str) or not _DNS_LABEL.match(namespace)):
        problems.append(Problem(ref(obj), f"metadata.namespace {namespace!r} is not a DNS-1123 label"))
    for field in ("labels", "annotations"):
        values = meta.get(field, {})
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            problems.append(Problem(ref(obj), f"metadata.{field} must map strings to strings"))
    return problems


def validate_all(objects: Iterable[dict[str, Any]], crd_dir: Path) -> tuple[int, int, list[Problem]]:
    """Validate every object: (core objects checked, custom resources checked, problems)."""
    schemas = load_crd_schemas(crd_dir)
    core = custom = 0
    problems: list[Problem] = []
    for obj in objects:
        if is_core(obj):
            core += 1
            problems += validate_core(obj)
        else:
            custom += 1
            problems += validate_custom(obj, schemas)
    return core, custom, problems

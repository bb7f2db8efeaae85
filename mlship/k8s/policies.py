"""Pulumi policies (CrossGuard) for mlship's Kubernetes stacks; the pack is ``pulumi/policy``.

Run with ``pulumi preview --policy-pack pulumi/policy``. Each policy is a plain function of a
resource's inputs, so the unit tests exercise them on rendered objects without the Pulumi CLI.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "kubernetes:core/v1:Pod": ("spec",),
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
HTTPROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
SERVICE = "kubernetes:core/v1:Service"
DEV_STACKS = ("dev",)


def _dig(props: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = props
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def pod_spec(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    path = POD_SPEC_PATHS.get(resource_type)
    spec = _dig(props, path) if path else None
    return spec if isinstance(spec, Mapping) else None


def containers(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Regular and init containers (both run code from an image with the pod's privileges)."""
    for key in ("initContainers", "containers"):
        yield from spec.get(key) or []


def image_tag_problem(image: str) -> str | None:
    """Why ``image`` is not pinned, or None: a digest, or an explicit tag other than ``latest``."""
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image {image!r} has no tag (means latest)"
    if last.rsplit(":", 1)[1] == "latest":
        return f"image {image!r} uses the latest tag"
    return None


def check_no_latest(args: ResourceValidationArgs, report: ReportViolation) -> None:
    spec = pod_spec(args.resource_type, args.props)
    if spec is None:
        return
    for container in containers(spec):
        problem = image_tag_problem(str(container.get("image", "")))
        if problem:
            report(f"container {container.get('name')!r}: {problem}; pin a version or digest", None)


def check_limits(args: ResourceValidationArgs, report: ReportViolation) -> None:
    spec = pod_spec(args.resource_type, args.props)
    if spec is None:
        return
    for container in containers(spec):
        resources = container.get("resources") or {}
        for section in ("requests", "limits"):
            missing = [r for r in ("cpu", "memory") if not (resources.get(section) or {}).get(r)]
            if missing:
                report(f"container {container.get('name')!r} has no resources.{section} for {missing}", None)


def check_non_root(args: ResourceValidationArgs, report: ReportViolation) -> None:
    spec = pod_spec(args.resource_type, args.props)
    if spec is None:
        return
    pod_ctx = spec.get("securityContext") or {}
    for container in containers(spec):
        ctx = container.get("securityContext") or {}
        non_root = ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot"))
        uid = ctx.get("runAsUser", pod_ctx.get("runAsUser"))
        if non_root is not True:
            report(f"container {container.get('name')!r} does not set runAsNonRoot: true", None)
        if uid == 0:
            report(f"container {container.get('name')!r} runs as uid 0", None)
        if ctx.get("allowPrivilegeEscalation") is not False:
            report(f"container {container.get('name')!r} does not forbid privilege escalation", None)


def check_probes(args: ResourceValidationArgs, report: ReportViolation) -> None:
    spec = pod_spec(args.resource_type, args.props)
    if spec is None:
        return
    for container in spec.get("containers") or []:  # init containers run to completion: no probes
        missing = [p for p in ("livenessProbe", "readinessProbe") if not container.get(p)]
        if missing:
            report(f"container {container.get('name')!r} has no {' and '.join(missing)}", None)


def check_weights(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != HTTPROUTE:
        return
    for index, rule in enumerate(_dig(args.props, ("spec", "rules")) or []):
        refs = rule.get("backendRefs") or []
        if not refs:
            continue
        total = sum(int(ref.get("weight", 1)) for ref in refs)  # Gateway API default weight is 1
        if total != 100:
            report(
                f"rule {index}: backendRefs weights sum to {total}, not 100 (weights are percentages)", None
            )


def stack_of(urn: str) -> str:
    """``urn:pulumi:<stack>::<project>::<type>::<name>`` -> stack."""
    parts = urn.split(":", 2)
    return parts[2].split("::", 1)[0] if len(parts) == 3 and parts[0] == "urn" else ""


def check_no_load_balancer_in_dev(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != SERVICE:
        return
    dev_stacks = args.get_config().get("devStacks", list(DEV_STACKS))
    if stack_of(args.urn) in dev_stacks and _dig(args.props, ("spec", "type")) == "LoadBalancer":
        report("Service of type LoadBalancer in a dev stack: use ClusterIP behind the gateway", None)


def _policy(name: str, description: str, validate: Any, **extra: Any) -> ResourceValidationPolicy:
    return ResourceValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
        **extra,
    )


POLICIES: list[Policy] = [
    _policy(
        "no-latest-tag", "Container images are pinned (version tag or digest, never latest).", check_no_latest
    ),
    _policy("limits-set", "Every container sets CPU and memory requests and limits.", check_limits),
    _policy("non-root", "Containers run as non-root without privilege escalation.", check_non_root),
    _policy("probes-present", "Every container has liveness and readiness probes.", check_probes),
    _policy("weights-sum-100", "HTTPRoute backend weights are percentages summing to 100.", check_weights),
    _policy(
        "no-loadbalancer-in-dev",
        "No Service of type LoadBalancer in dev stacks.",
        check_no_load_balancer_in_dev,
    ),
]

"""Stack configuration (``Pulumi.<stack>.yaml``), validated before any resource is declared.

Every key lives in the ``mlship`` config namespace. Validation is strict: an unknown key or a bad
value fails with one line per problem naming the dotted key (``mlship:models.0.canary.weight: ...``),
so ``pulumi up`` and ``mlship render`` stop before touching anything.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from mlship.errors import ConfigError

NAMESPACE = "mlship"  # Pulumi config namespace: keys are "mlship:<key>"
SECRET_KEYS = frozenset({"grafanaAdminPassword"})

# Pinned chart versions (a stack may override them, but only with exact versions). Each one is listed in
# versions.yaml with the upstream tag and file it was checked in (tests/pulumi/test_versions.py).
KUBE_PROMETHEUS_STACK_CHART = "88.0.0"  # prometheus-community; ships prometheus-operator v0.93.0
LOKI_CHART = "8.1.3"  # grafana-community; Loki 3.6.7 (8.2.0 was never released)
ALLOY_CHART = "1.9.0"  # grafana; Alloy v1.16.3, the host Alloy's minor
ENVOY_GATEWAY_CHART = "v1.7.5"  # oci://docker.io/envoyproxy/gateway-helm; Gateway API v1.4.1

DnsLabel = Annotated[str, Field(pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length=63)]
# Model names end up in "<name>-stable"/"<name>-canary" Service names (DNS-1035, <= 63 chars).
ModelName = Annotated[str, Field(pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length=40)]
# A version is used as an image tag: OCI tag grammar, and never a moving tag.
Version = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")]
Digest = Annotated[str, Field(pattern=r"^sha256:[a-f0-9]{64}$")]
ImageRepository = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+$|^[a-z0-9]+([._-][a-z0-9]+)*$"
    ),
]
ChartVersion = Annotated[str, Field(pattern=r"^v?\d+\.\d+\.\d+$")]
Duration = Annotated[str, Field(pattern=r"^([0-9]+(ms|s|m|h|d|w|y))+$")]
Percent = Annotated[int, Field(ge=0, le=100)]
Quantity = Annotated[str, Field(pattern=r"^\d+(\.\d+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")]
EnvName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")]
Hostname = Annotated[
    str, Field(pattern=r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
]

MOVING_TAGS = frozenset({"latest", "stable", "main", "master", "edge", "nightly"})
RESERVED_ENV = frozenset(
    {"MLSHIP_MODEL_TAG", "MLSHIP_MODEL_NAME", "MLSHIP_ROLE", "BENTOML_HOME", "BENTOML_DO_NOT_TRACK", "TMPDIR"}
)

_QUANTITY_SUFFIX = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
}


def parse_quantity(value: str) -> Decimal:
    """A Kubernetes quantity (``250m``, ``1.5``, ``512Mi``) as a number of base units."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([a-zA-Z]*)", value)
    if not match or match.group(2) not in _QUANTITY_SUFFIX:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    return Decimal(match.group(1)) * _QUANTITY_SUFFIX[match.group(2)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ComputeResources(_Strict):
    cpu: Quantity
    memory: Quantity


class Resources(_Strict):
    """Requests and limits of one model server container."""

    requests: ComputeResources = ComputeResources(cpu="250m", memory="512Mi")
    limits: ComputeResources = ComputeResources(cpu="1", memory="1Gi")

    @model_validator(mode="after")
    def _limits_cover_requests(self) -> Resources:
        for kind in ("cpu", "memory"):
            request, limit = getattr(self.requests, kind), getattr(self.limits, kind)
            if parse_quantity(limit) < parse_quantity(request):
                raise ValueError(f"limits.{kind} ({limit}) is below requests.{kind} ({request})")
        return self


class Canary(_Strict):
    """The candidate version next to stable. ``shadow`` mirrors stable's traffic to it (weight 0)."""

    version: Version
    weight: Percent = 0
    shadow: bool = False
    shadow_percent: Annotated[int, Field(ge=1, le=100, alias="shadowPercent")] = 100

    @model_validator(mode="after")
    def _shadow_has_no_weight(self) -> Canary:
        if self.shadow and self.weight != 0:
            raise ValueError(
                f"shadow mirrors traffic to the canary, so its weight must be 0 (got {self.weight})"
            )
        return self


class Model(_Strict):
    """One model served behind the gateway: a stable Deployment and, during a release, a canary."""

    name: ModelName
    image: ImageRepository
    stable: Version
    canary: Canary | None = None
    # BentoML model name baked into the image; MLSHIP_MODEL_TAG = "<bento_model>:<version>".
    bento_model: Annotated[str | None, Field(alias="bentoModel", pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")] = (
        None
    )
    # Optional immutable digests per version: the image is then referenced as repo@sha256:...
    digests: dict[Version, Digest] = {}
    replicas: Annotated[int, Field(ge=1, le=100)] = 2
    max_replicas: Annotated[int, Field(ge=1, le=500, alias="maxReplicas")] = 6
    canary_replicas: Annotated[int, Field(ge=1, le=100, alias="canaryReplicas")] = 1
    target_cpu_utilization: Annotated[int, Field(ge=10, le=95, alias="targetCpuUtilization")] = 70
    resources: Resources = Resources()
    path_prefix: Annotated[str | None, Field(alias="pathPrefix", pattern=r"^(/[a-z0-9][-a-z0-9._]*)*$")] = (
        None
    )
    hostnames: list[Hostname] = []
    scrape_interval: Annotated[Duration, Field(alias="scrapeInterval")] = "15s"
    env: dict[EnvName, str] = {}

    @field_validator("stable")
    @classmethod
    def _not_moving(cls, version: str) -> str:
        return _reject_moving_tag(version)

    @field_validator("digests")
    @classmethod
    def _digest_keys_not_moving(cls, digests: dict[str, str]) -> dict[str, str]:
        for version in digests:
            _reject_moving_tag(version)
        return digests

    @field_validator("env")
    @classmethod
    def _no_reserved_env(cls, env: dict[str, str]) -> dict[str, str]:
        reserved = sorted(RESERVED_ENV & env.keys())
        if reserved:
            raise ValueError(f"{reserved} are set by mlship and cannot be overridden")
        return env

    @model_validator(mode="after")
    def _consistent(self) -> Model:
        if self.max_replicas < self.replicas:
            raise ValueError(f"maxReplicas ({self.max_replicas}) is below replicas ({self.replicas})")
        if self.canary is not None:
            _reject_moving_tag(self.canary.version)
            if self.canary.version == self.stable:
                raise ValueError(f"canary.version equals the stable version {self.stable!r}")
        return self

    @property
    def route_prefix(self) -> str:
        """Path prefix the gateway serves this model under ("" = the root)."""
        return f"/{self.name}" if self.path_prefix is None else self.path_prefix

    @property
    def model_tag_name(self) -> str:
        return self.bento_model or self.name

    def image_ref(self, version: str) -> str:
        """Pinned image reference of ``version``: by digest when known, else its immutable tag."""
        digest = self.digests.get(version)
        return f"{self.image}@{digest}" if digest else f"{self.image}:{version}"

    def versions(self) -> dict[str, str]:
        """Role -> version currently deployed."""
        roles = {"stable": self.stable}
        if self.canary is not None:
            roles["canary"] = self.canary.version
        return roles


class Tls(_Strict):
    secret_name: Annotated[DnsLabel, Field(alias="secretName")]


class Gateway(_Strict):
    """The Gateway API Gateway in front of the models, and (optionally) its implementation."""

    name: DnsLabel = "mlship"
    class_name: Annotated[DnsLabel, Field(alias="className")] = "envoy-gateway"
    # Install Envoy Gateway (Helm) and its GatewayClass. Off: use an existing class (e.g. cilium).
    install: bool = True
    chart_version: Annotated[ChartVersion, Field(alias="chartVersion")] = ENVOY_GATEWAY_CHART
    namespace: DnsLabel = "envoy-gateway-system"
    hostname: Hostname | None = None
    tls: Tls | None = None
    # Labels of the data-plane pods allowed to reach the models (NetworkPolicy). Default: Envoy's.
    proxy_pod_labels: Annotated[dict[str, str] | None, Field(alias="proxyPodLabels")] = None

    @property
    def listener_port(self) -> int:
        return 443 if self.tls else 80


class Monitoring(_Strict):
    """kube-prometheus-stack (Prometheus, Alertmanager, Grafana), Loki and Alloy."""

    enabled: bool = True
    namespace: DnsLabel = "monitoring"
    # Node-level collectors (node-exporter, Alloy) need host access: their own privileged namespace.
    agents_namespace: Annotated[DnsLabel, Field(alias="agentsNamespace")] = "monitoring-agents"
    release_name: Annotated[DnsLabel, Field(alias="releaseName")] = "kube-prometheus-stack"
    kube_prometheus_stack_version: Annotated[ChartVersion, Field(alias="kubePrometheusStackVersion")] = (
        KUBE_PROMETHEUS_STACK_CHART
    )
    loki_version: Annotated[ChartVersion, Field(alias="lokiVersion")] = LOKI_CHART
    alloy_version: Annotated[ChartVersion, Field(alias="alloyVersion")] = ALLOY_CHART
    prometheus_retention: Annotated[Duration, Field(alias="prometheusRetention")] = "15d"
    prometheus_storage: Annotated[Quantity, Field(alias="prometheusStorage")] = "20Gi"
    loki_storage: Annotated[Quantity, Field(alias="lokiStorage")] = "10Gi"
    loki_retention: Annotated[Duration, Field(alias="lokiRetention")] = "168h"
    grafana_admin_user: Annotated[str, Field(alias="grafanaAdminUser", min_length=1)] = "admin"
    # Port of the node exporter every k3s node runs on the host (roles/node_exporter); Prometheus scrapes it.
    node_exporter_port: Annotated[int, Field(alias="nodeExporterPort", ge=1, le=65535)] = 9100


class StackConfig(_Strict):
    """Everything under the ``mlship`` namespace of one stack file."""

    environment: Literal["dev", "staging", "prod"]
    namespace: DnsLabel = "mlship"
    models: Annotated[list[Model], Field(min_length=1)]
    gateway: Gateway = Gateway()
    monitoring: Monitoring = Monitoring()
    # Secret config (`pulumi config set --secret mlship:grafanaAdminPassword ...`); generated if unset.
    grafana_admin_password: Annotated[str | None, Field(alias="grafanaAdminPassword", min_length=12)] = None

    @model_validator(mode="after")
    def _unique(self) -> StackConfig:
        names = [m.name for m in self.models]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"model names must be unique, repeated: {duplicates}")
        routes = [(tuple(m.hostnames), m.route_prefix) for m in self.models]
        if len(set(routes)) != len(routes):
            raise ValueError("two models share the same hostnames and pathPrefix")
        namespaces = {self.namespace, self.gateway.namespace}
        if self.monitoring.enabled:
            namespaces |= {self.monitoring.namespace, self.monitoring.agents_namespace}
        if len(namespaces) != 2 + 2 * self.monitoring.enabled:
            raise ValueError("namespace, gateway.namespace and the monitoring namespaces must differ")
        return self

    def public_dump(self) -> dict[str, Any]:
        """The configuration without secrets (for logs and rendered output)."""
        return self.model_dump(by_alias=True, exclude={"grafana_admin_password"}, exclude_none=True)


def _reject_moving_tag(version: str) -> str:
    if version.lower() in MOVING_TAGS:
        raise ValueError(f"{version!r} is a moving tag; pin an immutable version or digest")
    return version


def validate(raw: dict[str, Any], source: str = "stack config") -> StackConfig:
    """Validate the ``mlship`` namespace (keys without the ``mlship:`` prefix) or raise ConfigError."""
    try:
        return StackConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format(source, exc)) from exc


_MODELS = TypeAdapter(Annotated[list[Model], Field(min_length=1)])


def validate_models(models: list[dict[str, Any]]) -> list[Model]:
    """Validate a ``mlship:models`` value on its own (what the canary backend writes)."""
    try:
        return _MODELS.validate_python(models)
    except ValidationError as exc:
        lines = ["mlship:models: invalid"]
        for err in exc.errors(include_url=False, include_input=False):
            lines.append(f"  {NAMESPACE}:models.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from exc


def _format(source: str, exc: ValidationError) -> str:
    lines = [f"{source}: invalid configuration"]
    for err in exc.errors(include_url=False, include_input=False):
        key = ".".join(str(p) for p in err["loc"])
        lines.append(f"  {NAMESPACE}:{key}: {err['msg']}" if key else f"  {NAMESPACE}: {err['msg']}")
    return "\n".join(lines)


def split_namespace(config: dict[str, Any], source: str) -> tuple[dict[str, Any], set[str]]:
    """Keep the ``mlship:`` keys (prefix removed). Secure values become a placeholder + secret key.

    Keys of other namespaces (``kubernetes:context``, ``pulumi:tags``) belong to providers and are
    left alone; a bare key without namespace is an error, as in Pulumi.
    """
    raw: dict[str, Any] = {}
    secret: set[str] = set()
    for full_key, value in config.items():
        namespace, sep, key = str(full_key).partition(":")
        if not sep:
            raise ConfigError(
                f"{source}: config key {full_key!r} has no namespace (expected mlship:{full_key})"
            )
        if namespace != NAMESPACE:
            continue
        if isinstance(value, dict) and set(value) == {"secure"}:
            secret.add(key)
            value = "[secret: encrypted in the stack file]"
        raw[key] = value
    return raw, secret


def read_stack_file(path: Path) -> tuple[dict[str, Any], set[str]]:
    """Read ``Pulumi.<stack>.yaml``: (``mlship`` keys without prefix, keys whose value is encrypted)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        known = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in path.parent.glob("Pulumi.*.yaml"))
        hint = (
            f"stacks here: {', '.join(known)}"
            if known
            else "run from the mlship checkout, whose pulumi/ holds the stack files"
        )
        raise ConfigError(f"{path}: stack file not found ({hint})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("config", {}), dict):
        raise ConfigError(f"{path}: expected a mapping with a `config:` mapping")
    return split_namespace(data.get("config") or {}, path.name)


def from_pulumi_runtime() -> StackConfig:
    """Inside a Pulumi program: every ``mlship:*`` key the engine passed, validated.

    Reads the whole namespace (not key by key) so that a misspelt key is reported instead of
    silently ignored. Structured values arrive JSON-encoded, as the CLI passes them.
    """
    from pulumi import runtime

    config: dict[str, Any] = {**runtime.config.get_config_env(), **runtime.config.CONFIG.get()}
    decoded: dict[str, Any] = {}
    for key, value in config.items():
        decoded[key] = _decode(value)
    raw, _ = split_namespace(decoded, "stack config")
    return validate(raw, source=f"Pulumi.{_stack_name()}.yaml")


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value  # scalars stay strings: pydantic coerces "3" / "true" where a number / bool is expected


def _stack_name() -> str:
    import pulumi

    return pulumi.get_stack()

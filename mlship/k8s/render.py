"""Run the Pulumi program under Pulumi's mocks and write what ``pulumi up`` would create.

No Kubernetes API and no Pulumi CLI are involved: ``pulumi.runtime.set_mocks`` replaces the engine
(Pulumi's documented unit-test method) and every ``kubernetes:*`` resource's inputs are captured.
Kubernetes objects are written one YAML file each under ``manifests/``; Helm releases (whose chart
contents only exist at deploy time) are written under ``helm/`` with chart, version, repository and
values. Secret outputs are redacted: the rendered files never contain a secret.
"""

from __future__ import annotations

import json
import runpy
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import rpc

from mlship.errors import ConfigError, MlshipError
from mlship.k8s import stack_config
from mlship.k8s.stack_config import StackConfig

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
HELM_CHART = "kubernetes:helm.sh/v4:Chart"
REDACTED = "<secret: redacted by mlship render>"
MARKER = ".mlship-render"
MANIFESTS = "manifests"
HELM = "helm"


@dataclass(frozen=True)
class Registered:
    """One resource the program registered (type token, logical name, inputs as Pulumi saw them)."""

    type: str
    name: str
    inputs: dict[str, Any]


@dataclass
class RenderResult:
    stack: str
    config: StackConfig
    resources: list[Registered]
    # "type::name" -> the resource's ignore_changes (what `pulumi up` leaves to others), when set
    ignore_changes: dict[str, list[str]] = field(default_factory=dict)
    manifests: list[dict[str, Any]] = field(default_factory=list)
    releases: list[dict[str, Any]] = field(default_factory=list)
    secret_paths: list[str] = field(default_factory=list)  # "Kind/ns/name:field" of redacted values

    @property
    def resource_count(self) -> int:
        return len(self.resources)


class CaptureMocks(pulumi.runtime.Mocks):
    """Record every resource registration; answer like a provider that echoes its inputs."""

    def __init__(self) -> None:
        self.registered: list[Registered] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.registered.append(Registered(args.typ, args.name, args.inputs))
        state = dict(args.inputs)
        if args.typ == "random:index/randomPassword:RandomPassword":
            # A mock value; the program must treat it as a secret output like the real one.
            state |= {"result": f"mock-password-{args.name}", "bcryptHash": "mock"}
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], None]:
        raise MlshipError(
            f"the program called provider function {args.token}, which mlship render cannot mock"
        )


def project_name(program_dir: Path) -> str:
    path = program_dir / "Pulumi.yaml"
    try:
        return str(yaml.safe_load(path.read_text(encoding="utf-8"))["name"])
    except (OSError, KeyError, TypeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not a Pulumi project file ({exc})") from exc


def load_config(
    stack: str, program_dir: Path, overrides: Mapping[str, Any] | None = None
) -> tuple[StackConfig, dict[str, Any], set[str]]:
    """Validated config of ``stack`` (+ overrides of ``mlship`` keys), the raw keys and secret keys."""
    raw, secret = stack_config.read_stack_file(program_dir / f"Pulumi.{stack}.yaml")
    raw = {**raw, **(overrides or {})}
    return stack_config.validate(raw, source=f"Pulumi.{stack}.yaml"), raw, secret


def run_program(stack: str, program_dir: Path, overrides: Mapping[str, Any] | None = None) -> RenderResult:
    """Validate the stack config, then run ``program_dir/__main__.py`` under mocks."""
    config, raw, secret = load_config(stack, program_dir, overrides)
    mocks = CaptureMocks()
    pulumi.runtime.set_mocks(mocks, project=project_name(program_dir), stack=stack, preview=False)
    pulumi.runtime.set_all_config(
        {f"{stack_config.NAMESPACE}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()},
        secret_keys=[f"{stack_config.NAMESPACE}:{k}" for k in secret | stack_config.SECRET_KEYS],
    )
    main = program_dir / "__main__.py"
    if not main.is_file():
        raise ConfigError(f"{main}: Pulumi program not found")

    ignored: dict[str, list[str]] = {}

    def record_options(
        args: pulumi.ResourceTransformationArgs,
    ) -> pulumi.ResourceTransformationResult | None:
        if args.opts is not None and args.opts.ignore_changes:
            ignored[f"{args.type_}::{args.name}"] = list(args.opts.ignore_changes)
        return None

    def program() -> None:
        pulumi.runtime.register_stack_transformation(record_options)
        runpy.run_path(str(main), run_name="__main__")

    pulumi.runtime.test(program)()
    result = RenderResult(
        stack=stack, config=config, resources=list(mocks.registered), ignore_changes=ignored
    )
    _collect(result)
    return result


def _collect(result: RenderResult) -> None:
    seen: set[tuple[str, str, str, str]] = set()
    for res in result.resources:
        if not res.type.startswith("kubernetes:"):
            continue
        plain = _plain(res.inputs, [], result.secret_paths, f"{res.type}:{res.name}")
        plain = {k: v for k, v in plain.items() if not k.startswith("__")}
        if res.type == HELM_RELEASE:
            result.releases.append(_release(plain))
            continue
        if res.type == HELM_CHART:
            raise MlshipError("helm.v4.Chart is rendered client-side by Pulumi; mlship uses helm.v3.Release")
        manifest = _manifest(plain)
        meta = manifest.get("metadata", {})
        identity = (manifest["apiVersion"], manifest["kind"], meta.get("namespace", ""), meta.get("name", ""))
        if identity in seen:
            raise MlshipError(f"two resources declare the same object {identity}")
        seen.add(identity)
        result.manifests.append(manifest)


def _plain(value: Any, path: list[str], secrets: list[str], owner: str) -> Any:
    """Inputs as plain data: integral floats back to ints (protobuf numbers), secrets redacted."""
    if rpc.is_rpc_secret(value):
        secrets.append(f"{owner}:{'.'.join(path)}")
        inner = rpc.unwrap_rpc_secret(value)
        if isinstance(inner, dict):
            return {k: REDACTED for k in inner}
        if isinstance(inner, list):
            return [REDACTED for _ in inner]
        return REDACTED
    if isinstance(value, dict):  # sorted: protobuf maps have no order, rendered files must be stable
        return {k: _plain(value[k], [*path, str(k)], secrets, owner) for k in sorted(value)}
    if isinstance(value, list):
        return [_plain(v, [*path, str(i)], secrets, owner) for i, v in enumerate(value)]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _manifest(inputs: dict[str, Any]) -> dict[str, Any]:
    head = {k: inputs[k] for k in ("apiVersion", "kind", "metadata") if k in inputs}
    return head | {k: inputs[k] for k in sorted(inputs) if k not in head}


def _release(inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "release": inputs.get("name"),
        "namespace": inputs.get("namespace"),
        "chart": inputs.get("chart"),
        "version": inputs.get("version"),
        "repository": (inputs.get("repositoryOpts") or {}).get("repo"),
        "values": inputs.get("values", {}),
    }


def manifest_file_name(manifest: dict[str, Any]) -> str:
    meta = manifest.get("metadata", {})
    return f"{manifest['kind'].lower()}-{meta.get('namespace', 'cluster')}-{meta['name']}.yaml"


def write(result: RenderResult, out_dir: Path) -> list[Path]:
    """Write one YAML per object under ``out_dir`` (replacing a previous render there)."""
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MARKER).exists():
        raise MlshipError(
            f"{out_dir} is not empty and was not written by mlship render; choose another --out"
        )
    for sub in (MANIFESTS, HELM):
        shutil.rmtree(out_dir / sub, ignore_errors=True)
    (out_dir / MANIFESTS).mkdir(parents=True, exist_ok=True)
    (out_dir / HELM).mkdir(parents=True, exist_ok=True)
    (out_dir / MARKER).write_text(f"stack: {result.stack}\n", encoding="utf-8")
    written = []
    for manifest in result.manifests:
        path = out_dir / MANIFESTS / manifest_file_name(manifest)
        path.write_text(dump(manifest), encoding="utf-8")
        written.append(path)
    for release in result.releases:
        path = out_dir / HELM / f"{release['namespace']}-{release['release']}.yaml"
        path.write_text(
            "# Helm release installed by `pulumi up` (the chart's own objects exist only at deploy time)\n"
            + dump(release),
            encoding="utf-8",
        )
        written.append(path)
    return written


class _Dumper(yaml.SafeDumper):
    """Block style, multi-line strings as literal blocks (Alloy config, dashboards stay readable)."""


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def dump(data: Any) -> str:
    return yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=120
    )

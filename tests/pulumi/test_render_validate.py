"""Rendered manifests against the real schemas: Kubernetes (strict) and the CRDs kept in the repo."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml
from pulumi_helpers import PROGRAM, one, with_canary

from mlship.k8s import render as renderer
from mlship.k8s import validate

CRD_DIR = PROGRAM / "crds"
CUSTOM_KINDS = {"HTTPRoute", "Gateway", "GatewayClass", "ServiceMonitor", "PodMonitor", "PrometheusRule"}


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_object_is_valid(render, stack):
    result = render(stack)
    core, custom, problems = validate.validate_all(result.manifests, CRD_DIR)
    assert problems == []
    assert {m["kind"] for m in result.manifests if not validate.is_core(m)} == CUSTOM_KINDS
    assert core + custom == len(result.manifests)


def test_canary_with_weights_and_mirror_is_valid(render):
    for canary in ({"weight": 40}, {"shadow": True, "shadowPercent": 5}):
        result = render("prod", models=with_canary("prod", **canary))
        assert validate.validate_all(result.manifests, CRD_DIR)[2] == []


def test_crd_schemas_name_their_source_and_version():
    schemas = validate.load_crd_schemas(CRD_DIR)
    assert {kind for (_, kind) in schemas} == CUSTOM_KINDS
    for crd in schemas.values():
        assert any(ch.isdigit() for ch in crd.source), crd.source  # a release, not "latest"


def _route(render) -> dict:
    return copy.deepcopy(
        one(
            render("staging", models=with_canary("staging", weight=0, shadow=True)),
            "HTTPRoute",
            "diabetes-regressor",
        )
    )


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda r: r["spec"]["rules"][0]["backendRefs"][0].update(weight=-1), "-1 is less than the minimum"),
        (lambda r: r["spec"]["rules"][0]["backendRefs"][0].update(wieght=5), "Additional properties"),
        (
            lambda r: r["spec"]["rules"][0]["filters"][1]["requestMirror"].update(percent=101),
            "101 is greater",
        ),
        (lambda r: r["spec"]["rules"][0]["matches"][0].update(method="FETCH"), "'FETCH' is not one of"),
        (lambda r: r["spec"]["parentRefs"][0].pop("name"), "'name' is a required property"),
        (lambda r: r["metadata"].update(name="Not_A_Name"), "not a DNS-1123 subdomain"),
    ],
)
def test_crd_validation_catches_mistakes(render, mutate, expected):
    schemas = validate.load_crd_schemas(CRD_DIR)
    route = _route(render)
    assert validate.validate_custom(route, schemas) == []
    mutate(route)
    problems = validate.validate_custom(route, schemas)
    assert any(expected in str(p) for p in problems), problems


def test_core_validation_is_strict(render):
    deployment = copy.deepcopy(one(render("dev"), "Deployment", "diabetes-regressor-stable"))
    assert validate.validate_core(deployment) == []
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    (problem,) = validate.validate_core(deployment)
    assert "livenessprobe" in str(problem)


def test_unknown_custom_kind_is_a_problem():
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    (problem,) = validate.validate_custom(obj, validate.load_crd_schemas(CRD_DIR))
    assert "no CRD schema" in str(problem)


def test_write_one_file_per_object(render, tmp_path):
    result = render("staging", models=with_canary("staging", weight=0, shadow=True))
    written = renderer.write(result, tmp_path / "out")
    manifests = sorted((tmp_path / "out" / "manifests").glob("*.yaml"))
    assert len(manifests) == len(result.manifests)
    assert [yaml.safe_load(p.read_text()) for p in manifests] == sorted(
        result.manifests, key=renderer.manifest_file_name
    )
    helm = sorted((tmp_path / "out" / "helm").glob("*.yaml"))
    assert {yaml.safe_load(p.read_text())["release"] for p in helm} == {r["release"] for r in result.releases}
    assert len(written) == len(manifests) + len(helm)
    # a second render replaces the first; a foreign directory is refused
    renderer.write(result, tmp_path / "out")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("x")
    with pytest.raises(renderer.MlshipError, match="not written by mlship render"):
        renderer.write(result, tmp_path / "other")


def test_cli_render(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from mlship.cli import main; main()",
            "render",
            "--stack",
            "prod",
            "--out",
            str(tmp_path / "prod"),
            "--program",
            str(PROGRAM),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "valid:" in done.stdout and f"Kubernetes {validate.KUBERNETES_VERSION}" in done.stdout
    assert (tmp_path / "prod" / "manifests" / "httproute-mlship-diabetes-regressor.yaml").is_file()


def test_cli_bad_stack_fails_naming_the_key(tmp_path):
    program = tmp_path / "program"
    program.mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        (program / name).write_text((PROGRAM / name).read_text())
    (program / "Pulumi.dev.yaml").write_text(
        (PROGRAM / "Pulumi.dev.yaml").read_text().replace("maxReplicas: 2", "maxReplicas: 0")
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from mlship.cli import main; main()",
            "render",
            "-s",
            "dev",
            "-o",
            str(tmp_path / "out"),
            "--program",
            str(program),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert "mlship:models.0.maxReplicas" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()  # nothing written

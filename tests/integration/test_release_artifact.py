"""One release artifact, one version name (issue 11 defect 2), and `mlship preflight` of the stacks.

Before: Pulumi.dev.yaml named `registry.example.com/mlship/diabetes-regressor:1.0.0`, `mlship build`
made `mlship-model:<registry version>` (nothing tagged, pushed or imported it), the pods pulled Always,
and MLSHIP_MODEL_TAG named `diabetes-regressor:1.0.0`, which no image contains: the pod exited with
"model diabetes-regressor:1.0.0 is not in the model store". Now the image is `<stack repository>:<model
version>`, the stack configs name registry versions, and preflight runs the rendered pods in Docker.

Real: Docker, the image `mlship build --containerize` makes (built once per session, tests/conftest.py),
`docker save`, `sha256sum -c` (what an air-gapped host checks before k3s imports a tarball). Stands in:
the rendered pod spec run by Docker instead of a kubelet (mlship/k8s/preflight.py says what differs).
The tests use their own image repository (same tags) so a developer's images are never touched.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import yaml

from mlship import build
from mlship.errors import ExitCode
from mlship.k8s import render as renderer
from mlship.k8s.stack_config import read_stack_file

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.slow]

PROGRAM = Path(__file__).resolve().parents[2] / "pulumi"
MLSHIP = [sys.executable, "-c", "from mlship.cli import main; main()"]
CHECK_NAMES = {
    "imagePullPolicy",
    "image",
    "emptyDir tmp",
    "emptyDir bentoml-home",
    "serves during the preStop hook",
    "runAsNonRoot",
    "docker run",
    "startupProbe GET /livez :http",
    "livenessProbe GET /livez :http",
    "readinessProbe GET /readyz :http",
    "valid prediction",
    "invalid prediction is a 4xx naming the field",
    "metrics endpoint",
    "scraped series",
    "requests counted by endpoint and code",
    "no scraped label overrides a target label",
    "model_version label",
    "stops on SIGTERM within the grace period",
}


def preflight(stack: str, repository: str, program: Path = PROGRAM):
    args = [*MLSHIP, "preflight", "--stack", stack, "--program", str(program), "--json"]
    args += ["--image-repository", repository]
    started = time.monotonic()
    done = subprocess.run(args, capture_output=True, text=True, timeout=900)
    return done, time.monotonic() - started


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_preflight_passes_on_the_shipped_stacks(model_image, stack):
    done, seconds = preflight(stack, model_image.rsplit(":", 1)[0])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout)
    (pod,) = report["pods"]  # these stacks run no canary
    assert pod["ok"] and pod["role"] == "stable"
    assert {c["name"] for c in pod["checks"]} == CHECK_NAMES
    assert pod["image"] == model_image  # the stack's version is the image's tag
    run = pod["docker_run"]
    for flag in ("--read-only", "--cap-drop=ALL", "no-new-privileges", "--user", "--memory", "--cpus"):
        assert flag in run, flag
    assert run[run.index("--memory-swap") + 1] == run[run.index("--memory") + 1]  # no swap, as the kubelet
    volumes = [a for a in run if a.startswith("type=volume,")]
    assert [v.split("target=")[1].split(",")[0] for v in volumes] == ["/tmp", "/home/mlship/bentoml"]
    print(f"preflight --stack {stack}: {seconds:.0f}s ({report['seconds']}s in the command)")


def test_stack_configs_name_versions_mlship_model_train_makes(trained):
    """`mlship model train` (+ `--variant candidate`) makes the versions the shipped stacks name."""
    made = {trained["baseline"].version, trained["candidate"].version}
    for stack in ("dev", "staging", "prod"):
        raw, _ = read_stack_file(PROGRAM / f"Pulumi.{stack}.yaml")
        for model in raw["models"]:
            named = {model["stable"]} | ({model["canary"]["version"]} if model.get("canary") else set())
            assert named <= made, (stack, named - made)


def test_the_image_the_build_tags_is_the_image_the_pods_run(models):
    for stack in ("dev", "prod"):
        repository = build.stack_image_repository(stack, "diabetes-regressor")
        result = renderer.run_program(stack, PROGRAM)
        (stable,) = [
            m
            for m in result.manifests
            if m["metadata"]["name"] == "diabetes-regressor-stable" and m["kind"] == "Deployment"
        ]
        (container,) = stable["spec"]["template"]["spec"]["containers"]
        version = result.config.models[0].stable
        assert container["image"] == build.image_reference(repository, version)
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["MLSHIP_MODEL_TAG"] == f"diabetes-regressor:{version}"
        assert container["imagePullPolicy"] == "IfNotPresent"  # an imported image is used as is


def test_the_old_stack_config_fails_preflight_naming_the_check(model_image, tmp_path):
    """The stack named version 1.0.0: an image with that tag does not serve that model."""
    program = tmp_path / "program"
    shutil.copytree(PROGRAM, program, ignore=shutil.ignore_patterns("__pycache__"))
    stack_file = program / "Pulumi.dev.yaml"
    doc = yaml.safe_load(stack_file.read_text())
    doc["config"]["mlship:models"][0]["stable"] = "1.0.0"
    stack_file.write_text(yaml.safe_dump(doc))
    repository = model_image.rsplit(":", 1)[0]
    missing, _ = preflight("dev", repository, program)
    assert missing.returncode == ExitCode.VALIDATION_FAILED
    assert f"image {repository}:1.0.0 is not here: build it with `mlship build" in missing.stderr
    # tagged by hand (what `docker tag` to the stack's name did before): the pod cannot start
    subprocess.run(["docker", "tag", model_image, f"{repository}:1.0.0"], check=True)
    try:
        done, _ = preflight("dev", repository, program)
    finally:
        subprocess.run(["docker", "rmi", f"{repository}:1.0.0"], capture_output=True)
    assert done.returncode == ExitCode.VALIDATION_FAILED
    report = json.loads(done.stdout)
    (failed,) = [c for c in report["pods"][0]["checks"] if not c["ok"]]
    assert failed["name"] == "startupProbe GET /livez :http"
    assert "is not in the model store" in failed["detail"]
    assert "startupProbe" in done.stderr and "Traceback" not in done.stderr


def test_export_writes_a_tarball_sha256sum_verifies(model_image, tmp_path):
    """The air-gap folder: every tarball listed in SHA256SUMS, in the format `sha256sum -c` checks."""
    airgap = tmp_path / "airgap"
    airgap.mkdir()
    (airgap / "k3s-airgap-images-amd64.tar.zst").write_bytes(b"k3s images")
    other = subprocess.run(
        ["sha256sum", "k3s-airgap-images-amd64.tar.zst"],
        cwd=airgap,
        capture_output=True,
        text=True,
        check=True,
    )
    (airgap / build.CHECKSUMS).write_text(other.stdout)
    target = build.export_image(model_image, airgap)
    assert target.name == f"diabetes-regressor_{model_image.rsplit(':', 1)[1]}.tar"
    checked = subprocess.run(["sha256sum", "-c", build.CHECKSUMS], cwd=airgap, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count(": OK") == 2  # the k3s tarball's line was kept
    with tarfile.open(target) as tar:  # the name containerd imports it under
        (manifest,) = json.load(tar.extractfile("manifest.json"))
    assert manifest["RepoTags"] == [model_image]
    target.write_bytes(target.read_bytes()[:-1] + b"x")  # a corrupted copy is caught
    assert subprocess.run(["sha256sum", "-c", build.CHECKSUMS], cwd=airgap, capture_output=True).returncode


def test_push_needs_a_registry_in_the_repository():
    done = subprocess.run(
        [*MLSHIP, "build", "--containerize", "--push", "--image-repository", "mlship-model"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == ExitCode.USAGE
    assert "names no registry host" in done.stderr and "Traceback" not in done.stderr

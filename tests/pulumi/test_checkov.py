"""checkov (its own venv, `.venv-checkov`, created by `make checkov-venv`) on the rendered manifests.

Zero failed checks; every skipped check must carry a written reason in the object's annotation.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from pulumi_helpers import with_canary

from mlship.k8s import render as renderer

CHECKOV = Path(__file__).resolve().parents[2] / ".venv-checkov" / "bin" / "checkov"


def run_checkov(directory: Path) -> dict:
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run `make checkov-venv` (checkov lives in its own venv)")
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}  # offline: no guideline download
    done = subprocess.run(
        [str(CHECKOV), "-d", str(directory), "--framework", "kubernetes", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert done.stdout, done.stderr
    return json.loads(done.stdout)


def test_checkov_passes_on_every_stack(render, tmp_path):
    for stack, overrides in (
        ("dev", {}),
        ("staging", {}),
        ("prod", {"models": with_canary("prod", weight=10)}),
    ):
        renderer.write(render(stack, **overrides), tmp_path / stack)
    report = run_checkov(tmp_path)
    summary = report["summary"]
    failed = [(c["check_id"], c["resource"], c["file_path"]) for c in report["results"]["failed_checks"]]
    assert failed == []
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 100
    for check in report["results"]["skipped_checks"]:
        reason = check["check_result"].get("suppress_comment") or ""
        assert len(reason.split()) >= 5, (
            f"{check['check_id']} on {check['resource']} skipped without a reason"
        )
    counts = f"{summary['passed']} passed, 0 failed, {summary['skipped']} skipped"
    print(f"checkov {summary['checkov_version']}: {counts}")

"""The release hand-off: the prod job starts its canary on another runner (review of issue 11, defect 1).

Before: the model registry (.mlship/bentoml, never committed) existed only on the runner that trained the
model, and `mlship canary run V --env prod` resolves V there and checks it is blessed: on the prod job's
fresh checkout it stopped with "unknown model". Now the staging job exports the model with its gate verdict
(`mlship model export`, uploaded as a workflow artifact) and the prod job imports it (`mlship model import`,
SHA256SUMS checked). The blessing travels inside the archive, so an unblessed model is still refused unless
--force.

Real: the session's model registry, BentoML's export/import, the controller's own start checks, each
"runner" a separate process with its own BENTOML_HOME and state folder. Stands in: the cluster and its
Prometheus (a backend and a Prometheus that accept everything: the refusal under test comes first).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlship.errors import ExitCode

pytestmark = [pytest.mark.integration]

MLSHIP = [sys.executable, "-c", "from mlship.cli import main; main()"]
# One process per runner: each step is `mlship ...` (the CLI's main, its exit code and stderr kept) or the
# controller's start of a version; one JSON line per step.
RUNNER = """
import contextlib, io, json, sys
from mlship.canary.backend import Routing
from mlship.canary.controller import Controller
from mlship.cli import main
from mlship.config import load_config
from mlship.errors import MlshipError

class Cluster:
    name = "stand-in"
    def routing(self): return Routing("0000stable00", None, 0, False)
    def deploy_canary(self, version, *, shadow): print("deployed", version, file=sys.stderr)
    def set_weight(self, weight): pass
    def rollback(self): pass

class Prom:
    url = "stand-in"
    def ready(self): return True

for step in json.loads(sys.argv[1]):
    out, err, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            if step[0] == "start":
                Controller(load_config(), Cluster(), Prom(), env_name="prod").start(step[1], force=step[2])
            else:
                sys.argv = step
                main()
        except SystemExit as exc:
            code = exc.code or 0
        except MlshipError as exc:
            code, err = int(exc.exit_code), io.StringIO("refused: " + str(exc))
    print(json.dumps({"code": code, "out": out.getvalue(), "err": err.getvalue()}), flush=True)
"""


def on_runner(tmp_path: Path, name: str, steps: list[list]) -> list[dict]:
    """Run ``steps`` on another machine: its own (empty) model registry and state folder, same repository."""
    env = {
        **os.environ,
        "BENTOML_HOME": str(tmp_path / name / "bentoml"),
        "MLSHIP_STATE_DIR": str(tmp_path / name / "state"),
    }
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(steps)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def start(version: str, *, force: bool = False) -> list:
    return ["start", version, force]


def mlship_import(source: Path) -> list:
    return ["mlship", "model", "import", str(source), "--json"]


def test_the_prod_runner_starts_the_canary_of_the_imported_blessed_model(models, tmp_path):
    version = models["candidate"].version
    artifact = tmp_path / "artifact"
    done = subprocess.run(
        [*MLSHIP, "model", "export", version, "--out", str(artifact), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    exported = json.loads(done.stdout)
    assert exported["blessed"] and Path(exported["archive"]).parent == artifact
    checked = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=artifact, capture_output=True, text=True)
    assert checked.returncode == 0 and ": OK" in checked.stdout  # the format `sha256sum -c` verifies
    before, imported, after, again = on_runner(
        tmp_path, "prod", [start(version), mlship_import(artifact), start(version), mlship_import(artifact)]
    )
    assert before["code"] == ExitCode.REFUSED and "unknown model" in before["err"]  # the defect
    assert "mlship model import" in before["err"]  # the error names the next step
    assert imported["code"] == 0 and json.loads(imported["out"])["blessed"] is True
    assert after["code"] == 0 and f"deployed {version}" in after["err"]
    assert again["code"] == 0 and json.loads(again["out"])["verb"] == "already registered"  # a re-run


def test_an_unblessed_model_stays_refused_after_the_hand_off(models, tmp_path):
    from mlship.model import transfer

    version = models["shifted"].version  # vetoed by the gate
    artifact = tmp_path / "artifact"
    assert transfer.export_model(models["shifted"], artifact).blessed is False
    imported, plain, forced = on_runner(
        tmp_path, "prod", [mlship_import(artifact), start(version), start(version, force=True)]
    )
    assert imported["code"] == 0 and json.loads(imported["out"])["blessed"] is False
    assert plain["code"] == ExitCode.REFUSED and "is not blessed" in plain["err"]
    assert forced["code"] == 0 and f"deployed {version}" in forced["err"]  # --force is the only way


def test_a_corrupted_or_unlisted_artifact_is_not_imported(models, tmp_path):
    from mlship.model import transfer

    version = models["candidate"].version
    artifact = tmp_path / "artifact"
    archive = transfer.export_model(models["candidate"], artifact).archive
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    unlisted = tmp_path / "unlisted"
    unlisted.mkdir()
    (unlisted / archive.name).write_bytes(archive.read_bytes())
    corrupted, missing, after = on_runner(
        tmp_path, "prod", [mlship_import(artifact), mlship_import(unlisted / archive.name), start(version)]
    )
    assert corrupted["code"] == ExitCode.REFUSED and "does not match SHA256SUMS" in corrupted["err"]
    assert missing["code"] == ExitCode.REFUSED and "no SHA256SUMS" in missing["err"]
    assert "Traceback" not in corrupted["err"] + missing["err"]
    assert after["code"] == ExitCode.REFUSED and "unknown model" in after["err"]  # nothing was imported


def test_a_verdict_copied_next_to_another_model_blesses_nothing(models, tmp_path):
    from mlship.model import registry

    record = models["shifted"]
    blessed_verdict = models["candidate"].gate
    copy = tmp_path / "model"
    shutil.copytree(record.path, copy)
    (copy / registry.GATE_FILE).write_text(json.dumps(blessed_verdict))
    forged = registry.ModelRecord(**{**record.__dict__, "path": copy})
    assert blessed_verdict["blessed"] and not forged.blessed

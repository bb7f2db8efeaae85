"""Every CLI command on a fresh checkout: no model, no environment, no Prometheus, no rollout.

Each command runs as a user runs it (the installed `mlship` entry point, in a new process) in an empty
folder with an empty state folder and model store, and with local ports nobody listens on. It must
end with its documented exit code and, when it fails, one line saying what is missing and what to run
next; never a traceback. A command added to the CLI without a row here fails the last test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from mlship.errors import ExitCode
from mlship.local.environment import PORT_KEYS
from mlship.local.processes import free_ports

# command -> (exit code, text the output must contain). The next step is named in backticks or as a flag.
EXPECTED: dict[tuple[str, ...], tuple[int, str]] = {
    ("model", "list"): (ExitCode.OK, "run `mlship model train`"),
    ("model", "show", "abc"): (ExitCode.REFUSED, "run `mlship model train`"),
    ("model", "validate", "abc"): (ExitCode.REFUSED, "run `mlship model train`"),
    ("model", "spec", "abc"): (ExitCode.REFUSED, "run `mlship model train`"),
    ("model", "review", "abc", "--by", "someone", "--spec-hash", "0"): (
        ExitCode.REFUSED,
        "run `mlship model train`",
    ),
    ("model", "staleness", "abc", "--data", "d.csv", "--time-column", "t"): (
        ExitCode.REFUSED,
        "run `mlship model train`",
    ),
    ("model", "export", "abc", "--out", "out"): (ExitCode.REFUSED, "or `mlship model import DIR`"),
    ("model", "import", "release"): (ExitCode.NOT_READY, "download the release's model artifact"),
    ("local", "up"): (ExitCode.NOT_READY, "run `mlship model train`"),
    ("local", "down"): (ExitCode.OK, "nothing was running"),
    ("local", "status"): (ExitCode.OK, "stopped"),
    ("load", "--duration", "1"): (ExitCode.NOT_READY, "`mlship local up`"),
    ("build",): (ExitCode.NOT_READY, "run `mlship model train`"),
    ("canary", "start", "abc"): (ExitCode.REFUSED, "run `mlship model train`"),
    ("canary", "run", "abc"): (ExitCode.REFUSED, "run `mlship model train`"),
    ("canary", "status"): (ExitCode.OK, "no rollout yet"),
    ("canary", "plan"): (ExitCode.REFUSED, "pass today's rate with --rps"),
    ("canary", "simulate", "--runs", "1", "--rps", "200", "--json"): (ExitCode.OK, '"runs": 1,'),
    ("canary", "analyze"): (ExitCode.REFUSED, "`mlship canary start VERSION`"),
    ("canary", "promote"): (ExitCode.REFUSED, "`mlship canary start VERSION`"),
    ("canary", "rollback"): (ExitCode.REFUSED, "`mlship canary start VERSION`"),
    ("canary", "rollback", "--to", "previous"): (ExitCode.REFUSED, "no previous stable version"),
    ("drift",): (ExitCode.PROMETHEUS_UNAVAILABLE, "`mlship local up`"),
    ("render", "--stack", "nope", "--out", "rendered"): (ExitCode.USAGE, "stacks here: dev"),
    ("preflight", "--stack", "nope"): (ExitCode.USAGE, "stacks here: dev"),
    ("deploy", "--stack", "nope"): (ExitCode.USAGE, "stacks here: dev"),
    ("images", "build", "nope"): (ExitCode.USAGE, "nope"),
    ("score",): (ExitCode.USAGE, "declare which tests, figures, benchmarks and live checks"),
    ("feedback", "ingest", "outcomes.csv"): (ExitCode.NOT_READY, "`mlship local up`"),
    ("feedback", "report"): (ExitCode.NOT_READY, "`mlship local up`"),
    ("feedback", "delete", "abc"): (ExitCode.NOT_READY, "`mlship local up`"),
    ("feedback", "purge"): (ExitCode.NOT_READY, "`mlship local up`"),
}
# First steps that succeed on a fresh checkout (they are what the errors above point to); each is run
# end to end elsewhere: `model train` in tests/unit/test_training.py, `images build` and `demo` by
# tests/integration and `make demo`.
FIRST_STEPS = {("model", "train"), ("images", "build"), ("demo",)}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fresh-checkout")
    ports = dict(zip(PORT_KEYS, free_ports(len(PORT_KEYS)), strict=True))
    (folder / "mlship.yaml").write_text(yaml.safe_dump({"local": ports}), encoding="utf-8")
    return folder


def run(folder: Path, args: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MLSHIP_STATE_DIR": str(folder / ".mlship"),
        "BENTOML_HOME": str(folder / ".mlship" / "bentoml"),
        "COLUMNS": "80",  # a narrow terminal: an error must stay on one line anyway
    }
    exe = Path(sys.executable).with_name("mlship")
    return subprocess.run(
        [str(exe), *args], cwd=folder, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def results(fresh) -> dict[tuple[str, ...], subprocess.CompletedProcess[str]]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = dict(zip(EXPECTED, pool.map(lambda args: run(fresh, args), EXPECTED), strict=True))
    return done


@pytest.mark.parametrize("args", list(EXPECTED), ids=" ".join)
def test_a_command_on_a_fresh_checkout_names_the_next_step(results, args):
    code, hint = EXPECTED[args]
    result = results[args]
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == code, output
    assert hint in " ".join(output.split()), output
    if code not in (ExitCode.OK, ExitCode.USAGE):  # usage errors are click's own box
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and result.stderr.strip() == errors[0], result.stderr


def test_a_fresh_checkout_is_left_as_it_was(results, fresh):
    """Refused commands change nothing: no rollout, no running component, no model."""
    import json

    state = fresh / ".mlship"
    assert not (state / "canary" / "state.json").exists()
    assert not list((state / "bentoml" / "models").glob("*"))
    env = state / "local" / "env.json"
    assert not env.exists() or json.loads(env.read_text())["components"] == {}


def test_every_command_of_the_cli_is_walked():
    from typer.main import get_command

    from mlship.cli import app

    def walk(command, prefix=()):
        subcommands = getattr(command, "commands", None)
        if not subcommands:
            yield prefix
            return
        for name, sub in subcommands.items():
            yield from walk(sub, (*prefix, name))

    walked = {args[: len(path)] for args in EXPECTED for path in [args]} | FIRST_STEPS
    missing = [
        " ".join(path) for path in walk(get_command(app)) if not any(w[: len(path)] == path for w in walked)
    ]
    assert not missing, f"commands with no fresh-checkout case: {missing}"


def test_a_state_folder_that_cannot_be_created_is_one_line_naming_the_variable(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    env = {**os.environ, "MLSHIP_STATE_DIR": str(blocker / "state"), "COLUMNS": "80"}
    env.pop("BENTOML_HOME", None)
    exe = Path(sys.executable).with_name("mlship")
    result = subprocess.run(
        [str(exe), "model", "list"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == ExitCode.NOT_READY, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error:") and len(result.stderr.strip().splitlines()) == 1
    assert "MLSHIP_STATE_DIR" in result.stderr

"""Bad input to the command line and its configuration files, run as a user runs them (subprocesses).

Each case checks three things: a non-zero exit code, an error that names what is wrong, and nothing
changed (no process started, routing and state files byte for byte as before, no output written).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from devtools.reliability.result import CaseResult, errored, verdict
from mlship import names
from mlship.canary.backends.local import LocalBackend
from mlship.canary.state import StateStore
from mlship.local.environment import LocalEnvironment
from mlship.paths import bentoml_home, project_root, state_dir

AREA = "cli"
UNKNOWN_VERSION = "0123456789ab"
CORRUPTED_STATE = '{"schema_version": 1, "phase": "progressing", "weight": '


@dataclass(frozen=True)
class Run:
    code: int
    output: str

    @property
    def first_error(self) -> str:
        for line in self.output.splitlines():
            if line.startswith("error:"):
                return line.strip()
        lines = [line for line in self.output.splitlines() if line.strip()]
        return lines[-1].strip() if lines else "(no output)"


def mlship(args: list[str], *, cwd: Path, env: dict[str, str]) -> Run:
    """Run the installed `mlship` entry point of this interpreter's environment."""
    exe = Path(sys.executable).with_name("mlship")
    done = subprocess.run(
        [str(exe), *args],
        cwd=cwd,
        env={**os.environ, **env, "NO_COLOR": "1", "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return Run(done.returncode, done.stdout + done.stderr)


def project_for(env: LocalEnvironment, where: Path) -> tuple[Path, dict[str, str]]:
    """A project folder whose mlship.yaml points at ``env``; the variables that select its state."""
    where.mkdir(parents=True, exist_ok=True)
    doc = {"local": env.config.local.model_dump()}
    (where / "mlship.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    return where, {"MLSHIP_STATE_DIR": str(state_dir()), "BENTOML_HOME": str(bentoml_home())}


def invalid_project_config(work: Path) -> CaseResult:
    expected = "exit 2, every bad key named, nothing started (no environment state written)"
    case = "invalid mlship.yaml (`mlship local up`)"
    project = work / "bad-config"
    project.mkdir(parents=True)
    (project / "mlship.yaml").write_text(
        "local:\n  proxy_port: 80\ncanary:\n  steps: [50, 20, 100]\nlokal:\n  workers: 2\n", encoding="utf-8"
    )
    state = project / "state"
    run = mlship(["local", "up"], cwd=project, env={"MLSHIP_STATE_DIR": str(state)})
    named = all(key in run.output for key in ("local.proxy_port", "canary.steps", "lokal"))
    untouched = not (state / "local" / "env.json").exists()
    observed = f"exit {run.code}; {'all 3 keys named' if named else 'keys not all named'}; " + (
        "nothing started" if untouched else "environment state was written"
    )
    return verdict(AREA, case, expected=expected, observed=observed, ok=run.code == 2 and named and untouched)


def invalid_stack_config(work: Path) -> CaseResult:
    expected = "exit != 0, every bad key named, no manifest written"
    case = "invalid Pulumi stack config (`mlship render --stack`)"
    program = work / "pulumi"
    shutil.copytree(project_root() / "pulumi", program, ignore=shutil.ignore_patterns("Pulumi.*.yaml"))
    bad = {
        "config": {
            "mlship:environment": "prod",
            "mlship:namespace": "Not_A_Namespace",
            "mlship:models": [
                {
                    "name": "diabetes-regressor",
                    "image": "registry.example.com/mlship/diabetes-regressor",
                    "stable": "1.0.0",
                    "replicas": -2,
                    "canary": {"version": "1.1.0", "weight": 140},
                }
            ],
            "mlship:gatewy": {},
        }
    }
    (program / "Pulumi.broken.yaml").write_text(yaml.safe_dump(bad), encoding="utf-8")
    out = work / "rendered"
    run = mlship(
        ["render", "--stack", "broken", "--out", str(out), "--program", str(program)],
        cwd=work,
        env={"MLSHIP_STATE_DIR": str(work / "state")},
    )
    keys = ("mlship:namespace", "replicas", "canary.weight", "mlship:gatewy")
    named = [k for k in keys if k in run.output]
    written = out.exists() and any(out.rglob("*.yaml"))
    observed = f"exit {run.code}; named {len(named)}/{len(keys)} bad keys; " + (
        "manifests written" if written else "nothing written"
    )
    return verdict(
        AREA,
        case,
        expected=expected,
        observed=observed,
        ok=run.code != 0 and len(named) == len(keys) and not written,
    )


def invalid_inventory(work: Path) -> CaseResult:
    expected = "exit != 0 in the preflight, the variable named, no later play started, 0 changes"
    case = "invalid inventory variable (`ansible-playbook site.yml`)"
    root = project_root()
    config = work / "ansible.cfg"
    config.write_text("[defaults]\n", encoding="utf-8")
    bindir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(config),
        "ANSIBLE_ROLES_PATH": str(root / "roles"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_HOME": str(work / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(work / "ansible-tmp"),
    }
    done = subprocess.run(
        [
            str(bindir / "ansible-playbook"),
            "-i",
            str(root / "inventory" / "local"),
            str(root / "ansible" / "site.yml"),
            "--check",
            "-e",
            "ansible_connection=local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "-e",
            "node_exporter_install_method=tarball",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    plays = re.findall(r"^PLAY \[([^\]]+)\]", done.stdout, re.MULTILINE)
    changed = [int(n) for n in re.findall(r"changed=(\d+)", done.stdout)]
    named = "node_exporter_install_method" in output and "tarball" in output
    ok = done.returncode != 0 and named and len(plays) == 1 and changed and not any(changed)
    observed = (
        f"exit {done.returncode}; {'variable and value named' if named else 'variable not named'}; "
        f"plays started: {plays}; changed={sum(changed) if changed else '?'}"
    )
    return verdict(AREA, case, expected=expected, observed=observed, ok=bool(ok))


def _routing_snapshot(env: LocalEnvironment) -> tuple[object, bool]:
    return LocalBackend(env).routing(), env.running(names.ROLE_CANARY) is not None


def unknown_version(env: LocalEnvironment, work: Path) -> CaseResult:
    expected = "exit 3, the unknown version named, routing and rollout state unchanged, no canary started"
    case = "unknown model version (`mlship canary start`)"
    project, variables = project_for(env, work / "project-unknown")
    store = StateStore()
    state_before = store.path.read_bytes() if store.path.exists() else None
    routing_before = _routing_snapshot(env)
    run = mlship(["canary", "start", UNKNOWN_VERSION], cwd=project, env=variables)
    state_after = store.path.read_bytes() if store.path.exists() else None
    unchanged = _routing_snapshot(env) == routing_before and state_after == state_before
    named = UNKNOWN_VERSION in run.output and "unknown model" in run.output
    observed = f"exit {run.code}: {run.first_error[:160]}; " + (
        "nothing changed" if unchanged else "state changed"
    )
    return verdict(AREA, case, expected=expected, observed=observed, ok=run.code == 3 and named and unchanged)


def corrupted_state(env: LocalEnvironment, work: Path, candidate: str) -> CaseResult:
    expected = (
        "exit != 0 naming the corrupted file, file left byte for byte, no canary started, routing unchanged"
    )
    case = "corrupted canary state file (`mlship canary start` / `status`)"
    project, variables = project_for(env, work / "project-corrupted")
    store = StateStore()
    original = store.path.read_bytes() if store.path.exists() else None
    store.dir.mkdir(parents=True, exist_ok=True)
    store.path.write_text(CORRUPTED_STATE, encoding="utf-8")
    try:
        routing_before = _routing_snapshot(env)
        runs = {
            "start": mlship(["canary", "start", candidate], cwd=project, env=variables),
            "status": mlship(["canary", "status"], cwd=project, env=variables),
        }
        left = store.path.read_text(encoding="utf-8") == CORRUPTED_STATE
        unchanged = _routing_snapshot(env) == routing_before
        clear = all(
            r.code != 0 and "corrupted" in r.output and str(store.path) in r.output for r in runs.values()
        )
        observed = (
            "; ".join(f"{cmd}: exit {r.code}" for cmd, r in runs.items())
            + f"; {runs['start'].first_error[:120]}; "
            + ("file untouched" if left else "file changed")
            + (", routing unchanged" if unchanged else ", routing changed")
        )
        return verdict(AREA, case, expected=expected, observed=observed, ok=clear and left and unchanged)
    finally:
        if original is None:
            store.path.unlink(missing_ok=True)
        else:
            store.path.write_bytes(original)


def run_cli_cases(
    env: LocalEnvironment,
    candidate: str,
    *,
    inventory: bool = True,
    progress: Callable[[str], None] = lambda _msg: None,
) -> list[CaseResult]:
    """Independent cases run two at a time; the ones that share the environment's state in turn."""
    results: list[CaseResult] = []
    with tempfile.TemporaryDirectory(prefix="mlship-reliability-cli-") as tmp:
        work = Path(tmp)
        independent: list[tuple[str, Callable[[Path], CaseResult]]] = [
            ("invalid mlship.yaml", invalid_project_config),
            ("invalid stack config", invalid_stack_config),
        ]
        if inventory:
            independent.append(("invalid inventory variable", invalid_inventory))
        for i in range(len(independent)):
            (work / f"case-{i}").mkdir()
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [
                (name, pool.submit(fn, work / f"case-{i}")) for i, (name, fn) in enumerate(independent)
            ]
            for name, fn in (
                ("unknown model version", lambda: unknown_version(env, work)),
                ("corrupted state file", lambda: corrupted_state(env, work, candidate)),
            ):
                progress(name)
                try:
                    results.append(fn())
                except Exception as exc:
                    results.append(errored(AREA, name, expected="a clear error, nothing changed", exc=exc))
            for name, future in futures:
                try:
                    results.append(future.result())
                except Exception as exc:
                    results.append(errored(AREA, name, expected="a clear error, nothing changed", exc=exc))
    return results

"""Conventions every role keeps (read from the roles' YAML and from `ansible-playbook --list-tasks`):
tags `<role>_install` / `<role>_configure` on every task, handlers reached only through `listen` topics,
an explicit mode on every file a task writes, no_log on every task that handles a secret, and the exact list
of steps tagged `needs_binary` (the ones Molecule skips on machines that cannot download k3s or Alloy)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLES_DIR = REPO / "roles"
ROLES = sorted(p.name for p in ROLES_DIR.iterdir() if p.is_dir())
VENV_BIN = Path(sys.executable).parent

# Roles that only run inside another role (import_role): their tasks carry the caller's tags.
CALLERS = {"k3s_common": ("k3s_server", "k3s_agent")}
# Modules that write a file or directory, and the states in which they do not.
WRITERS = {
    "ansible.builtin.file",
    "ansible.builtin.template",
    "ansible.builtin.copy",
    "ansible.builtin.lineinfile",
    "ansible.builtin.get_url",
    "ansible.builtin.unarchive",
}
NOT_WRITING_STATES = {"absent", "link", "hard"}
TASK_KEYWORDS = {
    "name", "when", "tags", "notify", "register", "loop", "loop_control", "no_log", "become", "delegate_to",
    "run_once", "changed_when", "failed_when", "check_mode", "vars", "environment", "listen", "block",
    "rescue", "always", "until", "retries", "delay", "ignore_errors", "become_user", "args",
}  # fmt: skip

# Exactly the steps that need a k3s, Alloy or node exporter release file (see the README and issue 5).
NEEDS_BINARY = {
    "k3s_common : Create the air-gap directory on the controller",
    "k3s_common : Download the release checksum file",
    "k3s_common : Download the binary and images, verified against the release checksums",
    "k3s_common : Download the install script",
    "k3s_common : Look for the release files",
    "k3s_common : Fail clearly when a release file is missing",
    "k3s_common : Look for image archives in the air-gap directory",
    "k3s_common : Look for the checksum files",
    "k3s_common : Compute the SHA-256 of each file to install",
    "k3s_common : Fail clearly when a file does not match its checksum line",
    "k3s_common : Install the k3s binary",
    "k3s_common : Install the air-gap images",
    "k3s_common : Install the official install script",
    "k3s_common : Run the install script without download, enable or start",
    "k3s_server : Start k3s",
    "k3s_server : Wait until the API server on this node is ready",
    "k3s_server : Wait until this node is Ready",
    "k3s_agent : Start k3s-agent",
    "node_exporter : Create the air-gap directory on the controller",
    "node_exporter : Download the tarball, verified against the release checksums",
    "node_exporter : Look for the release tarball in the air-gap directory",
    "node_exporter : Fail clearly when the tarball is missing",
    "node_exporter : Unpack the tarball",
    "node_exporter : Install the node exporter binary",
    "node_exporter : Start the node exporter (release binary)",
    "log_agent : Create the air-gap directory on the controller",
    "log_agent : Download the archive, verified against the release checksums",
    "log_agent : Look for the release archive",
    "log_agent : Fail clearly when the archive is missing",
    "log_agent : Unpack the archive",
    "log_agent : Install the alloy binary",
    "log_agent : Validate the candidate configuration with alloy",
    "log_agent : Start alloy",
    "Wait for k3s to write its kubeconfig",
    "Read the kubeconfig",
    "Create the kubeconfig directory on the controller",
    "Write the kubeconfig for this environment on the controller",
}


def load(path: Path) -> object:
    return yaml.safe_load(path.read_text())


def walk(tasks: list[dict] | None) -> Iterator[dict]:
    """Every task, including those inside blocks."""
    for task in tasks or []:
        yield task
        for section in ("block", "rescue", "always"):
            yield from walk(task.get(section))


def role_tasks(role: str) -> Iterator[tuple[str, dict]]:
    for path in sorted((ROLES_DIR / role / "tasks").glob("*.yml")):
        for task in walk(load(path)):
            yield f"{role}/tasks/{path.name}: {task.get('name')}", task


def playbook_tasks() -> Iterator[tuple[str, dict]]:
    for path in sorted((REPO / "ansible").glob("*.yml")):
        plays = load(path)
        if not isinstance(plays, list):
            continue
        for play in plays:
            for task in walk(play.get("tasks")):
                yield f"ansible/{path.name}: {task.get('name')}", task


def module_of(task: dict) -> str | None:
    modules = [key for key in task if key not in TASK_KEYWORDS]
    return modules[0] if modules else None


def list_tasks(*args: str, tmp_path: Path) -> list[tuple[str, set[str]]]:
    """(task, tags) for every task of ansible/site.yml on inventory/local, as ansible-playbook lists them."""
    config = tmp_path / "ansible.cfg"
    config.write_text("[defaults]\n")
    proc = subprocess.run(
        [
            str(VENV_BIN / "ansible-playbook"),
            "-i",
            str(REPO / "inventory" / "local"),
            str(REPO / "ansible" / "site.yml"),
            "--list-tasks",
            *args,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "ANSIBLE_CONFIG": str(config), "ANSIBLE_HOME": str(tmp_path / "home")},
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    tasks = []
    in_tasks = False
    for line in proc.stdout.splitlines():
        if line.strip() == "tasks:":
            in_tasks = True
            continue
        match = re.match(r"^\s{6}(\S.*?)\tTAGS: \[(.*)\]$", line)
        if in_tasks and match:
            tasks.append((match.group(1), {t.strip() for t in match.group(2).split(",") if t.strip()}))
    return tasks


@pytest.fixture(scope="module")
def site_tasks(tmp_path_factory) -> list[tuple[str, set[str]]]:
    return list_tasks(tmp_path=tmp_path_factory.mktemp("list"))


def test_every_role_task_carries_its_install_or_configure_tag(site_tasks):
    untagged = []
    for task, tags in site_tasks:
        role, sep, name = task.partition(" : ")
        if not sep or name.startswith("Validating arguments against arg spec"):
            continue
        owners = CALLERS.get(role, (role,))
        allowed = {f"{owner}_{kind}" for owner in owners for kind in ("install", "configure")}
        if not tags & allowed or tags - allowed - {"needs_binary"}:
            untagged.append(f"{task} {sorted(tags)}")
    assert untagged == []
    roles_seen = {task.partition(" : ")[0] for task, _ in site_tasks if " : " in task}
    assert roles_seen == set(ROLES)


def test_configure_tags_push_configuration_without_reinstalling(tmp_path):
    configure = ",".join(f"{role}_configure" for role in ROLES)
    selected = {task for task, _ in list_tasks("--tags", configure, tmp_path=tmp_path)}
    for install_step in (
        "base : Install base packages",
        "firewall : Install nftables",
        "node_exporter : Install prometheus-node-exporter",
        "log_agent : Create the alloy account",
        "log_agent : Install the alloy binary",
        "k3s_common : Install the k3s binary",
        "k3s_common : Write the k3s unit",
    ):
        assert install_step not in selected
    for configure_step in (
        "base : Write the SSH hardening settings",
        "firewall : Write the mlship table",
        "node_exporter : Harden the packaged unit",
        "log_agent : Render the candidate configuration",
        "log_agent : Validate the candidate configuration with alloy",
        "k3s_server : Write config.yaml",
        "k3s_agent : Write the server's token",
    ):
        assert configure_step in selected


def test_needs_binary_marks_exactly_the_steps_that_need_a_release_file(site_tasks):
    tagged = {task for task, tags in site_tasks if "needs_binary" in tags}
    assert tagged == NEEDS_BINARY


@pytest.mark.parametrize("role", ROLES)
def test_handlers_are_reached_through_listen_topics(role):
    path = ROLES_DIR / role / "handlers" / "main.yml"
    handlers = load(path) if path.is_file() else []
    assert all(handler.get("listen") for handler in handlers), f"{role}: a handler without listen"
    # A role also notifies the handlers of the role it imports (k3s_server, k3s_agent -> k3s_common).
    imported = [other for other, callers in CALLERS.items() if role in callers]
    available = {handler["listen"] for handler in handlers} | {
        handler["listen"]
        for other in imported
        for handler in load(ROLES_DIR / other / "handlers" / "main.yml")
    }
    for where, task in role_tasks(role):
        notify = task.get("notify")
        for topic in [notify] if isinstance(notify, str) else notify or []:
            assert topic in available, f"{where} notifies {topic!r}, which no handler listens to"
            # Topics are named after their role, so two roles never answer each other's notifications.
            assert topic.split(" ")[0] in (role, *imported), f"{where}: {topic!r}"


@pytest.mark.parametrize("role", ROLES)
def test_every_written_file_has_an_explicit_mode(role):
    loose = []
    for where, task in role_tasks(role):
        module = module_of(task)
        if module not in WRITERS:
            continue
        args = task[module] or {}
        if args.get("state") in NOT_WRITING_STATES:
            continue
        if "mode" not in args:
            loose.append(where)
    assert loose == []


def secrets() -> set[str]:
    names = set()
    for spec_file in ROLES_DIR.glob("*/meta/argument_specs.yml"):
        for entry in load(spec_file)["argument_specs"].values():
            names |= {name for name, spec in (entry.get("options") or {}).items() if spec.get("no_log")}
    inputs = load(REPO / "ansible" / "inputs_spec.yml")["mlship_inputs_spec"]
    names |= {name for name, spec in inputs.items() if spec.get("no_log")}
    return names


def test_every_task_handling_a_secret_is_no_log():
    tasks = list(playbook_tasks()) + [item for role in ROLES for item in role_tasks(role)]
    secret_names = secrets()
    # Results of tasks that read a secret (slurp of a token or kubeconfig) are secrets too.
    secret_names |= {task["register"] for _, task in tasks if task.get("no_log") and task.get("register")}
    assert {"k3s_server_token", "k3s_agent_registries", "log_agent_loki_password"} <= secret_names
    leaking = []
    for where, task in tasks:
        module = module_of(task)
        args = dict(task.get(module) or {}) if isinstance(task.get(module), dict) else task.get(module)
        if module == "ansible.builtin.assert":
            # Conditions are not printed; only the messages are.
            args = {key: value for key, value in args.items() if key != "that"}
        # Only templated values count: a message may name a secret variable without showing its value.
        text = " ".join(re.findall(r"{{.*?}}", json.dumps([args, task.get("vars"), task.get("environment")])))
        mentioned = {name for name in secret_names if re.search(rf"\b{re.escape(name)}\b", text)}
        if mentioned and task.get("no_log") is not True:
            leaking.append(f"{where} uses {sorted(mentioned)}")
    assert leaking == []

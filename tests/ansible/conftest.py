"""Fixtures for the Ansible tests: run ansible-playbook against this machine (local connection)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def run_playbook(tmp_path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ansible-playbook as a user would (roles from roles/, no user config) and return the result."""

    config = tmp_path / "ansible.cfg"
    config.write_text("[defaults]\n")

    def run(playbook: Path, inventory: Path, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
            "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
            "ANSIBLE_CONFIG": str(config),
            "ANSIBLE_DEPRECATION_WARNINGS": "0",
        }
        return subprocess.run(
            [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(playbook), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=300,
            check=False,
        )

    return run


@pytest.fixture
def local_inventory(tmp_path) -> Callable[..., Path]:
    """Write an inventory whose hosts are aliases of this machine, with the local environment's inputs."""

    def write(groups: dict[str, list[str]], **variables: object) -> Path:
        local = yaml.safe_load((REPO / "inventory" / "local" / "hosts.yml").read_text())["all"]["vars"]
        inputs = {key: value for key, value in local.items() if key.startswith("mlship_")}
        inputs.update(
            ansible_connection="local",
            ansible_python_interpreter=sys.executable,
            ansible_become=False,
            **variables,
        )
        children = {group: {"hosts": dict.fromkeys(names)} for group, names in groups.items()}
        for group in ("k3s_servers", "k3s_agents", "monitoring"):
            children.setdefault(group, {"hosts": {}})
        path = tmp_path / "inventory" / "hosts.yml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump({"all": {"vars": inputs, "children": children}}))
        return path

    return write

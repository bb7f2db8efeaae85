"""The four environments' inventories: complete inputs, the groups the playbooks target, and no variable that
would be silently ignored (a key the playbooks' group_vars own, or a name no role knows)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ENVIRONMENTS = ("dev", "staging", "prod", "local")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def inventory(env: str) -> dict:
    return load(REPO / "inventory" / env / "hosts.yml")


def all_variables(node: dict) -> dict:
    """Variables set anywhere in an inventory tree (group vars and host vars)."""
    found = dict(node.get("vars") or {})
    for host_vars in (node.get("hosts") or {}).values():
        found.update(host_vars or {})
    for child in (node.get("children") or {}).values():
        found.update(all_variables(child or {}))
    return found


def role_options() -> set[str]:
    names: set[str] = set()
    for spec_file in (REPO / "roles").glob("*/meta/argument_specs.yml"):
        for entry in load(spec_file)["argument_specs"].values():
            names.update(entry.get("options") or {})
    return names


INPUTS = load(REPO / "ansible" / "inputs_spec.yml")["mlship_inputs_spec"]
WIRED = set(load(REPO / "ansible" / "group_vars" / "all.yml"))


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_ansible_inventory_parses_it_with_the_groups_the_playbooks_target(env, tmp_path):
    config = tmp_path / "ansible.cfg"
    config.write_text("[defaults]\n")
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-inventory"),
            "-i",
            str(REPO / "inventory" / env),
            "--list",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "ANSIBLE_CONFIG": str(config)},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    listing = json.loads(proc.stdout)
    servers = listing["k3s_servers"]["hosts"]
    agents = listing["k3s_agents"]["hosts"]
    assert servers
    monitored = set(listing["monitoring"].get("hosts", []))
    for child in listing["monitoring"].get("children", []):
        monitored |= set(listing[child]["hosts"])
    assert set(servers) | set(agents) <= monitored


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_inventory_defines_every_input(env):
    variables = inventory(env)["all"]["vars"]
    required = {name for name, spec in INPUTS.items() if spec.get("required")}
    assert sorted(required - set(variables)) == []
    assert variables["mlship_env"] == env


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_inventory_sets_no_key_the_playbooks_own(env):
    # ansible/group_vars/all.yml outranks inventory group variables: such a setting would be ignored.
    overlap = sorted(set(all_variables(inventory(env)["all"])) & WIRED)
    assert overlap == [], f"inventory/{env} sets {overlap}, which ansible/group_vars/all.yml derives"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_inventory_sets_only_known_variables(env):
    known = role_options() | set(INPUTS)
    unknown = sorted(
        name
        for name in all_variables(inventory(env)["all"])
        if name not in known and not name.startswith(("ansible_", "vault_"))
    )
    assert unknown == [], f"inventory/{env}: no role or input is called {unknown}"


def test_wiring_only_sets_role_variables_and_its_own_helpers():
    roles = {p.name for p in (REPO / "roles").iterdir()}
    stray = sorted(
        name
        for name in WIRED
        if not name.startswith("mlship_") and not any(name.startswith(f"{r}_") for r in roles)
    )
    assert stray == []
    assert sorted((WIRED - {n for n in WIRED if n.startswith("mlship_")}) - role_options()) == []

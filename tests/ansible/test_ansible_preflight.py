"""A wrong variable stops the run before anything changes: each role checks its variables against its
argument spec first, and ansible/site.yml checks every role's variables on every host before its first
change (any_errors_fatal). Runs ansible-playbook in check mode on this machine; the checks fail before any
module would touch it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

BAD_VARIABLES = {
    "base": ("base_ssh_port", "twenty-two"),
    "firewall": ("firewall_allowed_ports", [{"name": "sctp-thing", "protocol": "sctp", "port": 5000}]),
    "node_exporter": ("node_exporter_install_method", "tarball"),
    "log_agent": ("log_agent_log_level", "verbose"),
    "k3s_server": ("k3s_server_api_port", "https"),
    "k3s_agent": ("k3s_agent_protect_kernel_defaults", "sometimes"),
}


def recap(output: str) -> dict[str, dict[str, int]]:
    hosts = {}
    for match in re.finditer(r"^(\S+)\s+:\s+(ok=.*)$", output, re.MULTILINE):
        hosts[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return hosts


@pytest.mark.parametrize("role", sorted(BAD_VARIABLES))
def test_role_rejects_a_wrong_variable_before_its_first_task(role, tmp_path, run_playbook, local_inventory):
    name, value = BAD_VARIABLES[role]
    inventory = local_inventory({"k3s_servers": ["target"]}, **{name: value})
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        yaml.safe_dump(
            [{"name": "Apply one role", "hosts": "target", "gather_facts": False, "roles": [role]}]
        )
    )
    result = run_playbook(playbook, inventory, "--check")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Validating arguments against arg spec" in output
    assert name in output
    tasks = re.findall(r"^TASK \[([^\]]+)\]", result.stdout, re.MULTILINE)
    assert tasks and all("Validating arguments" in task for task in tasks), tasks
    assert recap(result.stdout)["target"]["changed"] == 0


def _cluster_inventory(local_inventory, **host_vars_of_agent: object) -> Path:
    path = local_inventory({"k3s_servers": ["server-1"], "k3s_agents": ["agent-1"], "monitoring": []})
    inventory = yaml.safe_load(path.read_text())
    inventory["all"]["children"]["monitoring"] = {"children": {"k3s_servers": None, "k3s_agents": None}}
    inventory["all"]["children"]["k3s_agents"]["hosts"]["agent-1"] = host_vars_of_agent or None
    path.write_text(yaml.safe_dump(inventory))
    return path


def test_valid_wiring_passes_the_preflight(run_playbook, local_inventory):
    result = run_playbook(REPO / "ansible" / "preflight.yml", _cluster_inventory(local_inventory))
    assert result.returncode == 0, result.stdout + result.stderr
    hosts = recap(result.stdout)
    assert set(hosts) == {"server-1", "agent-1"}
    assert all(counts["failed"] == 0 and counts["changed"] == 0 for counts in hosts.values())


def test_site_stops_every_host_when_one_host_has_a_wrong_variable(run_playbook, local_inventory):
    inventory = _cluster_inventory(local_inventory, node_exporter_install_method="tarball")
    result = run_playbook(REPO / "ansible" / "site.yml", inventory, "--check")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "node_exporter_install_method" in output
    assert "tarball" in output
    # The first play after the preflight never started, on any host.
    assert "PLAY [Harden every host" not in result.stdout
    assert all(counts["changed"] == 0 for counts in recap(result.stdout).values())


def test_site_names_a_missing_environment_input(run_playbook, local_inventory):
    path = _cluster_inventory(local_inventory)
    inventory = yaml.safe_load(path.read_text())
    del inventory["all"]["vars"]["mlship_loki_url"]
    path.write_text(yaml.safe_dump(inventory))
    result = run_playbook(REPO / "ansible" / "site.yml", path, "--check")
    assert result.returncode != 0
    assert "mlship_loki_url" in result.stdout + result.stderr
    assert "PLAY [Harden every host" not in result.stdout

"""With install_method airgap, a missing release file stops the role with a message naming the file and the
directory, before the role has changed anything on the host. (Molecule skips these steps with the
needs_binary tag because the files cannot be obtained here; this test runs them, on this machine, in check
mode, against an empty air-gap directory.)"""

from __future__ import annotations

import re

import pytest
import yaml

CASES = {
    "k3s_server": ({"k3s_server_install_method": "airgap"}, "k3s_server_airgap_dir", ["install.sh", "k3s"]),
    "k3s_agent": (
        {"k3s_agent_server_url": "https://192.0.2.10:6443", "k3s_agent_token": "t"},
        "k3s_agent_airgap_dir",
        ["install.sh", "k3s-airgap-images-"],
    ),
    "log_agent": (
        {"log_agent_loki_url": "https://loki.example.com/loki/api/v1/push"},
        "log_agent_airgap_dir",
        ["alloy-linux-"],
    ),
    "node_exporter": (
        {"node_exporter_install_method": "airgap"},
        "node_exporter_airgap_dir",
        ["node_exporter-1."],
    ),
}
# Tasks allowed before the check: argument validation, assertions, looking at the controller's files.
READ_ONLY = re.compile(r"(Gathering Facts|Validating arguments|: Check |: Look for |: Fail clearly)")


@pytest.mark.parametrize("role", sorted(CASES))
def test_missing_release_file_fails_before_any_change(role, tmp_path, run_playbook, local_inventory):
    variables, airgap_var, expected_names = CASES[role]
    airgap = tmp_path / "airgap"
    airgap.mkdir()
    inventory = local_inventory({"k3s_servers": ["target"]}, **variables, **{airgap_var: str(airgap)})
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        yaml.safe_dump([{"name": "One role", "hosts": "target", "gather_subset": ["min"], "roles": [role]}])
    )

    result = run_playbook(playbook, inventory, "--check")

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "missing" in output
    assert str(airgap) in output
    for name in expected_names:
        assert name in output
    tasks = executed_tasks(result.stdout)
    assert "Fail clearly when" in tasks[-1]
    assert all(READ_ONLY.search(f": {task}") for task in tasks), tasks


def executed_tasks(stdout: str) -> list[str]:
    """Names of the tasks that ran on a host (not skipped), in order."""
    ran = []
    for chunk in stdout.split("TASK [")[1:]:
        name, _, body = chunk.partition("]")
        if re.search(r"^(ok|changed|fatal):", body, re.MULTILINE):
            ran.append(name)
    return ran

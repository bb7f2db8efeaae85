"""With install_method airgap, a missing release file stops the role with a message naming the file and the
directory, before the role has changed anything on the host. (Molecule skips these steps with the
needs_binary tag because the files cannot be obtained here; this test runs them, on this machine, in check
mode, against an empty air-gap directory.)

Also here, because they run the same roles the same way: every image archive of the air-gap directory is
installed, each checked against SHA256SUMS first; and a node joining with k3s's secure token read from the
first server passes check mode on fresh hosts and stops clearly in a real run when k3s has not written it."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

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


# --- Image archives: every *.tar / *.tar.zst of the air-gap directory, checked against SHA256SUMS ---
# The files below stand in for the k3s release and a model image tarball (`mlship build --export`): their
# content does not matter to the checks, only that it matches (or not) its SHA256SUMS line.
MODEL_ARCHIVE = "diabetes-regressor_d0f6df43bee0.tar"
AIRGAP_FILES = {
    "k3s": b"stand-in for the k3s binary\n",
    "install.sh": b"#!/bin/sh\n",
    "k3s-airgap-images-amd64.tar.zst": b"stand-in for k3s's images\n",
    "k3s-airgap-images-arm64.tar.zst": b"another architecture's images\n",
    MODEL_ARCHIVE: b"stand-in for the model image tarball\n",
}


def airgap_dir(tmp_path, listed: list[str]) -> Path:
    directory = tmp_path / "airgap"
    directory.mkdir()
    for name, content in AIRGAP_FILES.items():
        (directory / name).write_bytes(content)
    # The format `sha256sum` writes and `mlship build --export` appends to.
    (directory / "SHA256SUMS").write_text(
        "".join(f"{hashlib.sha256(AIRGAP_FILES[name]).hexdigest()}  {name}\n" for name in listed)
    )
    return directory


def run_airgap_steps(tmp_path, run_playbook, local_inventory, directory: Path):
    """The k3s_agent role's steps that use the air-gap directory, in check mode on this machine."""
    inventory = local_inventory(
        {"k3s_agents": ["target"]},
        k3s_agent_server_url="https://192.0.2.10:6443",
        k3s_agent_token="t",
        k3s_agent_airgap_dir=str(directory),
    )
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        yaml.safe_dump(
            [{"name": "Agent", "hosts": "target", "gather_subset": ["min"], "roles": ["k3s_agent"]}]
        )
    )
    return run_playbook(playbook, inventory, "--check", "--tags", "needs_binary")


def installed_images(stdout: str) -> list[str]:
    task = stdout.split("TASK [k3s_common : Install the air-gap images]")[1].split("TASK [")[0]
    return sorted(re.findall(r"\(item=([^)]+)\)", task))


def test_every_image_archive_is_verified_and_installed(tmp_path, run_playbook, local_inventory):
    listed = ["k3s", "k3s-airgap-images-amd64.tar.zst", MODEL_ARCHIVE]
    directory = airgap_dir(tmp_path, listed)

    result = run_airgap_steps(tmp_path, run_playbook, local_inventory, directory)

    # Every step up to the handlers passes (the handlers ask systemd, which is not PID 1 on this machine;
    # Molecule runs them in systemd containers).
    assert "fatal:" not in result.stdout.split("RUNNING HANDLER")[0], result.stdout[-3000:]
    verify = "k3s_common : Fail clearly when a file does not match its checksum line"
    assert verify in executed_tasks(result.stdout)
    # The model image goes where k3s imports it from, with k3s's own; the other architecture's does not.
    assert installed_images(result.stdout) == [MODEL_ARCHIVE, "k3s-airgap-images-amd64.tar.zst"]


def test_a_damaged_archive_stops_the_role_before_anything_is_installed(
    tmp_path, run_playbook, local_inventory
):
    directory = airgap_dir(tmp_path, ["k3s", "k3s-airgap-images-amd64.tar.zst", MODEL_ARCHIVE])
    (directory / MODEL_ARCHIVE).write_bytes(b"truncated during the copy")

    result = run_airgap_steps(tmp_path, run_playbook, local_inventory, directory)

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"{directory}/{MODEL_ARCHIVE}: checksum mismatch, expected " in output
    assert hashlib.sha256(b"truncated during the copy").hexdigest() in output
    tasks = executed_tasks(result.stdout)
    assert "Fail clearly when a file does not match its checksum line" in tasks[-1]
    assert not [task for task in tasks if "Install" in task]


def test_an_archive_without_a_checksum_line_is_refused(tmp_path, run_playbook, local_inventory):
    directory = airgap_dir(tmp_path, ["k3s", "k3s-airgap-images-amd64.tar.zst"])

    result = run_airgap_steps(tmp_path, run_playbook, local_inventory, directory)

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"{directory}/{MODEL_ARCHIVE}: not listed in SHA256SUMS or sha256sum-amd64.txt" in output
    assert not [task for task in executed_tasks(result.stdout) if "Install" in task]


# --- Joining with k3s's secure token, before the first server has written it ---


def run_agent_token_steps(tmp_path, run_playbook, local_inventory, *args: str):
    """The k3s_agent configuration steps, reading the token from a "server" whose k3s has not started yet
    (an alias of this machine without /var/lib/rancher/k3s/server/token)."""
    assert not Path("/var/lib/rancher/k3s/server/token").exists()
    inventory = local_inventory(
        {"k3s_servers": ["server"], "k3s_agents": ["agent"]},
        k3s_agent_server_url="https://192.0.2.10:6443",
        k3s_agent_token_from_host="server",
    )
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        yaml.safe_dump(
            [{"name": "Agent", "hosts": "agent", "gather_subset": ["min"], "roles": ["k3s_agent"]}]
        )
    )
    return run_playbook(playbook, inventory, "--tags", "k3s_agent_configure", *args)


def test_check_mode_on_fresh_hosts_passes_the_missing_server_token(tmp_path, run_playbook, local_inventory):
    result = run_agent_token_steps(tmp_path, run_playbook, local_inventory, "--check")
    # Up to the handlers (which ask systemd, not PID 1 on this machine) nothing fails; the token is not read.
    assert "fatal:" not in result.stdout.split("RUNNING HANDLER")[0], result.stdout[-3000:]
    tasks = executed_tasks(result.stdout)
    assert "k3s_agent : Fail clearly when the server has no token yet" in tasks
    assert "k3s_agent : Read the secure token on the server" not in tasks


def test_a_real_run_stops_clearly_when_the_server_has_no_token(tmp_path, run_playbook, local_inventory):
    result = run_agent_token_steps(tmp_path, run_playbook, local_inventory)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "server has no /var/lib/rancher/k3s/server/token: k3s has not started there" in output
    assert "Fail clearly when the server has no token yet" in executed_tasks(result.stdout)[-1]

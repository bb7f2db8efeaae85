"""Alloy log agent up to the binary: account with read access to the logs, unit, flags, the rendered
configuration (journal + files + pod logs to Loki) and a password kept out of it.

This host ships pod logs itself (log_agent_ship_pod_logs: true, a host without a cluster collector): the
kubelet writes them root:root 0640, so the unit's own sandbox must be able to read them. The alloy binary
cannot be downloaded here, so `cat` runs in its place under exactly the unit's user, groups, capabilities
and sandboxing (systemd-run with the unit's [Service] settings)."""

import re
import shlex

import pytest

CONFIG = "/etc/alloy/config.alloy"


def show(host, *props: str) -> dict[str, str]:
    out = host.check_output("systemctl show alloy " + " ".join(f"-p {p}" for p in props))
    return dict(line.split("=", 1) for line in out.splitlines())


def test_account_can_read_logs_and_nothing_else(host):
    user = host.user("alloy")
    assert user.exists
    assert user.shell == "/usr/sbin/nologin"
    assert user.uid < 1000
    assert {"systemd-journal", "adm"} <= set(user.groups)
    assert "sudo" not in user.groups


def test_directories(host):
    data = host.file("/var/lib/alloy")
    assert data.is_directory
    assert data.user == "alloy"
    assert data.mode == 0o750
    conf_dir = host.file("/etc/alloy")
    assert conf_dir.user == "root"
    assert conf_dir.group == "alloy"
    assert conf_dir.mode == 0o750


def test_unit_as_systemd_reads_it(host):
    unit = host.file("/etc/systemd/system/alloy.service")
    assert unit.mode == 0o644
    props = show(
        host, "User", "SupplementaryGroups", "ExecStart", "ProtectSystem", "ReadWritePaths", "NoNewPrivileges"
    )
    assert props["User"] == "alloy"
    assert set(props["SupplementaryGroups"].split()) == {"systemd-journal", "adm"}
    assert "path=/usr/local/bin/alloy" in props["ExecStart"]
    assert props["ProtectSystem"] == "strict"
    assert props["ReadWritePaths"] == "/var/lib/alloy"
    assert props["NoNewPrivileges"] == "yes"
    assert host.service("alloy").is_enabled


def test_flags_keep_the_ui_on_loopback(host):
    defaults = host.file("/etc/default/alloy")
    assert defaults.mode == 0o644
    assert 'CONFIG_FILE="/etc/alloy/config.alloy"' in defaults.content_string
    assert "--server.http.listen-addr=127.0.0.1:12345" in defaults.content_string
    assert "--disable-reporting" in defaults.content_string


def test_configuration_installed_from_the_validated_candidate(host):
    config = host.file(CONFIG)
    candidate = host.file(CONFIG + ".candidate")
    assert config.mode == 0o640
    assert config.user == "root"
    assert config.group == "alloy"
    assert config.sha256sum == candidate.sha256sum


def test_configuration_ships_journal_files_and_pods_to_loki(host):
    text = host.file(CONFIG).content_string
    assert 'url = "https://loki.example.com/loki/api/v1/push"' in text
    assert 'tenant_id = "mlship"' in text
    assert 'username = "shipper"' in text
    assert "password = local.file.loki_password.content" in text
    assert re.search(r'"env"\s*=\s*"molecule"', text)
    assert re.search(r'"host"\s*=\s*"molecule-log-agent"', text)
    assert 'loki.source.journal "journal"' in text
    assert "forward_to    = [loki.write.default.receiver]" in text
    assert '{"__path__" = "/var/log/*.log", "job" = "varlog"}' in text
    assert "/var/log/pods/*/*/*.log" in text
    assert "stage.cri {}" in text


def test_configuration_braces_balance(host):
    text = host.file(CONFIG).content_string
    code = "\n".join(line.split("//")[0] for line in text.splitlines())
    assert code.count("{") == code.count("}")
    assert code.count("[") == code.count("]")


def test_password_is_in_its_own_file_only(host):
    secret = host.file("/etc/alloy/loki-password")
    assert secret.mode == 0o640
    assert secret.user == "root"
    assert secret.group == "alloy"
    assert secret.content_string == "molecule-secret-not-in-config"
    assert "molecule-secret-not-in-config" not in host.file(CONFIG).content_string
    assert "molecule-secret-not-in-config" not in host.file("/etc/default/alloy").content_string


POD_LOG = "/var/log/pods/mlship_diabetes-regressor-stable-7d9f_0a1b2c/model/0.log"
LINE = "2026-12-06T02:00:00.000000000Z stdout F predicted 151.2"
# Settings of how the process is started rather than what it may do: left out when another command runs.
NOT_SANDBOX = {
    "Type", "ExecStart", "ExecReload", "EnvironmentFile", "WorkingDirectory",
    "Restart", "RestartSec", "TimeoutStopSec",
}  # fmt: skip


@pytest.fixture(scope="module")
def pod_log(host):
    """A container log where and as the kubelet writes it: directories 0755, the file root:root 0640."""
    directory = POD_LOG.rsplit("/", 1)[0]
    host.check_output(f"install -d -m 0755 -o root -g root {directory}")
    host.check_output(
        f"printf '%s\\n' {shlex.quote(LINE)} > {POD_LOG} && chown root:root {POD_LOG} && chmod 0640 {POD_LOG}"
    )
    yield POD_LOG
    host.run("rm -rf /var/log/pods/mlship_diabetes-regressor-stable-7d9f_0a1b2c")


def unit_sandbox(host) -> list[str]:
    """The [Service] settings of alloy.service that decide what the process may read."""
    text = host.file("/etc/systemd/system/alloy.service").content_string
    section = text.split("[Service]", 1)[1].split("[Install]", 1)[0]
    settings = [
        line.strip() for line in section.splitlines() if line.strip() and not line.strip().startswith("#")
    ]
    return [line for line in settings if line.split("=", 1)[0] not in NOT_SANDBOX]


def read_as_the_unit(host, settings: list[str], path: str):
    properties = " ".join(f"-p {shlex.quote(setting)}" for setting in settings)
    return host.run(f"systemd-run --quiet --wait --pipe --collect {properties} /bin/cat {path}")


def test_unit_grants_only_the_capability_to_read_pod_logs(host):
    props = show(host, "AmbientCapabilities", "CapabilityBoundingSet", "NoNewPrivileges", "User")
    assert props["AmbientCapabilities"] == "cap_dac_read_search"
    assert props["CapabilityBoundingSet"] == "cap_dac_read_search"
    assert props["NoNewPrivileges"] == "yes"
    assert props["User"] == "alloy"


def test_the_unit_sandbox_reads_a_root_only_pod_log(host, pod_log):
    assert host.file(pod_log).mode == 0o640 and host.file(pod_log).user == "root"
    result = read_as_the_unit(host, unit_sandbox(host), pod_log)
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == LINE


def test_without_the_capability_the_same_sandbox_is_refused(host, pod_log):
    """What the unit did before (no capability, groups systemd-journal and adm): the pod log is unreadable."""
    settings = [
        s for s in unit_sandbox(host) if not s.startswith(("AmbientCapabilities=", "CapabilityBoundingSet="))
    ]
    result = read_as_the_unit(host, [*settings, "AmbientCapabilities=", "CapabilityBoundingSet="], pod_log)
    assert result.rc != 0
    assert "Permission denied" in result.stderr + result.stdout

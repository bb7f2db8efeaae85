"""Node exporter: the Debian package host serves metrics (textfile collector included) from a hardened
unit; the release-binary host has everything up to the binary (account, unit, directories)."""

import json

import pytest

FLAGS = [
    "--web.listen-address=0.0.0.0:9100",
    "--collector.textfile.directory=/var/lib/prometheus/node-exporter",
    "--collector.systemd",
    "--collector.processes",
    "--no-collector.wifi",
]
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "read-only",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectControlGroups": "yes",
    "RestrictNamespaces": "yes",
    "MemoryDenyWriteExecute": "yes",
    "CapabilityBoundingSet": "",
}
ADDRESS_FAMILIES = {"AF_UNIX", "AF_NETLINK", "AF_INET", "AF_INET6"}
# systemd-analyze security: 0 (fully locked down) .. 10 (unsafe); a default unit scores about 9.6.
MAX_EXPOSURE = 2.5

FETCH = (
    "python3 -c 'import sys,urllib.request; "
    "print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "
)


def groups(host) -> list[str]:
    return host.ansible.get_variables()["group_names"]


def service_name(host) -> str:
    return "prometheus-node-exporter" if "package" in groups(host) else "node_exporter"


def show(host, unit: str, *props: str) -> dict[str, str]:
    out = host.check_output(f"systemctl show {unit} " + " ".join(f"-p {p}" for p in props))
    return dict(line.split("=", 1) for line in out.splitlines())


def test_textfile_directory(host):
    directory = host.file("/var/lib/prometheus/node-exporter")
    assert directory.is_directory
    assert directory.user == "root"
    assert directory.mode == 0o755


def test_unit_enabled(host):
    assert host.service(service_name(host)).is_enabled


def test_unit_hardening_is_effective(host):
    effective = show(host, service_name(host), *HARDENING, "RestrictAddressFamilies")
    assert set(effective.pop("RestrictAddressFamilies").split()) == ADDRESS_FAMILIES
    assert effective == HARDENING


def test_systemd_exposure_score(host):
    out = host.check_output(f"systemd-analyze security {service_name(host)} --no-pager")
    score = float(out.splitlines()[-1].split("exposure level for")[1].split(":")[1].split()[0])
    assert score <= MAX_EXPOSURE, out.splitlines()[-1]


def test_package_flags(host):
    if "package" not in groups(host):
        pytest.skip("Debian package host only")
    assert host.package("prometheus-node-exporter").is_installed
    defaults = host.file("/etc/default/prometheus-node-exporter")
    assert defaults.mode == 0o644
    assert f'ARGS="{" ".join(FLAGS)}"' in defaults.content_string


def test_package_service_serves_metrics_as_unprivileged_user(host):
    if "package" not in groups(host):
        pytest.skip("Debian package host only")
    service = host.service("prometheus-node-exporter")
    assert service.is_running
    assert host.socket("tcp://0.0.0.0:9100").is_listening
    main_pid = show(host, "prometheus-node-exporter", "MainPID")["MainPID"]
    assert host.process.get(pid=int(main_pid)).user == "prometheus"
    metrics = host.check_output(FETCH + "http://127.0.0.1:9100/metrics")
    assert "node_exporter_build_info{" in metrics
    assert 'node_systemd_unit_state{name="ssh.service"' in metrics or "node_systemd_units" in metrics
    assert "node_processes_state" in metrics or "node_processes_threads" in metrics
    assert "node_wifi" not in metrics


def test_textfile_collector_exports_dropped_files(host):
    if "package" not in groups(host):
        pytest.skip("Debian package host only")
    prom = "/var/lib/prometheus/node-exporter/molecule.prom"
    host.check_output(f"printf 'mlship_molecule_marker 42\\n' > {prom}.tmp && mv {prom}.tmp {prom}")
    try:
        metrics = host.check_output(FETCH + "http://127.0.0.1:9100/metrics")
        assert "mlship_molecule_marker 42" in metrics
    finally:
        host.run(f"rm -f {prom}")


def test_release_account_and_unit(host):
    if "release" not in groups(host):
        pytest.skip("release-binary host only")
    user = host.user("node-exporter")
    assert user.exists
    assert user.shell == "/usr/sbin/nologin"
    assert user.uid < 1000
    unit = host.file("/etc/systemd/system/node_exporter.service")
    assert unit.mode == 0o644
    assert unit.user == "root"
    props = show(host, "node_exporter", "User", "ExecStart", "FragmentPath")
    assert props["User"] == "node-exporter"
    assert props["FragmentPath"] == "/etc/systemd/system/node_exporter.service"
    assert "path=/usr/local/bin/node_exporter" in props["ExecStart"]
    assert all(flag in props["ExecStart"] for flag in FLAGS)
    # The binary itself cannot be obtained here (the install step is tagged needs_binary).
    assert not host.file("/usr/local/bin/node_exporter").exists


def test_unit_parses_cleanly(host):
    unit = f"/etc/systemd/system/multi-user.target.wants/{service_name(host)}.service"
    out = host.run(f"systemd-analyze verify --no-pager {unit}")
    problems = [
        line
        for line in (out.stdout + out.stderr).splitlines()
        if line.strip() and "is not executable" not in line and "No such file" not in line
    ]
    assert problems == [], json.dumps(problems)

"""Node exporter, on both hosts (Debian package and release binary): textfile directory, enabled and
hardened unit that systemd parses cleanly. Host-specific checks: test_node_exporter_package.py and
test_node_exporter_release.py."""

import json

from node_exporter_helpers import ADDRESS_FAMILIES, HARDENING, MAX_EXPOSURE, service_name, show


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


def test_unit_parses_cleanly(host):
    unit = f"/etc/systemd/system/multi-user.target.wants/{service_name(host)}.service"
    out = host.run(f"systemd-analyze verify --no-pager {unit}")
    problems = [
        line
        for line in (out.stdout + out.stderr).splitlines()
        if line.strip() and "is not executable" not in line and "No such file" not in line
    ]
    assert problems == [], json.dumps(problems)

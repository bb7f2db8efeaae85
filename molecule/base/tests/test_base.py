"""What a user relies on after the base role: who can log in and how, upgrades, time, kernel settings."""

import pytest

ADMIN = "mlship-admin"
SSH_OPTS = "-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5"


@pytest.mark.parametrize("package", ["openssh-server", "sudo", "chrony", "unattended-upgrades"])
def test_packages_installed(host, package):
    assert host.package(package).is_installed


def test_admin_account(host):
    user = host.user(ADMIN)
    assert user.exists
    assert user.shell == "/bin/bash"
    assert "mlship-admins" in user.groups
    # Locked password: the account can only be used with a key.
    assert host.check_output(f"passwd -S {ADMIN}").split()[1] == "L"


def test_admin_keys_are_exactly_the_configured_ones(host):
    keys = host.file(f"/home/{ADMIN}/.ssh/authorized_keys")
    assert keys.user == ADMIN
    assert keys.mode == 0o600
    expected = host.check_output("ssh-keygen -y -f /root/admin_key").split()[:2]
    lines = [line.split()[:2] for line in keys.content_string.splitlines() if line.strip()]
    assert lines == [expected]


def test_retired_account_removed(host):
    assert not host.user("legacy").exists


def test_sudoers_drop_in(host):
    sudoers = host.file("/etc/sudoers.d/mlship-admins")
    assert sudoers.mode == 0o440
    assert sudoers.user == "root"
    assert "%mlship-admins ALL=(ALL:ALL) NOPASSWD: ALL" in sudoers.content_string
    assert host.run("visudo -c").rc == 0


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("permitrootlogin", "no"),
        ("passwordauthentication", "no"),
        ("kbdinteractiveauthentication", "no"),
        ("permitemptypasswords", "no"),
        ("pubkeyauthentication", "yes"),
        ("authenticationmethods", "publickey"),
        ("allowgroups", "mlship-admins"),
        ("maxauthtries", "3"),
        ("x11forwarding", "no"),
        ("port", "22"),
    ],
)
def test_sshd_effective_settings(host, keyword, value):
    effective = dict(line.split(" ", 1) for line in host.check_output("sshd -T").splitlines() if " " in line)
    assert effective[keyword] == value


def test_sshd_drop_in_file(host):
    drop_in = host.file("/etc/ssh/sshd_config.d/00-mlship-hardening.conf")
    assert drop_in.mode == 0o644
    assert drop_in.user == "root"
    assert "PermitRootLogin no" in drop_in.content_string


def test_sshd_running_and_listening(host):
    sshd = host.service("ssh")
    assert sshd.is_enabled
    assert sshd.is_running
    assert host.socket("tcp://0.0.0.0:22").is_listening


def test_admin_logs_in_with_key_and_gets_root_without_password(host):
    out = host.check_output(f"ssh {SSH_OPTS} -i /root/admin_key {ADMIN}@127.0.0.1 sudo -n id -u")
    assert out.strip() == "0"


def test_root_login_refused_even_with_authorized_key(host):
    result = host.run(f"ssh {SSH_OPTS} -i /root/admin_key root@127.0.0.1 true")
    assert result.rc == 255
    assert "Permission denied" in result.stderr


def test_server_offers_no_password_authentication(host):
    result = host.run(
        f"ssh {SSH_OPTS} -o PubkeyAuthentication=no "
        f"-o PreferredAuthentications=password,keyboard-interactive {ADMIN}@127.0.0.1 true"
    )
    assert result.rc == 255
    assert "Permission denied (publickey)" in result.stderr


def test_unattended_upgrades_scheduled(host):
    periodic = host.file("/etc/apt/apt.conf.d/20auto-upgrades")
    assert periodic.mode == 0o644
    config = host.check_output("apt-config dump")
    assert 'APT::Periodic::Update-Package-Lists "1";' in config
    assert 'APT::Periodic::Unattended-Upgrade "1";' in config
    for timer in ("apt-daily.timer", "apt-daily-upgrade.timer"):
        assert host.service(timer).is_enabled


def test_unattended_upgrades_only_security_archives(host):
    # unattended-upgrade itself reads the configuration and prints what it would upgrade from.
    result = host.run("unattended-upgrade --dry-run --debug")
    assert result.rc == 0, result.stderr
    allowed = next(
        line for line in (result.stdout + result.stderr).splitlines() if "Allowed origins are" in line
    )
    assert "origin=Debian,codename=bookworm-security,label=Debian-Security" in allowed
    assert "codename=bookworm,label=Debian" not in allowed.replace("bookworm-security", "")


def test_chrony_configuration(host):
    conf = host.file("/etc/chrony/chrony.conf")
    assert conf.mode == 0o644
    assert "server time.example.com iburst" in conf.content_string
    assert "pool " not in conf.content_string
    # chronyd parses it (it cannot run in a container: no CAP_SYS_TIME, the unit is condition-skipped).
    parsed = host.check_output("chronyd -p -f /etc/chrony/chrony.conf")
    assert "server time.example.com iburst" in parsed
    assert host.service("chrony").is_enabled


def test_kubernetes_kernel_modules_file(host):
    modules = host.file("/etc/modules-load.d/mlship-kubernetes.conf")
    assert modules.mode == 0o644
    listed = [line for line in modules.content_string.splitlines() if line and not line.startswith("#")]
    assert listed == ["overlay", "br_netfilter"]


def test_kubernetes_sysctl_file(host):
    sysctl = host.file("/etc/sysctl.d/90-mlship-kubernetes.conf")
    assert sysctl.mode == 0o644
    settings = dict(
        (part.strip() for part in line.split("=", 1))
        for line in sysctl.content_string.splitlines()
        if line and not line.startswith("#")
    )
    assert settings["net.ipv4.ip_forward"] == "1"
    assert settings["net.bridge.bridge-nf-call-iptables"] == "1"
    assert settings["vm.overcommit_memory"] == "1"
    assert settings["kernel.panic"] == "10"

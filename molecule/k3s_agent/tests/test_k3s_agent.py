"""k3s agent up to the binary: it knows which server to join and with which token, and its unit is ready."""

import yaml


def show(host, *props: str) -> dict[str, str]:
    out = host.check_output("systemctl show k3s-agent " + " ".join(f"-p {p}" for p in props))
    return dict(line.split("=", 1) for line in out.splitlines())


def test_config_yaml_joins_the_server(host):
    config_file = host.file("/etc/rancher/k3s/config.yaml")
    assert config_file.mode == 0o600
    assert config_file.user == "root"
    config = yaml.safe_load(config_file.content_string)
    assert config["server"] == "https://k3s-api.example.internal:6443"
    assert config["token-file"] == "/etc/rancher/k3s/cluster-token"
    assert config["node-label"] == ["mlship.io/role=model"]
    assert config["node-taint"] == ["mlship.io/dedicated=model:NoSchedule"]
    assert config["protect-kernel-defaults"] is True
    # Server-only settings stay out of an agent's configuration.
    assert "tls-san" not in config
    assert "cluster-init" not in config


def test_join_token(host):
    token = host.file("/etc/rancher/k3s/cluster-token")
    assert token.mode == 0o600
    assert token.user == "root"
    assert token.content_string == "molecule-agent-token"


def test_no_registries_yaml_without_registries(host):
    assert not host.file("/etc/rancher/k3s/registries.yaml").exists


def test_unit_as_systemd_reads_it(host):
    unit = host.file("/etc/systemd/system/k3s-agent.service")
    assert unit.mode == 0o644
    props = show(host, "Type", "Delegate", "KillMode", "ExecStart")
    assert props["Type"] == "notify"
    assert props["Delegate"] == "yes"
    assert props["KillMode"] == "process"
    assert "argv[]=/usr/local/bin/k3s agent ;" in props["ExecStart"]
    assert host.service("k3s-agent").is_enabled
    assert host.file("/etc/systemd/system/k3s-agent.service.env").mode == 0o600


def test_binary_steps_were_skipped_not_faked(host):
    assert not host.file("/usr/local/bin/k3s").exists

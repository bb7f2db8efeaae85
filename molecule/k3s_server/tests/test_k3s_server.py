"""k3s server up to the binary: config.yaml, the join token left to k3s, registries.yaml, the unit and its
environment, as k3s and systemd would read them."""

import yaml


def read_yaml(host, path: str) -> dict:
    return yaml.safe_load(host.file(path).content_string)


def show(host, *props: str) -> dict[str, str]:
    out = host.check_output("systemctl show k3s " + " ".join(f"-p {p}" for p in props))
    return dict(line.split("=", 1) for line in out.splitlines())


def test_config_yaml(host):
    config_file = host.file("/etc/rancher/k3s/config.yaml")
    assert config_file.mode == 0o600
    assert config_file.user == "root"
    config = read_yaml(host, "/etc/rancher/k3s/config.yaml")
    assert config["https-listen-port"] == 6443
    assert config["tls-san"] == ["k3s-api.example.internal", "192.0.2.100"]
    assert config["cluster-cidr"] == "10.42.0.0/16"
    assert config["service-cidr"] == "10.43.0.0/16"
    assert config["secrets-encryption"] is True
    assert config["protect-kernel-defaults"] is True
    assert config["write-kubeconfig-mode"] == "0600"
    assert config["disable"] == ["traefik"]
    assert config["node-label"] == ["mlship.io/role=server"]
    assert config["kubelet-arg"] == ["max-pods=150"]
    # A single server neither initialises embedded etcd nor joins anyone.
    assert "cluster-init" not in config
    assert "server" not in config


def test_first_server_without_a_given_token_lets_k3s_generate_its_own(host):
    # k3s then writes its secure token (K10<CA hash>::server:...) to /var/lib/rancher/k3s/server/token on
    # first start, which joining nodes read; config.yaml names no token file of ours.
    config = read_yaml(host, "/etc/rancher/k3s/config.yaml")
    assert "token-file" not in config
    assert not host.file("/etc/rancher/k3s/cluster-token").exists


def test_registries_yaml_holds_mirrors_and_credentials(host):
    registries = host.file("/etc/rancher/k3s/registries.yaml")
    assert registries.mode == 0o600
    assert registries.user == "root"
    content = read_yaml(host, "/etc/rancher/k3s/registries.yaml")
    assert content["mirrors"]["docker.io"]["endpoint"] == ["https://registry.example.internal"]
    assert content["configs"]["registry.example.internal"]["auth"]["username"] == "puller"


def test_unit_as_systemd_reads_it(host):
    unit = host.file("/etc/systemd/system/k3s.service")
    assert unit.mode == 0o644
    props = show(host, "Type", "Delegate", "KillMode", "ExecStart", "Restart", "LimitNOFILE", "FragmentPath")
    assert props["Type"] == "notify"
    assert props["Delegate"] == "yes"
    assert props["KillMode"] == "process"
    assert props["Restart"] == "always"
    assert props["LimitNOFILE"] == "1048576"
    assert "path=/usr/local/bin/k3s ; argv[]=/usr/local/bin/k3s server ;" in props["ExecStart"]
    assert props["FragmentPath"] == "/etc/systemd/system/k3s.service"
    assert host.service("k3s").is_enabled


def test_unit_environment(host):
    env = host.file("/etc/systemd/system/k3s.service.env")
    assert env.mode == 0o600
    props = show(host, "Environment")
    assert "HTTPS_PROXY=http://proxy.example.internal:3128" in props["Environment"] or (
        'HTTPS_PROXY="http://proxy.example.internal:3128"' in env.content_string
    )
    assert 'NO_PROXY="127.0.0.0/8,10.0.0.0/8,.svc,.cluster.local"' in env.content_string


def test_image_directory_ready_for_airgap_archive(host):
    images = host.file("/var/lib/rancher/k3s/agent/images")
    assert images.is_directory
    assert images.mode == 0o755


def test_binary_steps_were_skipped_not_faked(host):
    # k3s cannot be downloaded on these machines: the binary, images and install script steps are tagged
    # needs_binary and skipped, so nothing pretends to be k3s.
    assert not host.file("/usr/local/bin/k3s").exists
    assert not host.file("/usr/local/bin/k3s-uninstall.sh").exists

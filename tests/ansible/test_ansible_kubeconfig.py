"""ansible/kubeconfig.yml turns the kubeconfig k3s writes on the first server into the one Pulumi reads.

k3s cannot run here, so the playbook reads a k3s.yaml written in the exact layout k3s produces (the data
format, not a stand-in for the binary) from a path given with -e mlship_kubeconfig_source."""

from __future__ import annotations

import stat
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]

K3S_YAML = """apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Q0EtREFUQQ==
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: default
  user:
    client-certificate-data: Q0xJRU5ULUNFUlQ=
    client-key-data: Q0xJRU5ULUtFWQ==
"""


def test_kubeconfig_points_at_the_api_and_is_private(tmp_path, run_playbook, local_inventory):
    source = tmp_path / "k3s.yaml"
    source.write_text(K3S_YAML)
    out_dir = tmp_path / "out"
    inventory = local_inventory(
        {"k3s_servers": ["server-1"]},
        mlship_env="staging",
        mlship_k3s_api_host="k3s-api.staging.example.com",
        mlship_kubeconfig_dir=str(out_dir),
    )
    result = run_playbook(
        REPO / "ansible" / "kubeconfig.yml", inventory, "-e", f"mlship_kubeconfig_source={source}"
    )
    assert result.returncode == 0, result.stdout + result.stderr

    written = out_dir / "kubeconfig-staging"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE(out_dir.stat().st_mode) == 0o700
    config = yaml.safe_load(written.read_text())
    assert config["current-context"] == "mlship-staging"
    assert config["clusters"] == [
        {
            "name": "mlship-staging",
            "cluster": {
                "certificate-authority-data": "Q0EtREFUQQ==",
                "server": "https://k3s-api.staging.example.com:6443",
            },
        }
    ]
    assert config["users"] == [
        {
            "name": "mlship-staging",
            "user": {"client-certificate-data": "Q0xJRU5ULUNFUlQ=", "client-key-data": "Q0xJRU5ULUtFWQ=="},
        }
    ]
    assert config["contexts"] == [
        {"name": "mlship-staging", "context": {"cluster": "mlship-staging", "user": "mlship-staging"}}
    ]
    # The client key never appears in Ansible's output.
    assert "Q0xJRU5ULUtFWQ==" not in result.stdout + result.stderr


def test_kubeconfig_defaults_to_the_first_server_address(tmp_path, run_playbook, local_inventory):
    source = tmp_path / "k3s.yaml"
    source.write_text(K3S_YAML)
    inventory = local_inventory(
        {"k3s_servers": ["server-1"]}, mlship_kubeconfig_dir=str(tmp_path), mlship_k3s_api_host=""
    )
    raw = yaml.safe_load(inventory.read_text())
    raw["all"]["children"]["k3s_servers"]["hosts"]["server-1"] = {"ansible_host": "192.0.2.10"}
    inventory.write_text(yaml.safe_dump(raw))
    result = run_playbook(
        REPO / "ansible" / "kubeconfig.yml", inventory, "-e", f"mlship_kubeconfig_source={source}"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((tmp_path / "kubeconfig-local").read_text())
    assert config["clusters"][0]["cluster"]["server"] == "https://192.0.2.10:6443"

"""What ansible/group_vars/all.yml derives for each host of the shipped inventories, as Ansible itself
templates it (`ansible HOSTS -m debug --playbook-dir ansible`, no connection to any host): the ports each
host's firewall opens (exactly SSH, the exporter and the k3s ports its groups need), and how the cluster is
wired (who initialises embedded etcd, whom servers and agents join)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

WIRING = (
    "{{ {'ports': firewall_allowed_ports, 'ssh': firewall_ssh_port, 'trusted': firewall_trusted_networks,"
    " 'forwarded': firewall_forwarded_ports,"
    " 'cluster_init': k3s_server_cluster_init, 'join_url': k3s_server_join_url,"
    " 'agent_server_url': k3s_agent_server_url, 'token_from': k3s_agent_token_from_host,"
    " 'tls_host': k3s_server_api_host} }}"
)


def wiring(env: str, tmp_path: Path) -> dict[str, dict]:
    """Each host's derived variables in inventory/<env>, templated by Ansible."""
    config = tmp_path / "ansible.cfg"
    config.write_text("[defaults]\n")
    proc = subprocess.run(
        [
            str(VENV_BIN / "ansible"),
            "-i",
            str(REPO / "inventory" / env),
            "all",
            "--playbook-dir",
            str(REPO / "ansible"),
            "-m",
            "ansible.builtin.debug",
            "-a",
            f"msg={WIRING}",
        ],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "ANSIBLE_CONFIG": str(config),
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
            "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
            "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        },
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    hosts = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]
    return {name: result["msg"] for name, result in hosts.items()}


def opened(ports: list[dict]) -> set[tuple]:
    return {
        (p["name"], p.get("protocol", "tcp"), int(p["port"]), p.get("port_end"), tuple(p.get("sources", [])))
        for p in ports
    }


# Only from the monitoring networks (the example node network in the shipped inventories).
EXPORTER = ("node-exporter", "tcp", 9100, None, ("192.0.2.0/24",))


def k3s_ports(networks: tuple[str, ...], *, server: bool, etcd: bool) -> set[tuple]:
    ports = {("kubelet", "tcp", 10250, None, networks), ("flannel-vxlan", "udp", 8472, None, networks)}
    if server:
        ports.add(("k3s-api", "tcp", 6443, None, ()))
    if etcd:
        ports.add(("etcd", "tcp", 2379, 2380, networks))
    return ports


@pytest.fixture(scope="module")
def staging(tmp_path_factory) -> dict[str, dict]:
    return wiring("staging", tmp_path_factory.mktemp("staging"))


@pytest.fixture(scope="module")
def prod(tmp_path_factory) -> dict[str, dict]:
    # prod's join token comes from the vault; only the variables above are templated, so none is needed.
    return wiring("prod", tmp_path_factory.mktemp("prod"))


def test_single_server_opens_no_etcd_port(staging):
    server = staging["staging-server-1"]
    assert opened(server["ports"]) == k3s_ports((), server=True, etcd=False) | {EXPORTER}
    assert server["ssh"] == 22


@pytest.mark.parametrize("agent", ["staging-agent-1", "staging-agent-2"])
def test_agents_open_kubelet_vxlan_and_exporter_only(staging, agent):
    assert opened(staging[agent]["ports"]) == k3s_ports((), server=False, etcd=False) | {EXPORTER}


def test_ha_servers_open_etcd_to_the_node_network_only(prod):
    networks = ("192.0.2.0/24",)
    for name in ("prod-server-1", "prod-server-2", "prod-server-3"):
        assert opened(prod[name]["ports"]) == k3s_ports(networks, server=True, etcd=True) | {EXPORTER}
    for name in ("prod-agent-1", "prod-agent-2", "prod-agent-3"):
        assert opened(prod[name]["ports"]) == k3s_ports(networks, server=False, etcd=False) | {EXPORTER}


def test_pod_and_service_networks_are_trusted_on_cluster_nodes(staging):
    for host in staging.values():
        assert host["trusted"] == ["10.42.0.0/16", "10.43.0.0/16"]


def test_single_server_cluster_wiring(staging):
    server = staging["staging-server-1"]
    assert server["cluster_init"] is False
    assert server["join_url"] == ""
    assert server["tls_host"] == "192.0.2.20"
    for agent in ("staging-agent-1", "staging-agent-2"):
        assert staging[agent]["agent_server_url"] == "https://192.0.2.20:6443"
        assert staging[agent]["token_from"] == "staging-server-1"


def test_ha_cluster_wiring(prod):
    first = prod["prod-server-1"]
    assert first["cluster_init"] is True
    assert first["join_url"] == ""
    for name in ("prod-server-2", "prod-server-3"):
        assert prod[name]["cluster_init"] is False
        assert prod[name]["join_url"] == "https://192.0.2.30:6443"
    for name in ("prod-server-1", "prod-server-2", "prod-server-3"):
        # The API load balancer's name goes into every server's certificate.
        assert prod[name]["tls_host"] == "k3s-api.prod.example.com"
    # Agents register through the load balancer, with the first server's token.
    assert prod["prod-agent-1"]["agent_server_url"] == "https://k3s-api.prod.example.com:6443"
    assert prod["prod-agent-1"]["token_from"] == "prod-server-1"


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_only_the_gateway_port_is_routed_to_pods(env, staging, prod):
    """The forward chain lets in exactly the Gateway listener's port (ServiceLB's hostPort on every node),
    the port the stack's Gateway listens on: 80, or 443 with TLS (mlship:gateway.tls in the stack file)."""
    from mlship.k8s.stack_config import read_stack_file, validate

    hosts = {"staging": staging, "prod": prod}[env]
    raw, _ = read_stack_file(REPO / "pulumi" / f"Pulumi.{env}.yaml")
    port = validate(raw).gateway.listener_port
    assert port == (443 if env == "prod" else 80)
    for host in hosts.values():
        assert opened(host["forwarded"]) == {("gateway", "tcp", port, None, ())}

"""ansible/site.yml on inventory/local (one server, two agents): every host hardened and monitored, agents
wired to the first server with its token, and the firewall of each host open to exactly its own ports.

Reachability is measured between the containers over their Docker network, as nodes would talk."""

import base64
import json
import re

import pytest
import testinfra
import yaml

SERVER = "molecule-cluster-server"
AGENTS = ["molecule-cluster-agent-1", "molecule-cluster-agent-2"]

PROBE = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()
    print("open")
except ConnectionRefusedError:
    print("refused")
except OSError:
    print("dropped")
"""


def node(name: str):
    return testinfra.get_host(f"docker://{name}")


def probe(source: str, target: str, port: int) -> str:
    """How a TCP connection from one node to another ends: open, refused (allowed, no listener) or dropped."""
    client = node(source)
    encoded = base64.b64encode(PROBE.encode()).decode()
    client.check_output(f"echo {encoded} | base64 -d > /tmp/probe.py")
    address = node(target).check_output("hostname -i").split()[0]
    return client.check_output(f"python3 /tmp/probe.py {address} {port}").strip()


def test_ssh_hardened(host):
    effective = dict(line.split(" ", 1) for line in host.check_output("sshd -T").splitlines() if " " in line)
    assert effective["permitrootlogin"] == "no"
    assert effective["passwordauthentication"] == "no"
    assert host.service("ssh").is_running


def test_monitoring_agents(host):
    assert host.service("prometheus-node-exporter").is_running
    assert host.socket("tcp://0.0.0.0:9100").is_listening
    config = host.file("/etc/alloy/config.alloy").content_string
    assert 'url = "http://loki.invalid:3100/loki/api/v1/push"' in config
    assert '"env" = "local"' in config
    assert host.service("alloy").is_enabled


def test_host_alloy_leaves_pod_logs_to_the_cluster_collector(host):
    """One owner per log line: pod logs belong to the cluster's Alloy DaemonSet; the host Alloy ships the
    journal and /var/log/*.log, and gets no capability to read /var/log/pods."""
    config = host.file("/etc/alloy/config.alloy").content_string
    assert 'loki.source.journal "journal"' in config
    assert "/var/log/pods" not in config
    out = host.check_output("systemctl show alloy -p AmbientCapabilities -p CapabilityBoundingSet")
    assert dict(line.split("=", 1) for line in out.splitlines()) == {
        "AmbientCapabilities": "",
        "CapabilityBoundingSet": "",
    }


def test_kernel_settings_written_not_applied_in_containers(host):
    assert host.file("/etc/sysctl.d/90-mlship-kubernetes.conf").contains("net.ipv4.ip_forward = 1")
    assert host.file("/etc/modules-load.d/mlship-kubernetes.conf").contains("br_netfilter")


def test_first_server_initialises_the_cluster():
    server = node(SERVER)
    config = yaml.safe_load(server.file("/etc/rancher/k3s/config.yaml").content_string)
    assert "server" not in config
    assert "cluster-init" not in config  # a single server: no embedded etcd needed
    assert config["tls-san"] == [SERVER]
    assert server.service("k3s").is_enabled
    # No token given (mlship_k3s_token is empty): k3s generates its own; no passphrase file of ours.
    assert "token-file" not in config
    assert not server.file("/etc/rancher/k3s/cluster-token").exists


@pytest.mark.parametrize("agent", AGENTS)
def test_agents_join_the_first_server_with_its_secure_token(agent):
    """Agents get k3s's own token of the first server (K10<CA hash>::server:...), so they check the CA of
    the server they join before sending the credential. (prepare.yml wrote that file where k3s writes it.)"""
    config = yaml.safe_load(node(agent).file("/etc/rancher/k3s/config.yaml").content_string)
    assert config["server"] == f"https://{SERVER}:6443"
    assert config["token-file"] == "/etc/rancher/k3s/cluster-token"
    token = node(agent).file("/etc/rancher/k3s/cluster-token")
    assert token.mode == 0o600
    server_token = node(SERVER).file("/var/lib/rancher/k3s/server/token").content_string.strip()
    assert token.content_string == server_token
    assert re.fullmatch(r"K10[0-9a-f]{64}::server:\S+", token.content_string)
    assert node(agent).service("k3s-agent").is_enabled
    assert not node(agent).file("/etc/systemd/system/k3s.service").exists


def accepted_ports(name: str) -> set[tuple[str, int]]:
    """(protocol, port) of every port the loaded mlship table accepts, read from nft's JSON output."""
    ruleset = json.loads(node(name).check_output("nft -j list chain inet mlship_filter input"))
    ports = set()
    for item in ruleset["nftables"]:
        expressions = item.get("rule", {}).get("expr", [])
        if not any("accept" in expression for expression in expressions):
            continue
        for expression in expressions:
            left = expression.get("match", {}).get("left", {})
            if isinstance(left, dict) and left.get("payload", {}).get("field") == "dport":
                right = expression["match"]["right"]
                first, last = right["range"] if isinstance(right, dict) else (right, right)
                ports |= {(left["payload"]["protocol"], port) for port in range(first, last + 1)}
    return ports


NODE_PORTS = {("tcp", 22), ("tcp", 9100), ("tcp", 10250), ("udp", 8472)}


def test_server_opens_exactly_ssh_exporter_api_kubelet_and_vxlan():
    # One server: no embedded etcd, so 2379-2380 stay closed.
    assert accepted_ports(SERVER) == NODE_PORTS | {("tcp", 6443)}


@pytest.mark.parametrize("agent", AGENTS)
def test_agents_open_exactly_ssh_exporter_kubelet_and_vxlan(agent):
    assert accepted_ports(agent) == NODE_PORTS


@pytest.mark.parametrize("name", [SERVER, *AGENTS])
def test_forward_chain_routes_pods_and_the_gateway_port_only(name):
    host = node(name)
    host.check_output("nft -c -f /etc/nftables.d/mlship.nft")
    chain = host.check_output("nft list chain inet mlship_filter forward")
    assert "hook forward priority filter; policy drop;" in chain
    assert 'ct status dnat ct original proto-dst 80 accept comment "gateway"' in chain
    assert chain.count("ct original proto-dst") == 1
    trusted = next(line for line in chain.splitlines() if 'comment "trusted networks"' in line)
    assert "10.42.0.0/15" in trusted or ("10.42.0.0/16" in trusted and "10.43.0.0/16" in trusted)


@pytest.mark.parametrize("name", [SERVER, *AGENTS])
def test_pod_and_service_networks_trusted(name):
    rules = node(name).check_output("nft list table inet mlship_filter")
    trusted = next(line for line in rules.splitlines() if 'comment "trusted networks"' in line)
    # nft merges the adjacent pod (10.42/16) and service (10.43/16) networks into one prefix.
    assert "10.42.0.0/15" in trusted or ("10.42.0.0/16" in trusted and "10.43.0.0/16" in trusted)


def test_api_port_open_on_the_server_only():
    # Nothing listens on 6443 (no k3s binary here): "refused" proves the firewall let the packet through.
    assert probe(AGENTS[0], SERVER, 6443) == "refused"
    assert probe(SERVER, AGENTS[0], 6443) == "dropped"


def test_exporter_reachable_from_the_monitoring_network_only():
    # inventory/local: mlship_monitoring_networks is agent-1's address (standing in for the Prometheus host).
    assert probe(AGENTS[0], SERVER, 9100) == "open"
    assert probe(AGENTS[0], AGENTS[1], 9100) == "open"
    assert probe(AGENTS[1], SERVER, 9100) == "dropped"
    assert probe(SERVER, AGENTS[0], 9100) == "dropped"


def test_ssh_reachable_between_nodes():
    assert probe(SERVER, AGENTS[1], 22) == "open"


def test_other_ports_dropped():
    # Alloy's UI port, and a port nothing is meant to serve.
    assert probe(AGENTS[0], SERVER, 12345) == "dropped"
    assert probe(AGENTS[0], AGENTS[1], 8080) == "dropped"

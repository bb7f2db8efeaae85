"""The firewall lets in exactly SSH and the listed ports, and reloading it leaves other tables alone.

Traffic is sent from a network namespace inside the container (a veth pair), so packets really cross the
input hook of an interface other than loopback, as they would from another machine.
"""

import base64

import pytest

HOST_IP = "10.200.0.1"
CLIENT_IP = "10.200.0.2"

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


@pytest.fixture(scope="module")
def client(host):
    """A client namespace linked to the container by a veth pair; yields a probe function."""
    setup = [
        "ip netns add fwclient",
        "ip link add fw0 type veth peer name fw1",
        "ip link set fw1 netns fwclient",
        f"ip addr add {HOST_IP}/24 dev fw0",
        "ip link set fw0 up",
        f"ip netns exec fwclient ip addr add {CLIENT_IP}/24 dev fw1",
        "ip netns exec fwclient ip link set fw1 up",
        "ip netns exec fwclient ip link set lo up",
    ]
    for command in setup:
        host.check_output(command)
    encoded = base64.b64encode(PROBE.encode()).decode()
    host.check_output(f"echo {encoded} | base64 -d > /tmp/probe.py")
    # A real listener on an allowed port and one on a port that is not opened.
    for port in (9100, 18080):
        host.check_output(
            f"nohup python3 -c 'import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, "
            f'socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", {port})); s.listen(); time.sleep(600)\' '
            f">/dev/null 2>&1 & echo $! >> /tmp/listeners.pid"
        )
    host.check_output("for i in $(seq 50); do ss -ltn | grep -q ':18080 ' && break; sleep 0.1; done")

    def probe(port: int) -> str:
        return host.check_output(f"ip netns exec fwclient python3 /tmp/probe.py {HOST_IP} {port}").strip()

    yield probe
    host.run("kill $(cat /tmp/listeners.pid); rm -f /tmp/listeners.pid /tmp/probe.py")
    host.run("ip link del fw0; ip netns del fwclient")


LISTENER = (
    "import socket, time; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
    's.bind(("0.0.0.0", {port})); s.listen(); time.sleep(600)'
)
POD_IP = "10.42.0.2"  # in the trusted pod network of converge.yml


@pytest.fixture(scope="module")
def routed(host, client):
    """The container as a node routing for a pod: a "pod" namespace (10.42.0.2) behind a second veth pair,
    listeners there, and NodePort-style DNAT rules in a table of their own standing in for kube-proxy's
    (node:30080 -> pod:8080 published, node:30081 -> pod:8081 and node:30090 -> pod:8082 not published to
    this client). Yields probe(namespace, address, port)."""
    setup = [
        "ip netns add fwpod",
        "ip link add pod0 type veth peer name pod1",
        "ip link set pod1 netns fwpod",
        "ip addr add 10.42.0.1/24 dev pod0",
        "ip link set pod0 up",
        f"ip netns exec fwpod ip addr add {POD_IP}/24 dev pod1",
        "ip netns exec fwpod ip link set pod1 up",
        "ip netns exec fwpod ip link set lo up",
        "ip netns exec fwpod ip route add default via 10.42.0.1",
        f"ip netns exec fwclient ip route add default via {HOST_IP}",
        "nft add table ip kube_proxy_stand_in",
        "nft 'add chain ip kube_proxy_stand_in prerouting { type nat hook prerouting priority dstnat; }'",
        f"nft add rule ip kube_proxy_stand_in prerouting tcp dport 30080 dnat to {POD_IP}:8080",
        f"nft add rule ip kube_proxy_stand_in prerouting tcp dport 30081 dnat to {POD_IP}:8081",
        f"nft add rule ip kube_proxy_stand_in prerouting tcp dport 30090 dnat to {POD_IP}:8082",
    ]
    for command in setup:
        host.check_output(command)
    for namespace, port in (("fwpod", 8080), ("fwpod", 8081), ("fwpod", 8082), ("fwclient", 9000)):
        host.check_output(
            f"nohup ip netns exec {namespace} python3 -c '{LISTENER.format(port=port)}' "
            ">/dev/null 2>&1 & echo $! >> /tmp/routed.pid"
        )
    host.check_output(
        "for i in $(seq 50); do ip netns exec fwclient ss -ltn | grep -q ':9000 ' && break; sleep 0.1; done"
    )

    def probe(namespace: str, address: str, port: int) -> str:
        return host.check_output(f"ip netns exec {namespace} python3 /tmp/probe.py {address} {port}").strip()

    yield probe
    host.run("kill $(cat /tmp/routed.pid); rm -f /tmp/routed.pid")
    host.run("nft delete table ip kube_proxy_stand_in; ip link del pod0; ip netns del fwpod")


def test_nftables_installed_enabled_and_active(host):
    assert host.package("nftables").is_installed
    service = host.service("nftables")
    assert service.is_enabled
    assert service.is_running


def test_entry_point_includes_rules_without_flushing_everything(host):
    conf = host.file("/etc/nftables.conf")
    assert conf.mode == 0o755
    assert 'include "/etc/nftables.d/*.nft"' in conf.content_string
    statements = [line for line in conf.content_string.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in statements if "flush" in line]
    rules = host.file("/etc/nftables.d/mlship.nft")
    assert rules.mode == 0o644
    assert rules.user == "root"


def test_loaded_table_drops_by_default(host):
    table = host.check_output("nft list table inet mlship_filter")
    assert "hook input priority filter; policy drop;" in table
    assert "ct state established,related accept" in table
    assert 'tcp dport 22 accept comment "ssh"' in table
    assert 'tcp dport 9100 accept comment "node-exporter"' in table
    assert 'ip saddr 10.200.0.0/24 udp dport 8472 accept comment "flannel-vxlan"' in table
    assert 'ip saddr 192.0.2.0/24 tcp dport 2379-2380 accept comment "etcd"' in table
    assert 'ip6 saddr 2001:db8::/32 tcp dport 2379-2380 accept comment "etcd"' in table
    assert "ip saddr 10.42.0.0/16 accept" in table
    assert "ip6 saddr fd00:42::/56 accept" in table
    assert 'log prefix "mlship-drop "' in table


def test_only_listed_ports_accept_tcp(client):
    assert client(9100) == "open"
    # Allowed but nothing listens: the kernel answers with a reset instead of the firewall dropping.
    assert client(22) == "refused"
    # Something listens, but the port is not opened.
    assert client(18080) == "dropped"
    # Open only to 192.0.2.0/24 and 2001:db8::/32, not to this client.
    assert client(2379) == "dropped"


def test_forward_chain_rendered_and_valid(host):
    # The file as written passes nft's own check, and the loaded table holds the forward chain.
    host.check_output("nft -c -f /etc/nftables.d/mlship.nft")
    chain = host.check_output("nft list chain inet mlship_filter forward")
    assert "hook forward priority filter; policy drop;" in chain
    assert "ct state established,related accept" in chain
    assert 'ip saddr 10.42.0.0/16 accept comment "trusted networks"' in chain
    assert 'ip6 saddr fd00:42::/56 accept comment "trusted networks"' in chain
    assert 'ct status dnat ct original proto-dst 30080 accept comment "gateway-nodeport"' in chain
    admin = next(line for line in chain.splitlines() if 'comment "admin-nodeport"' in line)
    assert "ip saddr 192.0.2.0/24" in admin and "ct original proto-dst 30090 accept" in admin


def test_only_published_node_ports_reach_a_pod(routed):
    """Issue 11 defect 6: with only the input hook filtered, every NodePort, hostPort and ServiceLB port was
    open to everyone."""
    assert routed("fwclient", HOST_IP, 30080) == "open"  # published
    assert routed("fwclient", HOST_IP, 30081) == "dropped"  # a NodePort nobody published
    assert routed("fwclient", HOST_IP, 30090) == "dropped"  # published to 192.0.2.0/24 only


def test_pods_are_not_reachable_by_routing_around_the_dnat(routed):
    assert routed("fwclient", POD_IP, 8080) == "dropped"


def test_pod_traffic_is_forwarded_and_answered(routed):
    # From the trusted pod network out (pod egress, or another node's pod): forwarded, replies come back.
    assert routed("fwpod", CLIENT_IP, 9000) == "open"


def test_dropped_packets_are_counted(host, client):
    before = _dropped(host)
    assert client(18080) == "dropped"
    assert _dropped(host) > before


def test_reload_replaces_only_the_mlship_table(host):
    host.check_output("nft add table inet othertable")
    try:
        host.check_output("systemctl reload nftables")
        tables = host.check_output("nft list tables")
        assert "table inet othertable" in tables
        assert "table inet mlship_filter" in tables
        assert tables.count("table inet mlship_filter") == 1
    finally:
        host.run("nft delete table inet othertable")


def _dropped(host) -> int:
    line = next(
        line
        for line in host.check_output("nft list chain inet mlship_filter input").splitlines()
        if "dropped" in line
    )
    return int(line.split("packets")[1].split()[0])

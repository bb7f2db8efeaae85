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

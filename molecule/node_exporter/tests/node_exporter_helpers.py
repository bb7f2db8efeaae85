"""What the node exporter tests share: expected flags and hardening, and small host helpers."""

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

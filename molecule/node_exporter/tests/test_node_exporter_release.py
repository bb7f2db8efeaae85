"""The release-binary host has everything up to the binary: account, unit, flags (no binary faked)."""

from node_exporter_helpers import FLAGS, show

testinfra_hosts = ["ansible://molecule-node-exporter-bin"]


def test_release_account_and_unit(host):
    user = host.user("node-exporter")
    assert user.exists
    assert user.shell == "/usr/sbin/nologin"
    assert user.uid < 1000
    unit = host.file("/etc/systemd/system/node_exporter.service")
    assert unit.mode == 0o644
    assert unit.user == "root"
    props = show(host, "node_exporter", "User", "ExecStart", "FragmentPath")
    assert props["User"] == "node-exporter"
    assert props["FragmentPath"] == "/etc/systemd/system/node_exporter.service"
    assert "path=/usr/local/bin/node_exporter" in props["ExecStart"]
    assert all(flag in props["ExecStart"] for flag in FLAGS)
    # The binary itself cannot be obtained here (the install step is tagged needs_binary).
    assert not host.file("/usr/local/bin/node_exporter").exists

"""The Debian package host serves metrics, textfile collector included, as an unprivileged user."""

from node_exporter_helpers import FETCH, FLAGS, show

testinfra_hosts = ["ansible://molecule-node-exporter-deb"]


def test_package_flags(host):
    assert host.package("prometheus-node-exporter").is_installed
    defaults = host.file("/etc/default/prometheus-node-exporter")
    assert defaults.mode == 0o644
    assert f'ARGS="{" ".join(FLAGS)}"' in defaults.content_string


def test_package_service_serves_metrics_as_unprivileged_user(host):
    service = host.service("prometheus-node-exporter")
    assert service.is_running
    assert host.socket("tcp://0.0.0.0:9100").is_listening
    main_pid = show(host, "prometheus-node-exporter", "MainPID")["MainPID"]
    assert host.process.get(pid=int(main_pid)).user == "prometheus"
    metrics = host.check_output(FETCH + "http://127.0.0.1:9100/metrics")
    assert "node_exporter_build_info{" in metrics
    assert 'node_systemd_unit_state{name="ssh.service"' in metrics or "node_systemd_units" in metrics
    assert "node_processes_state" in metrics or "node_processes_threads" in metrics
    assert "node_wifi" not in metrics


def test_textfile_collector_exports_dropped_files(host):
    prom = "/var/lib/prometheus/node-exporter/molecule.prom"
    host.check_output(f"printf 'mlship_molecule_marker 42\\n' > {prom}.tmp && mv {prom}.tmp {prom}")
    try:
        metrics = host.check_output(FETCH + "http://127.0.0.1:9100/metrics")
        assert "mlship_molecule_marker 42" in metrics
    finally:
        host.run(f"rm -f {prom}")

"""Fixtures for the monitoring tests: Debian's promtool and prometheus, run as plain processes."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from monitoring_helpers import answers, free_port, wait_until


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed: `make setup` installs Debian's prometheus package")
    return path


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start Debian's prometheus on a free loopback port; returns its URL. Stopped after the test."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: `make setup` installs Debian's prometheus package")
    processes: list[subprocess.Popen] = []

    def start(scrape_configs: list[dict], rule_files: list[Path], interval: str = "1s") -> str:
        port = free_port()
        config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": scrape_configs,
        }
        config_file = tmp_path / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
        log = (tmp_path / "prometheus.log").open("w")
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: answers(f"{url}/-/ready"), timeout=30, what="prometheus")
        return url

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

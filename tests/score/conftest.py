"""Fixtures for the scorer: JUnit reports written by real pytest runs, rubrics, a real Prometheus."""

from __future__ import annotations

import copy
import shutil
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest
import yaml
from score_helpers import REPO, free_port


@pytest.fixture
def raw_rubric() -> dict:
    """The shipped rubric as plain data, to derive variants from."""
    text = (REPO / "mlship" / "score" / "rubric.yaml").read_text(encoding="utf-8")
    return copy.deepcopy(yaml.safe_load(text))


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory) -> Iterator[str]:
    """Debian's Prometheus on a free loopback port, loading mlship's committed alerting rules."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: `make setup` installs Debian's prometheus package")
    folder = tmp_path_factory.mktemp("prometheus")
    rules = sorted((REPO / "mlship" / "monitoring" / "generated" / "rules").glob("*.yml"))
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in rules],
        "scrape_configs": [
            {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
        ],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    log = (folder / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                groups = httpx.get(f"{url}/api/v1/rules", timeout=1, trust_env=False).json()["data"]["groups"]
                if groups and all(r.get("health") == "ok" for g in groups for r in g["rules"]):
                    break
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail(
                    f"prometheus did not evaluate its rules: {(folder / 'prometheus.log').read_text()}"
                )
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()

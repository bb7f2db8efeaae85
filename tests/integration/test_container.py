"""The model server's container image, built and run with the real Docker engine.

`mlship build --containerize` builds the base image from a Debian rootfs (no registry), the Bento, and
the image; the test then runs it the way the Kubernetes Deployment does: non-root, read-only root
filesystem, writable tmpfs only for /tmp and BentoML's home, and talks to it over 127.0.0.1.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from mlship import build, names
from mlship.local.processes import free_ports

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.slow]


def docker(*args: str, check: bool = True) -> str:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=600
    ).stdout.strip()


@pytest.fixture(scope="module")
def image(model_image) -> str:
    return model_image  # built once per session (tests/conftest.py)


@pytest.fixture(scope="module")
def server(image) -> Iterator[tuple[str, str]]:
    port = free_ports(1)[0]
    name = f"mlship-test-{port}"
    docker(
        "run",
        "-d",
        "--name",
        name,
        "--read-only",
        "--tmpfs",
        "/tmp:rw,size=64m",
        "--tmpfs",
        "/home/mlship/bentoml:rw,uid=10001,gid=10001,size=64m",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "-p",
        f"127.0.0.1:{port}:3000",
        image,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                logs = docker("logs", "--tail", "40", name, check=False)
                pytest.fail(f"container not ready in 120 s:\n{logs}")
            time.sleep(1)
        yield name, url
    finally:
        docker("rm", "-f", name, check=False)


def test_image_runs_as_the_non_root_user(image, server):
    assert docker("image", "inspect", "--format", "{{.Config.User}}", image).startswith(
        str(build.NON_ROOT_UID)
    )
    name, _ = server
    assert docker("exec", name, "id", "-u") == str(build.NON_ROOT_UID)


def test_container_serves_predictions_read_only(server, models):
    _, url = server
    row = models["baseline"].schema.edge_rows().iloc[0].to_dict()
    row["sex"] = int(row["sex"])
    ok = httpx.post(f"{url}{names.ENDPOINT_PREDICT}", json=row, timeout=10)
    assert ok.status_code == 200, ok.text
    assert ok.json()["model_version"] == models["baseline"].version
    bad = httpx.post(f"{url}{names.ENDPOINT_PREDICT}", json={**row, "bmi": "heavy"}, timeout=10)
    assert bad.status_code == 400 and "bmi" in bad.text
    metrics = httpx.get(f"{url}/metrics", timeout=10).text
    assert names.METRIC_PREDICTION in metrics and models["baseline"].version in metrics


def test_image_is_much_smaller_than_bentoml_default(image):
    # BentoML's default image for this Bento is about 1.4 GB (measured, BUILD-ENVIRONMENT.md).
    size = int(docker("image", "inspect", "--format", "{{.Size}}", image))
    assert size < 700e6, f"image is {size / 1e6:.0f} MB"

"""Preflight pulls an image that is not on the runner, as the kubelet would (review of issue 11, defect 3).

Before: preflight only ran `docker image inspect`, so on a fresh CI runner the stable version's image (built
by an earlier release, elsewhere) failed the "image" check although the cluster would pull it. Now an image
whose repository names a registry is pulled (imagePullPolicy IfNotPresent), and a failed pull names the
image and the next step.

Real: Docker's `docker pull`. Stands in: tests/tiny_registry.py for the registry (none is reachable here):
the registry API `docker pull` speaks, serving one tiny image on a loopback port.
"""

from __future__ import annotations

import os
import socket
import subprocess

import pytest
from tiny_registry import tiny_registry

from mlship.k8s.preflight import ensure_image

pytestmark = [pytest.mark.integration, pytest.mark.docker]

REPOSITORY = "mlship-prod2-preflight/tiny"  # unique to this test: never a developer's image


def _rmi(image: str) -> None:
    subprocess.run(["docker", "rmi", "--force", image], capture_output=True, check=False)


def test_a_missing_image_is_pulled_from_its_registry():
    tag = f"v{os.getpid()}"
    with tiny_registry(REPOSITORY, tag) as host:
        image = f"{host}/{REPOSITORY}:{tag}"
        _rmi(image)
        try:
            present, detail = ensure_image(image, "mlship build ...")
            assert present, detail
            assert detail == f"{image} pulled from {host}"
            assert subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0
            assert ensure_image(image, "mlship build ...") == (True, f"{image} present")  # no second pull
        finally:
            _rmi(image)


def test_a_failed_pull_names_the_image_and_the_next_step():
    with socket.socket() as probe:  # a loopback port where no registry answers
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    image = f"127.0.0.1:{port}/{REPOSITORY}:missing"
    present, detail = ensure_image(image, "mlship build --containerize --model missing")
    assert not present
    assert f"image {image} is not here and `docker pull` failed" in detail
    assert (
        f"docker login 127.0.0.1:{port}" in detail and "mlship build --containerize --model missing" in detail
    )


def test_an_image_without_a_registry_is_not_pulled():
    present, detail = ensure_image("mlship-prod2-preflight-local:none", "mlship build --containerize")
    assert not present and detail == (
        "image mlship-prod2-preflight-local:none is not here: build it with `mlship build --containerize`"
    )

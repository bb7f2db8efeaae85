"""Offline base images, built from a Debian rootfs with debootstrap (no registry needed).

One builder serves two consumers:
  * ``python``  - base image of the model server container (`mlship build --containerize`);
  * ``systemd`` - the hosts Molecule converges the Ansible roles on.

A custom/corporate CA bundle (for builds behind TLS-intercepting proxies) is copied into the image
and the usual variables point at it, so pip, uv, requests and OpenSSL all trust it. An image is
rebuilt only when its spec (packages, environment, CA bundle contents) changes: the spec hash is
stored as an image label and compared before anything is built.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mlship.errors import EnvironmentNotReady, MlshipError
from mlship.progress import status

DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SUITE = "bookworm"
CA_PATH_IN_IMAGE = "/etc/ssl/certs/mlship-ca-bundle.crt"
SPEC_LABEL = "io.mlship.spec-hash"


@dataclass(frozen=True)
class ImageSpec:
    name: str
    packages: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    cmd: tuple[str, ...] = ()
    suite: str = DEFAULT_SUITE
    extra_setup: tuple[str, ...] = field(default=())  # shell lines run in the rootfs (chroot)

    @property
    def reference(self) -> str:
        return f"{self.name}:{self.suite}"


SYSTEMD = ImageSpec(
    name="mlship/debian-systemd",
    packages=(
        "python3",
        "systemd",
        "systemd-sysv",
        "dbus",
        "iproute2",
        "procps",
        "sudo",
        "python3-apt",
        "ca-certificates",
    ),
    cmd=("/lib/systemd/systemd",),
    extra_setup=(
        # Units that cannot work in a container and only slow down or fail boot.
        "systemctl mask systemd-udevd.service systemd-udevd-kernel.socket systemd-udevd-control.socket"
        " systemd-modules-load.service sys-kernel-config.mount sys-kernel-debug.mount"
        " systemd-remount-fs.service getty.target console-getty.service || true",
    ),
)

PYTHON = ImageSpec(
    name="mlship/debian-python",
    packages=("python3", "python3-pip", "python3-venv", "ca-certificates", "libgomp1"),
    env=(
        ("PIP_BREAK_SYSTEM_PACKAGES", "1"),
        ("PYTHONUNBUFFERED", "1"),
        # No package caches in image layers (the legacy builder has no cache mounts).
        ("PIP_NO_CACHE_DIR", "1"),
        ("UV_NO_CACHE", "1"),
    ),
    extra_setup=(
        "apt-get clean",
        "rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /usr/share/locale/*",
    ),
)

IMAGES = {"systemd": SYSTEMD, "python": PYTHON}


def default_ca_bundle() -> Path | None:
    """The CA bundle this machine trusts (the one pip uses), if any."""
    for var in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        value = os.environ.get(var)
        if value and Path(value).is_file():
            return Path(value)
    debian = Path("/etc/ssl/certs/ca-certificates.crt")
    return debian if debian.is_file() else None


def ca_env() -> tuple[tuple[str, str], ...]:
    return (
        ("SSL_CERT_FILE", CA_PATH_IN_IMAGE),
        ("PIP_CERT", CA_PATH_IN_IMAGE),
        ("REQUESTS_CA_BUNDLE", CA_PATH_IN_IMAGE),
        ("UV_NATIVE_TLS", "1"),
    )


def spec_hash(spec: ImageSpec, ca_bundle: Path | None) -> str:
    digest = hashlib.sha256(repr(spec).encode())
    if ca_bundle is not None:
        digest.update(ca_bundle.read_bytes())
    return digest.hexdigest()[:16]


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


def image_spec_label(reference: str) -> str | None:
    proc = subprocess.run(
        ["docker", "image", "inspect", "--format", f'{{{{index .Config.Labels "{SPEC_LABEL}"}}}}', reference],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def ensure_image(
    spec: ImageSpec, *, ca_bundle: Path | None = None, mirror: str = DEFAULT_MIRROR, force: bool = False
) -> str:
    """Build ``spec`` from a Debian rootfs unless an image with the same spec hash exists.

    Returns the image reference. Needs root (debootstrap) and a Docker engine.
    """
    if ca_bundle is not None and not ca_bundle.is_file():
        raise MlshipError(f"CA bundle {ca_bundle} does not exist")
    if not docker_available():
        raise EnvironmentNotReady(
            "no Docker engine answers `docker info`: run `make setup` (installs and "
            "starts docker.io) or start dockerd"
        )
    wanted = spec_hash(spec, ca_bundle)
    if not force and image_spec_label(spec.reference) == wanted:
        return spec.reference
    if shutil.which("debootstrap") is None:
        raise EnvironmentNotReady("debootstrap is missing: `apt-get install debootstrap` (or `make setup`)")
    if os.geteuid() != 0:
        raise EnvironmentNotReady("building a base image from a Debian rootfs needs root (debootstrap)")
    with tempfile.TemporaryDirectory(prefix="mlship-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        with status(f"debootstrap {spec.suite} for {spec.reference}"):
            _run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(spec.packages)}",
                    spec.suite,
                    str(rootfs),
                    mirror,
                ]
            )
        env = list(spec.env)
        if ca_bundle is not None:
            shutil.copyfile(ca_bundle, rootfs / CA_PATH_IN_IMAGE.lstrip("/"))
            env.extend(ca_env())
        for line in spec.extra_setup:
            _run(["chroot", str(rootfs), "/bin/sh", "-c", line])
        changes = [f"LABEL {SPEC_LABEL}={wanted}"]
        changes += [f"ENV {key}={value}" for key, value in env]
        if spec.cmd:
            changes.append("CMD " + "[" + ", ".join(f'"{c}"' for c in spec.cmd) + "]")
        with status(f"docker import {spec.reference}"):
            tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
            cmd = ["docker", "import"]
            for change in changes:
                cmd += ["--change", change]
            cmd += ["-", spec.reference]
            imported = subprocess.run(cmd, stdin=tar.stdout, capture_output=True, text=True, check=False)
            assert tar.stdout is not None
            tar.stdout.close()
            tar.wait()
            if imported.returncode != 0 or tar.returncode != 0:
                raise MlshipError(f"docker import {spec.reference} failed: {imported.stderr.strip()}")
    return spec.reference


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise MlshipError(f"`{' '.join(cmd[:3])} ...` failed (exit {proc.returncode}):\n{tail}")

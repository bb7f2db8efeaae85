"""`mlship build`: package the model server as a Bento and, optionally, a container image.

The Bento is built from a staged context holding bento/service.py, bento/bentofile.yaml, the
serving modules of mlship (only what the server imports) and a requirements file pinned to the
versions of this environment, so the container runs exactly the code and versions that were tested.
The model is selected with ``MLSHIP_MODEL_TAG`` while building, which packs it into the Bento.

Containerizing works air-gapped: the base image is built locally from a Debian rootfs
(`mlship.images`) when no registry is reachable, with an optional corporate CA bundle; the server
runs as the non-root user of that image (uid 10001).

One release artifact, one version name: the image is tagged ``<image repository>:<model version>``, the
repository being the stack's (``mlship:models[].image``, what the Deployment runs) and the version the
model registry's, which is also the model the image serves (``MLSHIP_MODEL_TAG``). It reaches a cluster
either through a registry (``push``) or as a ``docker save`` tarball listed in a ``SHA256SUMS`` file
(``export_image``), which the Ansible air-gap path verifies and imports into k3s's containerd.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import yaml

from mlship import images
from mlship.errors import ConfigError, EnvironmentNotReady, MlshipError
from mlship.model import registry
from mlship.paths import bentoml_home, project_root
from mlship.progress import status

# Modules of mlship the server imports (and nothing else: no CLI, no Pulumi, no training code).
SERVING_MODULES = (
    "__init__.py",
    "names.py",
    "model/__init__.py",
    "model/data.py",
    "model/schema.py",
    "model/features.py",
    "serving/__init__.py",
    "serving/runtime.py",
    "serving/fastpath.py",
    "serving/metrics.py",
    "serving/middleware.py",
    "serving/logs.py",
    "serving/shadow.py",
    "feedback/__init__.py",
    "feedback/store.py",
    "feedback/recorder.py",
    "feedback/validation.py",
    "feedback/metrics.py",
    "feedback/endpoint.py",
    "feedback/serving.py",
)
# Distributions the server needs, pinned to the versions installed here.
SERVING_REQUIREMENTS = (
    "bentoml",
    "scikit-learn",
    "numpy",
    "scipy",
    "pandas",
    "pydantic",
    "joblib",
    "httpx",
    "prometheus-client",
    # uvicorn, BentoML's HTTP server, uses them when installed: faster event loop and HTTP parsing
    "uvloop",
    "httptools",
)
NON_ROOT_UID = 10001
LOCAL_REPOSITORY = "mlship-model"  # without a stack or --image-repository: a local image only
CHECKSUMS = "SHA256SUMS"


@dataclass(frozen=True)
class BuildResult:
    bento_tag: str
    model_tag: str
    image: str | None = None
    image_size_bytes: int | None = None
    pushed_digest: str | None = None  # repo@sha256:... after --push
    exported: str | None = None  # the tarball written by --export


def stack_image_repository(stack: str, model_name: str, program_dir: Path | None = None) -> str:
    """The image repository the stack's Deployments run for ``model_name`` (``mlship:models[].image``)."""
    from mlship.k8s.stack_config import read_stack_file

    program_dir = program_dir or project_root() / "pulumi"
    raw, _ = read_stack_file(program_dir / f"Pulumi.{stack}.yaml")
    for entry in raw.get("models") or []:
        if isinstance(entry, dict) and model_name in (entry.get("name"), entry.get("bentoModel")):
            return str(entry["image"])
    raise ConfigError(
        f"Pulumi.{stack}.yaml has no model {model_name!r} in mlship:models: "
        "add it, or pass --image-repository"
    )


def image_reference(repository: str, version: str) -> str:
    return f"{repository}:{version}"


def stage_context(dest: Path) -> Path:
    """Write the build context: bentofile, service, serving modules, pinned requirements."""
    root = project_root()
    if dest.exists():
        shutil.rmtree(dest)
    for sub in ("serving", "model", "feedback"):
        (dest / "mlship" / sub).mkdir(parents=True)
    shutil.copy2(root / "bento" / "bentofile.yaml", dest / "bentofile.yaml")
    shutil.copy2(root / "bento" / "service.py", dest / "service.py")
    package = Path(__file__).resolve().parent
    for rel in SERVING_MODULES:
        shutil.copy2(package / rel, dest / "mlship" / rel)
    pins = [f"{name}=={metadata.version(name)}" for name in SERVING_REQUIREMENTS]
    (dest / "requirements.txt").write_text("\n".join(pins) + "\n", encoding="utf-8")
    return dest


def bentoml_cli() -> str:
    return str(Path(sys.executable).with_name("bentoml"))


def build_bento(model_tag: str, *, base_image: str | None = None) -> str:
    """`bentoml build` of the staged context with ``model_tag`` packed in; returns the Bento tag."""
    # BentoML refuses build files under hidden folders (like .mlship/): stage in a temporary folder.
    with tempfile.TemporaryDirectory(prefix="mlship-bento-") as tmp:
        return _build_in(stage_context(Path(tmp) / "context"), model_tag, base_image)


def _build_in(context: Path, model_tag: str, base_image: str | None) -> str:
    if base_image is not None:
        doc = yaml.safe_load((context / "bentofile.yaml").read_text(encoding="utf-8"))
        doc["docker"] = {
            "base_image": base_image,
            "dockerfile_template": "Dockerfile.template",
        }
        (context / "bentofile.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        shutil.copy2(project_root() / "bento" / "Dockerfile.template", context / "Dockerfile.template")
    env = {
        **os.environ,
        "BENTOML_HOME": str(bentoml_home()),
        "MLSHIP_MODEL_TAG": model_tag,
        "BENTOML_DO_NOT_TRACK": "True",
    }
    with status(f"bentoml build ({model_tag})"):
        proc = subprocess.run(
            [bentoml_cli(), "build", str(context), "--output", "tag"],
            capture_output=True,
            text=True,
            env=env,
            cwd=context,
            check=False,
        )
    if proc.returncode != 0:
        raise MlshipError(f"bentoml build failed:\n{_tail(proc.stdout + proc.stderr)}")
    return proc.stdout.strip().splitlines()[-1].removeprefix("__tag__:")


def containerize(bento_tag: str, *, image_tag: str) -> int:
    """`bentoml containerize` with Docker's legacy builder; returns the image size in bytes."""
    if not images.docker_available():
        raise EnvironmentNotReady("no Docker engine answers `docker info`: run `make setup`")
    env = {
        **os.environ,
        "BENTOML_HOME": str(bentoml_home()),
        "DOCKER_BUILDKIT": "0",
        "BENTOML_DO_NOT_TRACK": "True",
    }
    # BentoML exports the Bento to a temporary folder and only reads a Dockerfile template below the
    # working directory: run from the temporary folders' parent.
    with status(f"bentoml containerize {bento_tag} -> {image_tag}"):
        proc = subprocess.run(
            [bentoml_cli(), "containerize", bento_tag, "--backend", "docker", "--image-tag", image_tag],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            cwd=tempfile.gettempdir(),
        )
    if proc.returncode != 0:
        raise MlshipError(f"bentoml containerize failed:\n{_tail(proc.stdout + proc.stderr)}")
    size = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Size}}", image_tag],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return int(size)


def build(
    model_version: str | None,
    *,
    model_name: str,
    containerize_image: bool,
    base_image: str | None = None,
    offline: bool = False,
    ca_bundle: Path | None = None,
    image_repository: str | None = None,
    push: bool = False,
    export_dir: Path | None = None,
) -> BuildResult:
    """Build the Bento for a model (default: the newest registered) and optionally its image.

    The container's base image is built here from a Debian rootfs (no registry needed) unless
    ``base_image`` names another one, which Docker then pulls (refused with ``offline``). The image is
    ``<image_repository>:<model version>``; ``push`` sends it to its registry, ``export_dir`` writes it
    as a checksummed tarball for an air-gapped cluster.
    """
    if offline and base_image is not None:
        raise MlshipError("--offline builds use the local Debian base image; drop --base-image")
    if (push or export_dir is not None) and not containerize_image:
        raise ConfigError("--push and --export ship the container image: add --containerize")
    repository = image_repository or LOCAL_REPOSITORY
    if push:
        require_registry(repository)
    if model_version is None:
        models = registry.list_models(model_name)
        if not models:
            raise EnvironmentNotReady(registry.NO_MODEL)
        record = models[-1]
    else:
        record = registry.resolve(model_name, model_version)
    if not containerize_image:
        return BuildResult(bento_tag=build_bento(record.tag), model_tag=record.tag)
    base = base_image or images.ensure_image(images.PYTHON, ca_bundle=ca_bundle or images.default_ca_bundle())
    bento_tag = build_bento(record.tag, base_image=base)
    image_tag = image_reference(repository, record.version)
    size = containerize(bento_tag, image_tag=image_tag)
    digest = push_image(image_tag) if push else None
    exported = str(export_image(image_tag, export_dir)) if export_dir is not None else None
    return BuildResult(
        bento_tag=bento_tag,
        model_tag=record.tag,
        image=image_tag,
        image_size_bytes=size,
        pushed_digest=digest,
        exported=exported,
    )


def require_registry(repository: str) -> None:
    """A push needs a registry host in the repository (``registry.example.com/team/model``)."""
    first = repository.split("/", 1)[0]
    if "/" not in repository or not ("." in first or ":" in first or first == "localhost"):
        raise ConfigError(
            f"--push: image repository {repository!r} names no registry host; set the stack's "
            "mlship:models[].image (or --image-repository) to <registry>/<path>"
        )


def push_image(reference: str) -> str:
    """``docker push``; returns the pushed image as ``repo@sha256:...`` (pin it with ``digests``)."""
    with status(f"docker push {reference}"):
        proc = subprocess.run(["docker", "push", reference], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise MlshipError(
            f"docker push {reference} failed (log in with `docker login`, or use --export for an "
            f"air-gapped cluster):\n{_tail(proc.stdout + proc.stderr)}"
        )
    digests = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{json .RepoDigests}}", reference],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    repository = reference.rsplit(":", 1)[0]
    for digest in json.loads(digests or "[]"):
        if digest.startswith(f"{repository}@"):
            return str(digest)
    raise MlshipError(f"docker push {reference} reported no digest for {repository}")


def tarball_name(reference: str) -> str:
    """``registry.example.com/mlship/diabetes-regressor:1c35`` -> ``diabetes-regressor_1c35.tar``."""
    repository, version = reference.rsplit(":", 1)
    return re.sub(r"[^A-Za-z0-9._-]", "-", f"{repository.rsplit('/', 1)[-1]}_{version}") + ".tar"


def export_image(reference: str, directory: Path) -> Path:
    """``docker save`` the image into ``directory`` and record its SHA-256 in ``directory/SHA256SUMS``.

    The tarball keeps the image's full name (k3s imports it under that name, which the Deployment runs
    with ``imagePullPolicy: IfNotPresent``). ``SHA256SUMS`` has the format of ``sha256sum``
    (``<hex>  <file>``, checked with ``sha256sum -c SHA256SUMS``); other files' lines are kept.
    """
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / tarball_name(reference)
    partial = target.with_name(f".{target.name}.partial")
    with status(f"docker save {reference} -> {target}"):
        proc = subprocess.run(
            ["docker", "save", "--output", str(partial), reference],
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        partial.unlink(missing_ok=True)
        raise MlshipError(f"docker save {reference} failed:\n{_tail(proc.stdout + proc.stderr)}")
    digest = hashlib.sha256()
    with partial.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    partial.replace(target)
    record_checksum(directory / CHECKSUMS, target.name, digest.hexdigest())
    return target


def record_checksum(sums: Path, file_name: str, hexdigest: str) -> None:
    """Add or replace ``file_name``'s line in a ``sha256sum``-format file (sorted, written atomically)."""
    lines: dict[str, str] = {}
    if sums.exists():
        for line in sums.read_text(encoding="utf-8").splitlines():
            match = re.fullmatch(r"([0-9a-f]{64}) [ *](.+)", line.strip())
            if match is None:
                raise MlshipError(f"{sums}: not a sha256sum file (line {line!r}); move it away first")
            lines[match.group(2)] = match.group(1)
    lines[file_name] = hexdigest
    tmp = sums.with_name(f".{sums.name}.tmp")
    tmp.write_text("".join(f"{h}  {name}\n" for name, h in sorted(lines.items())), encoding="utf-8")
    tmp.replace(sums)


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])

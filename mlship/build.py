"""`mlship build`: package the model server as a Bento and, optionally, a container image.

The Bento is built from a staged context holding bento/service.py, bento/bentofile.yaml, the
serving modules of mlship (only what the server imports) and a requirements file pinned to the
versions of this environment, so the container runs exactly the code and versions that were tested.
The model is selected with ``MLSHIP_MODEL_TAG`` while building, which packs it into the Bento.

Containerizing works air-gapped: the base image is built locally from a Debian rootfs
(`mlship.images`) when no registry is reachable, with an optional corporate CA bundle; the server
runs as the non-root user of that image (uid 10001).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import yaml

from mlship import images
from mlship.errors import EnvironmentNotReady, MlshipError
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
    "serving/metrics.py",
    "serving/middleware.py",
    "serving/logs.py",
    "serving/shadow.py",
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
)
NON_ROOT_UID = 10001


@dataclass(frozen=True)
class BuildResult:
    bento_tag: str
    model_tag: str
    image: str | None = None
    image_size_bytes: int | None = None


def stage_context(dest: Path) -> Path:
    """Write the build context: bentofile, service, serving modules, pinned requirements."""
    root = project_root()
    if dest.exists():
        shutil.rmtree(dest)
    for sub in ("serving", "model"):
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
) -> BuildResult:
    """Build the Bento for a model (default: the newest registered) and optionally its image.

    The container's base image is built here from a Debian rootfs (no registry needed) unless
    ``base_image`` names another one, which Docker then pulls (refused with ``offline``).
    """
    if offline and base_image is not None:
        raise MlshipError("--offline builds use the local Debian base image; drop --base-image")
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
    image_tag = f"mlship-model:{record.version}"
    size = containerize(bento_tag, image_tag=image_tag)
    return BuildResult(bento_tag=bento_tag, model_tag=record.tag, image=image_tag, image_size_bytes=size)


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])

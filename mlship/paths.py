"""Where mlship keeps its state: a project-local folder (default `.mlship/`, or `$MLSHIP_STATE_DIR`).

BentoML reads ``BENTOML_HOME`` when it is first imported, so ``use_project_bentoml_home`` must run before
``import bentoml`` (the CLI does it first thing). The store lives outside ``bento/`` so a build never
packages the store into itself.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_STATE_DIR = Path(".mlship")


def state_dir(base: Path | None = None) -> Path:
    root = Path(os.environ.get("MLSHIP_STATE_DIR", base or DEFAULT_STATE_DIR))
    return root.resolve()


def bentoml_home() -> Path:
    return Path(os.environ.get("BENTOML_HOME", state_dir() / "bentoml")).resolve()


def use_project_bentoml_home() -> Path:
    """Point BentoML at the project's store unless the user chose one (``BENTOML_HOME``)."""
    home = bentoml_home()
    os.environ["BENTOML_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    return home


def project_root() -> Path:
    """The repository root (the folder holding ``bento/``), for commands that build or serve."""
    here = Path(__file__).resolve().parent.parent
    if (here / "bento").is_dir():
        return here
    # Installed from a wheel: bento/ and pulumi/ are not package data, the checkout holds them.
    if (Path.cwd() / "bento").is_dir():
        return Path.cwd()
    from mlship.errors import EnvironmentNotReady

    raise EnvironmentNotReady(
        "this command needs the mlship checkout (its bento/ and pulumi/ folders): "
        "run it from the checkout's root"
    )

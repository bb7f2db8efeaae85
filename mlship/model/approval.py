"""What a model needs before it may serve: a reviewed spec (ML Test Score, Model 1) and the quality gate's
blessing (Infra 4), checked on every path that puts a version in front of users.

**Spec review.** A model's spec is what decides what it learns: algorithm, hyperparameters and the search
that chose them, feature version, data hash, seeds, and the commit of the training and feature code. It
is what `mlship model spec VERSION` prints, with its hash. A reviewer who is not the model's author runs
``mlship model review VERSION --by NAME --spec-hash HASH``: the review record (``review.json``, stored with
the model like the gate's verdict) holds reviewer, time, spec hash and commit. It is refused when

* the reviewer is the model's author (who trained it, or the author of its commit),
* the spec's hash is not the one the reviewer was shown (the spec changed since they looked),
* the model was trained from uncommitted code (``code_version`` ending ``+dirty``): there is no commit
  anyone else can read.

This is the model-registry approval real teams use (MLflow's and SageMaker's registries record an approval
per model version, by someone other than the submitter): the review of the code itself happens in code
review; this record binds a named second person to the exact spec that will serve. Identities are what
people type, as in those registries: who may write to the model store is the store's access control.

**Release checks.** ``release_problems`` lists what is missing (gate verdict, review); ``require`` refuses
unless forced, and returns what was forced past so the caller records it.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mlship.errors import RefusedError
from mlship.model.registry import ModelRecord

REVIEW_FILE = "review.json"
# Metadata that makes up the spec (everything that decides what the model learns, and from which code).
SPEC_KEYS = (
    "variant",
    "algorithm",
    "hyperparameters",
    "search",
    "feature_version",
    "feature_names",
    "seed",
    "split_seed",
    "test_size",
    "dataset",
    "data_hash",
    "code_version",
    "sklearn_version",
)
DIRTY_SUFFIX = "+dirty"


class Review(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    reviewer: str = Field(min_length=1)
    at: str
    spec_hash: str
    commit: str
    note: str = ""


def spec(record: ModelRecord) -> dict[str, Any]:
    return {k: record.metadata[k] for k in SPEC_KEYS if k in record.metadata}


def spec_hash(record: ModelRecord) -> str:
    canonical = json.dumps(spec(record), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def trainer_identity(root: Path | None = None) -> str:
    """Who is training: git's user.email (else user.name) where git knows it, else the OS user."""
    for key in ("user.email", "user.name"):
        try:
            proc = subprocess.run(
                ["git", *(["-C", str(root)] if root else []), "config", key],
                capture_output=True,
                text=True,
                check=False,
                timeout=5,
            )
        except (OSError, subprocess.TimeoutExpired):
            break
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip()
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "unknown")


def _commit_authors(commit: str, root: Path | None) -> set[str]:
    """Name and email of the commit's author, where this checkout has the commit."""
    try:
        proc = subprocess.run(
            ["git", *(["-C", str(root)] if root else []), "log", "-1", "--format=%an%n%ae", commit],
            capture_output=True,
            text=True,
            check=False,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return (
        {line.strip() for line in proc.stdout.splitlines() if line.strip()} if proc.returncode == 0 else set()
    )


def authors(record: ModelRecord, root: Path | None = None) -> set[str]:
    """Everyone who counts as the model's author: who trained it, who wrote its commit."""
    found = {str(record.metadata["trained_by"])} if record.metadata.get("trained_by") else set()
    commit = str(record.metadata.get("code_version", ""))
    if commit and not commit.startswith("mlship-"):
        found |= _commit_authors(commit.removesuffix(DIRTY_SUFFIX), root)
    return found


def _same_person(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def load_review(record: ModelRecord) -> Review | None:
    path = record.path / REVIEW_FILE
    if not path.exists():
        return None
    try:
        return Review.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError:
        return None


def review(
    record: ModelRecord,
    reviewer: str,
    *,
    seen_hash: str,
    note: str = "",
    allow_uncommitted: bool = False,
    root: Path | None = None,
) -> Review:
    """Record ``reviewer``'s review of the spec whose hash they were shown; refused (nothing written) if
    they are its author, the spec is not the one they saw, or it has no commit to review."""
    reviewer = reviewer.strip()
    if not reviewer:
        raise RefusedError("--by needs the reviewer's name or email")
    current = spec_hash(record)
    if seen_hash != current:
        raise RefusedError(
            f"the spec of {record.tag} is not the one you reviewed (its hash is {current[:12]}, you gave "
            f"{seen_hash[:12]}): read it again with `mlship model spec {record.version}`"
        )
    code = str(record.metadata.get("code_version", ""))
    if code.endswith(DIRTY_SUFFIX) and not allow_uncommitted:
        raise RefusedError(
            f"{record.tag} was trained from uncommitted code ({code}): nobody else can read that spec; "
            "commit, retrain (`mlship model train`) and review the new version"
        )
    own = sorted(a for a in authors(record, root) if _same_person(a, reviewer))
    if own:
        raise RefusedError(
            f"{reviewer} is an author of {record.tag} ({own[0]} trained it or wrote its commit): "
            "the review must come from someone else"
        )
    done = Review(
        model=record.tag,
        reviewer=reviewer,
        at=datetime.now(UTC).isoformat(timespec="seconds"),
        spec_hash=current,
        commit=code,
        note=note,
    )
    target = record.path / REVIEW_FILE
    tmp = target.with_suffix(".tmp")
    tmp.write_text(done.model_dump_json(indent=2), encoding="utf-8")
    tmp.replace(target)
    return done


def review_problem(record: ModelRecord, root: Path | None = None) -> str | None:
    """Why ``record``'s spec does not count as reviewed, or None."""
    done = load_review(record)
    if done is None:
        return (
            f"{record.version} has no review of its spec "
            f"(`mlship model review {record.version} --by NAME --spec-hash HASH`)"
        )
    if done.spec_hash != spec_hash(record):
        return f"the spec of {record.version} changed since {done.reviewer} reviewed it"
    if any(_same_person(a, done.reviewer) for a in authors(record, root)):
        return f"{record.version} was reviewed by its own author ({done.reviewer})"
    return None


def gate_problem(record: ModelRecord) -> str | None:
    if record.blessed:
        return None
    why = "it has not been validated" if record.gate is None else "the quality gate vetoed it"
    return f"{record.version} is not blessed: {why} (`mlship model validate {record.version}`)"


def release_problems(record: ModelRecord, *, needs_review: bool) -> list[str]:
    problems = [p for p in (gate_problem(record),) if p]
    if needs_review:
        problems += [p for p in (review_problem(record),) if p]
    return problems


def require(record: ModelRecord, *, action: str, force: bool, needs_review: bool = False) -> list[str]:
    """Refuse ``action`` for a model that lacks what serving needs, unless forced.

    Returns what was forced past (empty when nothing was missing), for the caller to record.
    """
    problems = release_problems(record, needs_review=needs_review)
    if problems and not force:
        raise RefusedError(f"{action} refused: {'; '.join(problems)} (or pass --force to do it anyway)")
    return problems

"""Carry a registered model, with its quality-gate verdict, from one machine's registry to another's.

A release pipeline trains and gates on one runner and releases to production from another (a later job, a
fresh checkout, a different machine): the model registry (``.mlship/bentoml``, never committed) is not
there. ``export_model`` writes the model as BentoML's own archive (``bentoml.models.export_model``: the
whole model directory, so ``model.joblib``, ``schema.json`` and the gate's ``gate.json`` travel together)
and records its SHA-256 in ``SHA256SUMS`` (``sha256sum`` format); ``import_model`` refuses an archive the
checksum file does not list or that does not match it, then imports it. The verdict is the one the gate
wrote where the model was validated: an unblessed model arrives unblessed, and ``mlship canary start``
refuses it unless ``--force``, exactly as on the machine that trained it (``ModelRecord.blessed`` also
requires the verdict to name this very model, so a verdict copied next to another model blesses nothing).
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlship.errors import ConfigError, EnvironmentNotReady, RefusedError
from mlship.model import registry

ARCHIVE_SUFFIX = ".bentomodel"
CHECKSUMS = "SHA256SUMS"


@dataclass(frozen=True)
class Transferred:
    tag: str
    archive: Path
    blessed: bool
    created: bool  # False: the registry already had this model (import is idempotent)


def archive_name(tag: str) -> str:
    """``diabetes-regressor:d0f6df43bee0`` -> ``diabetes-regressor-1c359c3f4d6d.bentomodel``."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", tag.replace(":", "-")) + ARCHIVE_SUFFIX


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_model(record: registry.ModelRecord, directory: Path) -> Transferred:
    """Write ``record`` (with its gate verdict) to ``directory`` and list it in ``directory/SHA256SUMS``."""
    import bentoml

    from mlship.build import record_checksum

    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"--out {directory} is a file: name a folder (it is created if missing)")
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / archive_name(record.tag)
    # BentoML reads the archive's format from its file name when importing: write it under its final name
    # in a scratch folder, then move it into place (no half-written archive under the real name).
    with tempfile.TemporaryDirectory(prefix=".export-", dir=directory) as scratch:
        written = Path(bentoml.models.export_model(record.tag, str(Path(scratch) / target.name)))
        written.replace(target)
    record_checksum(directory / CHECKSUMS, target.name, sha256_of(target))
    return Transferred(tag=record.tag, archive=target, blessed=record.blessed, created=True)


def _archive_in(source: Path) -> Path:
    if source.is_file():
        return source
    if not source.is_dir():
        raise EnvironmentNotReady(
            f"{source} does not exist: download the release's model artifact (`mlship model export` wrote it)"
        )
    archives = sorted(source.glob(f"*{ARCHIVE_SUFFIX}"))
    if len(archives) != 1:
        found = ", ".join(a.name for a in archives) or "none"
        raise RefusedError(f"{source}: expected exactly one *{ARCHIVE_SUFFIX} archive, found {found}")
    return archives[0]


def verify(archive: Path) -> None:
    """The archive's line in ``SHA256SUMS`` next to it must exist and match (what ``sha256sum -c`` checks)."""
    sums = archive.parent / CHECKSUMS
    if not sums.is_file():
        raise RefusedError(f"{archive.name}: no {CHECKSUMS} next to it; an unverified model is not imported")
    listed = None
    for line in sums.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"([0-9a-f]{64}) [ *](.+)", line.strip())
        if match and match.group(2) == archive.name:
            listed = match.group(1)
    if listed is None:
        raise RefusedError(f"{archive.name} is not listed in {sums}; an unverified model is not imported")
    actual = sha256_of(archive)
    if actual != listed:
        raise RefusedError(
            f"{archive.name}: SHA-256 {actual} does not match {CHECKSUMS} ({listed}): the artifact is "
            "corrupted or was changed; download it again"
        )


def import_model(source: Path) -> Transferred:
    """Import the archive in ``source`` (a file, or the folder ``export_model`` wrote) after verifying it."""
    import bentoml
    from bentoml.exceptions import BentoMLException

    archive = _archive_in(source)
    verify(archive)
    created = True
    try:
        model = bentoml.models.import_model(str(archive))
        tag = str(model.tag)
    except BentoMLException as exc:
        if "already exists" not in str(exc):
            raise RefusedError(f"{archive.name} is not a model archive BentoML can import: {exc}") from None
        created = False
        match = re.search(r"'([A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+)' already exists", str(exc))
        tag = match.group(1) if match else archive.name.removesuffix(ARCHIVE_SUFFIX)
    record = registry.get(tag)
    return Transferred(tag=record.tag, archive=archive, blessed=record.blessed, created=created)

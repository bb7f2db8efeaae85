"""Dependency changes result in notification (ML Test Score, Monitor 1).

``requirements.lock`` pins every Python dependency. A reviewed copy of its pins and hash is kept next to
the tests (``REVIEWED``); the test suite fails on any lock change nobody reviewed, naming each package
added, removed or moved to another version. After reviewing the change (release notes, changelogs):

    python -m devtools.lockfile --accept
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from mlship.errors import ConfigError
from mlship.paths import project_root

REPO = project_root()
LOCK = REPO / "requirements.lock"
REVIEWED = REPO / "tests" / "mltest" / "requirements.lock.reviewed.json"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;#]+)")


@dataclass(frozen=True)
class LockChange:
    added: dict[str, str] = field(default_factory=dict)
    removed: dict[str, str] = field(default_factory=dict)
    changed: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (reviewed, now)
    hash_changed: bool = False

    @property
    def unreviewed(self) -> bool:
        return bool(self.added or self.removed or self.changed or self.hash_changed)

    def describe(self) -> str:
        lines = [f"+ {n}=={v}" for n, v in sorted(self.added.items())]
        lines += [f"- {n}=={v}" for n, v in sorted(self.removed.items())]
        lines += [f"~ {n} {a} -> {b}" for n, (a, b) in sorted(self.changed.items())]
        if self.hash_changed and not lines:
            lines.append("same pins, but the file's bytes changed (options, hashes or comments)")
        return "\n".join(lines)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(text: str, source: str = "requirements.lock") -> dict[str, str]:
    """``name==version`` lines -> {normalised name: version}; anything else that is not a comment fails."""
    out: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", "--")):
            continue
        match = _PIN.match(line)
        if match is None:
            raise ConfigError(f"{source}:{number}: {line!r} is not pinned as name==version")
        out[_normalise(match.group(1))] = match.group(3)
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compare(lock: Path = LOCK, reviewed: Path = REVIEWED) -> LockChange:
    """What changed in ``lock`` since the reviewed record; a missing record means nothing was reviewed."""
    current = pins(lock.read_text(encoding="utf-8"), lock.name)
    if not reviewed.exists():
        return LockChange(added=current, hash_changed=True)
    try:
        record = json.loads(reviewed.read_text(encoding="utf-8"))
        before = {str(k): str(v) for k, v in record["pins"].items()}
        digest = str(record["sha256"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(
            f"{reviewed}: not a reviewed-lock record ({exc!r}); re-create it with --accept"
        ) from exc
    return LockChange(
        added={n: v for n, v in current.items() if n not in before},
        removed={n: v for n, v in before.items() if n not in current},
        changed={n: (before[n], v) for n, v in current.items() if n in before and before[n] != v},
        hash_changed=digest != sha256(lock),
    )


def accept(lock: Path = LOCK, reviewed: Path = REVIEWED) -> LockChange:
    """Record the current lock as reviewed; returns what changed since the previous review."""
    change = compare(lock, reviewed)
    record = {
        "lock": lock.name,
        "sha256": sha256(lock),
        "pins": dict(sorted(pins(lock.read_text(encoding="utf-8"), lock.name).items())),
        "reviewed_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    reviewed.parent.mkdir(parents=True, exist_ok=True)
    tmp = reviewed.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    tmp.replace(reviewed)
    return change


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lock", type=Path, default=LOCK)
    parser.add_argument("--reviewed", type=Path, default=REVIEWED)
    parser.add_argument("--accept", action="store_true", help="record the current lock as reviewed")
    args = parser.parse_args(argv)
    change = accept(args.lock, args.reviewed) if args.accept else compare(args.lock, args.reviewed)
    if not change.unreviewed:
        print(f"{args.lock.name}: no change since the last review")
        return 0
    print(f"{args.lock.name} changed since the last review:\n{change.describe()}")
    if args.accept:
        print(f"recorded as reviewed in {args.reviewed}")
        return 0
    return 1


if __name__ == "__main__":
    raise SystemExit(main())

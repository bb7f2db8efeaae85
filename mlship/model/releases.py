"""Release history: which version is stable now, and which ones were before (for rollback --to previous)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from mlship.errors import MlshipError
from mlship.paths import state_dir


@dataclass(frozen=True)
class Release:
    version: str
    at: str
    how: str  # initial | promoted | rolled-back-to
    # What was missing and forced past (--force): the gate's blessing, the spec review.
    forced: list[str] = field(default_factory=list)


@dataclass
class Releases:
    history: list[Release] = field(default_factory=list)

    @staticmethod
    def path() -> Path:
        return state_dir() / "releases.json"

    @classmethod
    def load(cls) -> Releases:
        path = cls.path()
        if not path.exists():
            return cls()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return cls(history=[Release(**r) for r in raw["history"]])
        except (ValueError, KeyError, TypeError) as exc:
            raise MlshipError(f"release history {path} is corrupted: {exc}") from exc

    def save(self) -> None:
        path = self.path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"history": [asdict(r) for r in self.history]}, indent=2), encoding="utf-8")
        tmp.replace(path)

    @property
    def stable(self) -> str | None:
        return self.history[-1].version if self.history else None

    @property
    def previous(self) -> str | None:
        """The last stable version different from the current one."""
        current = self.stable
        for release in reversed(self.history):
            if release.version != current:
                return release.version
        return None

    def record(self, version: str, how: str, forced: list[str] | None = None) -> None:
        if self.stable == version and how == "initial":
            return
        self.history.append(
            Release(
                version=version,
                at=datetime.now(UTC).isoformat(timespec="seconds"),
                how=how,
                forced=list(forced or []),
            )
        )
        self.save()

"""The local environment's state file: which processes mlship started, with their pids and versions."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlship.errors import MlshipError


@dataclass
class Component:
    pid: int
    log: str
    argv0: str  # substring of the command line, checked before signalling a pid
    port: int | None = None
    version: str | None = None


@dataclass
class EnvState:
    components: dict[str, Component] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> EnvState:
        if not path.exists():
            return cls()
        try:
            raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return cls(components={k: Component(**v) for k, v in raw.get("components", {}).items()})
        except (ValueError, TypeError) as exc:
            raise MlshipError(
                f"state file {path} is corrupted ({exc}); nothing was changed. Stop the processes it "
                "listed by hand (`pgrep -af 'haproxy|prometheus|bentoml'`), then remove the file"
            ) from exc

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(
            json.dumps({"components": {k: asdict(v) for k, v in self.components.items()}}, indent=2)
        )
        tmp.replace(path)

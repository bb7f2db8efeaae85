"""Which commit evidence was produced on, and whether the tree was clean.

Evidence scores only when it was produced on the commit being scored, from a clean tree: the JUnit report
carries these facts as properties (written by ``mlship.score.pytest_plugin``), figures and benchmark files
carry them as fields (``commit``, ``dirty``). ``git`` is asked, nothing is assumed: outside a git work
tree there is no commit, and nothing can be bound to one.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

# JUnit report properties written by the pytest plugin.
PROP_COMMIT = "mlship.commit"
PROP_DIRTY = "mlship.dirty"  # "false" or "true: N changed paths (first ...)"
PROP_ROOT = "mlship.rootdir"


@dataclass(frozen=True)
class TreeState:
    """The git state of a folder: HEAD and the paths ``git status`` reports (untracked included)."""

    root: Path
    commit: str | None  # None: not a git work tree, or git is missing
    changed: tuple[str, ...]
    error: str = ""

    @property
    def dirty(self) -> bool:
        return bool(self.changed)

    def describe_dirty(self) -> str:
        if not self.changed:
            return "false"
        first = ", ".join(self.changed[:3])
        return f"true: {len(self.changed)} changed paths ({first}{', ...' if len(self.changed) > 3 else ''})"


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=False, timeout=30
    )


def tree_state(root: Path) -> TreeState:
    """HEAD of the git work tree holding ``root`` and its uncommitted changes (ignored files excluded)."""
    try:
        head = _git(root, "rev-parse", "HEAD")
        if head.returncode != 0:
            message = (head.stderr.strip().splitlines() or ["git rev-parse HEAD failed"])[0]
            return TreeState(root, None, (), f"{root} is not a git work tree with a commit ({message})")
        status = _git(root, "status", "--porcelain", "--untracked-files=all")
    except (OSError, subprocess.TimeoutExpired) as exc:
        return TreeState(root, None, (), f"git is not usable here ({exc})")
    if status.returncode != 0:
        return TreeState(root, None, (), f"git status failed in {root}: {status.stderr.strip()}")
    changed = tuple(line[3:] for line in status.stdout.splitlines() if line.strip())
    return TreeState(root, head.stdout.strip(), changed)


def record(root: Path) -> dict[str, object]:
    """The fields a figure or benchmark file carries: ``commit`` and ``dirty`` (a bool)."""
    state = tree_state(root)
    return {"commit": state.commit, "dirty": state.dirty if state.commit else None}

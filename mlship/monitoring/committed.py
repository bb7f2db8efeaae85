"""The committed rendering of the rules and dashboards for the default configuration."""

from __future__ import annotations

import json
from pathlib import Path

from mlship.monitoring import dashboards, rules

ROOT = Path(__file__).resolve().parent / "generated"
RULES_DIR = ROOT / "rules"
DASHBOARDS_DIR = ROOT / "dashboards"


def expected() -> dict[Path, str]:
    """Path -> content the generator produces for the default configuration."""
    files = {RULES_DIR / name: text for name, text in rules.rule_files().items()}
    for name, model in dashboards.dashboards().items():
        files[DASHBOARDS_DIR / name] = json.dumps(model, indent=2, sort_keys=True) + "\n"
    return files


def stale_files() -> list[Path]:
    """Committed files that differ from the generator's output, are missing, or are left over."""
    want = expected()
    stale = [
        path for path, text in want.items() if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    present = [*RULES_DIR.glob("*.yml"), *DASHBOARDS_DIR.glob("*.json")]
    return stale + sorted(path for path in present if path not in want)


def write() -> list[Path]:
    want = expected()
    for directory in (RULES_DIR, DASHBOARDS_DIR):
        directory.mkdir(parents=True, exist_ok=True)
    for path in [*RULES_DIR.glob("*.yml"), *DASHBOARDS_DIR.glob("*.json")]:
        if path not in want:
            path.unlink()
    for path, text in want.items():
        path.write_text(text, encoding="utf-8")
    return sorted(want)

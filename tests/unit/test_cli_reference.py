"""docs/cli.md lists exactly the exit codes the CLI defines (mlship/errors.py), each with its own number."""

from __future__ import annotations

import re
from pathlib import Path

from mlship.errors import ExitCode

PAGE = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def documented_codes() -> dict[int, str]:
    text = PAGE.read_text(encoding="utf-8")
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) \| `([A-Z_]+)` \|", section, flags=re.M)
    assert len({int(code) for code, _ in rows}) == len(rows), "a code is listed twice"
    return {int(code): name for code, name in rows}


def test_the_cli_reference_lists_every_exit_code_and_no_other():
    assert documented_codes() == {int(code): code.name for code in ExitCode}


def test_every_exit_code_has_its_own_number():
    # __members__ includes aliases: an Enum silently turns a second name for a number into an alias.
    values = [int(code) for code in ExitCode.__members__.values()]
    assert len(values) == len(set(values)), ExitCode.__members__

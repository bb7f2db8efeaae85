"""Run every Molecule scenario (molecule test -s NAME), one after the other, and report what each cost.

Usage: .venv/bin/python tests/ansible/run_molecule.py [SCENARIO ...]     (from the repository root)

Prints one line per scenario (wall time, testinfra tests passed) and a summary; the full output of each
scenario goes to .mlship/molecule/<scenario>.log. Exits non-zero if any scenario failed. The 1-minute load
average before and after each scenario is printed with its time: other work on the machine slows every
scenario down.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MOLECULE_DIR = REPO / "molecule"
LOG_DIR = REPO / ".mlship" / "molecule"
# The cluster scenario converges everything the role scenarios test one by one: run it last.
LAST = ("cluster",)
PHASE = re.compile(r"\[[^\]>]+ > (\w+)\] Executing\s*$")


@dataclass
class Outcome:
    scenario: str
    ok: bool
    seconds: float
    tests_passed: int
    assert_statements: int
    load_before: float
    load_after: float
    phases: dict[str, float]
    log: str


def scenarios() -> list[str]:
    names = sorted(p.parent.name for p in MOLECULE_DIR.glob("*/molecule.yml"))
    return [n for n in names if n not in LAST] + [n for n in LAST if n in names]


def assert_statements(scenario: str) -> int:
    """Assert statements in the scenario's testinfra files (parametrized tests run some several times)."""
    count = 0
    for path in (MOLECULE_DIR / scenario / "tests").glob("test_*.py"):
        count += sum(isinstance(node, ast.Assert) for node in ast.walk(ast.parse(path.read_text())))
    return count


def run(scenario: str) -> Outcome:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = LOG_DIR / f"{scenario}.log"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.setdefault("ANSIBLE_FORCE_COLOR", "0")
    env.setdefault("NO_COLOR", "1")
    load_before = os.getloadavg()[0]
    start = time.monotonic()
    phases: dict[str, float] = {}
    current: tuple[str, float] | None = None
    with (
        log.open("w") as out,
        subprocess.Popen(
            [str(Path(sys.executable).parent / "molecule"), "test", "-s", scenario],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        ) as proc,
    ):
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            # "[base > converge] Executing" starts a step; the next one (or the end) closes it.
            step = PHASE.search(line)
            if step:
                now = time.monotonic()
                if current:
                    phases[current[0]] = round(phases.get(current[0], 0) + now - current[1], 1)
                current = (step.group(1), now)
        returncode = proc.wait()
    seconds = time.monotonic() - start
    if current:
        phases[current[0]] = round(phases.get(current[0], 0) + time.monotonic() - current[1], 1)
    text = log.read_text(errors="replace")
    passed = re.findall(r"(\d+) passed", text)
    return Outcome(
        scenario=scenario,
        ok=returncode == 0,
        seconds=round(seconds, 1),
        tests_passed=int(passed[-1]) if passed else 0,
        assert_statements=assert_statements(scenario),
        load_before=round(load_before, 2),
        load_after=round(os.getloadavg()[0], 2),
        phases=phases,
        log=str(log.relative_to(REPO)),
    )


def main(argv: list[str]) -> int:
    wanted = argv or scenarios()
    unknown = sorted(set(wanted) - set(scenarios()))
    if unknown:
        print(f"unknown scenario(s) {unknown}; choose from {scenarios()}", file=sys.stderr)
        return 2
    outcomes = []
    for index, scenario in enumerate(wanted, 1):
        print(f"[{index}/{len(wanted)}] molecule test -s {scenario} ...", flush=True)
        outcome = run(scenario)
        outcomes.append(outcome)
        status = "passed" if outcome.ok else f"FAILED (see {outcome.log})"
        print(
            f"    {status} in {outcome.seconds:.0f} s; testinfra: {outcome.tests_passed} tests passed, "
            f"{outcome.assert_statements} assert statements; "
            f"load average before/after: {outcome.load_before}/{outcome.load_after}",
            flush=True,
        )
        print("    steps (s): " + ", ".join(f"{name} {secs:.0f}" for name, secs in outcome.phases.items()))
        if not outcome.ok:
            print("\n".join(Path(REPO / outcome.log).read_text(errors="replace").splitlines()[-40:]))
    summary = LOG_DIR / "summary.json"
    summary.write_text(json.dumps([asdict(o) for o in outcomes], indent=2))
    print(f"\n{'scenario':<16}{'result':<8}{'wall s':>8}{'tests':>7}{'asserts':>9}{'load before/after':>19}")
    for o in outcomes:
        print(
            f"{o.scenario:<16}{'ok' if o.ok else 'FAIL':<8}{o.seconds:>8.0f}{o.tests_passed:>7}"
            f"{o.assert_statements:>9}{o.load_before:>12.1f}/{o.load_after:<6.1f}"
        )
    print(f"total {sum(o.seconds for o in outcomes):.0f} s on {os.cpu_count()} cores; details in {summary}")
    failed = sum(not o.ok for o in outcomes)
    # Closing line in the plain form test reports read (scenarios, not testinfra tests).
    print(f"molecule: {len(outcomes) - failed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

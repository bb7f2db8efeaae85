"""Per-rollout records: every decision with its evidence (JSON lines) and the points the report plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlship.paths import state_dir


def rollout_dir(rollout_id: str) -> Path:
    return state_dir() / "canary" / "rollouts" / rollout_id


def decision_log() -> Path:
    return state_dir() / "canary" / "decisions.jsonl"


def append(path: Path, entry: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as handle:
        # A crash mid-append leaves a line without its newline: start a new line, so this entry is
        # not glued to the torn one (which ``read`` then skips).
        torn = False
        if handle.tell() > 0:  # "a+" opens at the end
            handle.seek(-1, 2)
            torn = handle.read(1) != b"\n"
        line = json.dumps(entry, separators=(",", ":"), default=str) + "\n"
        handle.write((("\n" if torn else "") + line).encode("utf-8"))


def read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            # Each entry is one append: a line that does not parse is an append cut short by a crash
            # (kill -9, power cut). The report of the resumed rollout skips it and keeps the rest.
            continue
    return out


def point(t: float, phase: str, weight: int, verdict: dict[str, Any]) -> dict[str, Any]:
    """The figures the report plots, taken from the judge's evidence."""
    signals = verdict.get("evidence", {}).get("signals", {})
    errors = signals.get("errors", {})
    latency = signals.get("latency", {})
    predictions = signals.get("predictions", {})
    return {
        "t": round(t, 2),
        "phase": phase,
        "weight": weight,
        "decision": verdict.get("decision"),
        "stable_error_rate": errors.get("stable_rate"),
        "canary_error_rate": errors.get("canary_rate"),
        "stable_latency_s": latency.get("stable_estimate"),
        "canary_latency_s": latency.get("canary_estimate"),
        "prediction_psi": predictions.get("psi"),
        "canary_requests": verdict.get("evidence", {}).get("canary_requests"),
    }

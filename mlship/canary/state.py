"""Rollout state, persisted so it survives the process: a second terminal sees it, `run` resumes it.

The file is replaced atomically and every change happens under an exclusive lock, so two commands
never interleave their changes. `mlship canary status --json` prints exactly this model; its JSON
Schema (``RolloutState.model_json_schema()``) is the documented format.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlship.errors import MlshipError, RefusedError
from mlship.paths import state_dir

# expired: a step ran out of time (max_step_seconds) without evidence either way; the candidate was
# withdrawn (traffic back to stable) with no verdict against it.
Phase = Literal["shadow", "progressing", "promoted", "rolled_back", "expired"]
ACTIVE_PHASES = ("shadow", "progressing")
Decision = Literal["wait", "advance", "rollback", "expire"]
# Reconciliations kept in the state file (a router flapping every tick must not grow it without end).
MAX_RECONCILIATIONS = 50


class VerdictRecord(BaseModel):
    """The last decision of the judge, with its evidence."""

    model_config = ConfigDict(extra="forbid")
    at: float = Field(description="unix time of the decision")
    decision: Decision
    reason: str
    evidence: dict[str, Any] = Field(description="every signal's statistic, threshold and sample counts")


class StepRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    index: int = Field(description="-1 for the shadow phase")
    weight: int
    started_at: float
    ended_at: float | None = None
    outcome: Literal["advanced", "rolled_back", "promoted", "expired", "running"] = "running"


class RoutingRecord(BaseModel):
    """Where traffic goes: what a rollout wants, or what the router / the route was found doing."""

    model_config = ConfigDict(extra="forbid")
    stable_version: str | None
    canary_version: str | None
    weight: int = Field(
        ge=-1, le=100, description="canary share of user traffic, percent; -1: the route's paths disagree"
    )
    shadow: bool = Field(description="the canary receives a mirrored copy of stable traffic")


class Reconciliation(BaseModel):
    """One difference between the rollout and the routing in effect, and what was done about it."""

    model_config = ConfigDict(extra="forbid")
    at: float
    by: Literal["runner", "local up"] = Field(description="who found it: a controller tick, or `local up`")
    desired: RoutingRecord
    actual: RoutingRecord | None = Field(description="the routing found; null when it could not be read")
    found: str = Field(description="the difference, in words")
    action: str = Field(description="what was done about it")
    result: Literal["repaired", "failed", "resumed"] = Field(
        description="repaired, failed (the rollout pauses), or resumed (a pause ended without a repair)"
    )


class RolloutState(BaseModel):
    """One canary rollout: what runs, where traffic goes, what the judge last said."""

    model_config = ConfigDict(extra="forbid")
    schema_version: Literal[1] = 1
    rollout_id: str
    env: str = Field(description="`local` or the Pulumi stack name")
    phase: Phase
    stable_version: str
    canary_version: str
    steps: list[int] = Field(description="canary traffic percentages, in order")
    step_index: int = Field(description="index into steps; -1 during the shadow phase")
    weight: int = Field(ge=0, le=100, description="canary share of user traffic now, percent")
    shadow: bool = Field(description="whether the rollout began with a shadow phase")
    forced: list[str] = Field(
        default_factory=list,
        description="what the canary lacked and `--force` released it without (gate blessing, spec review)",
    )
    started_at: float
    analysis_started_at: float = Field(description="start of the current analysis window (shadow or traffic)")
    step_started_at: float = Field(
        description=(
            "start of the current step's evidence window: when the step opened, or the last repair of "
            "the routing (evidence gathered before a repair does not count toward the step)"
        )
    )
    updated_at: float
    finished_at: float | None = None
    reason: str = Field("", description="why the rollout is in its phase (for terminal phases)")
    last_verdict: VerdictRecord | None = None
    verdict_counts: dict[str, int] = Field(default_factory=dict)
    history: list[StepRecord] = Field(default_factory=list)
    paused: str = Field(
        "", description="why the rollout is paused (routing it cannot read or repair); empty when not"
    )
    routing_differences: dict[str, int] = Field(
        default_factory=dict, description="differences between rollout and routing found, by result"
    )
    reconciliations: list[Reconciliation] = Field(
        default_factory=list, description=f"the last {MAX_RECONCILIATIONS} differences found, oldest first"
    )
    canary_restarts: int = Field(
        0, ge=0, description="times the canary was found dead and restarted (by a runner or `local up`)"
    )
    step_repairs: int = Field(
        0, ge=0, description="routing repairs in the current step (another writer fighting the rollout)"
    )

    @property
    def active(self) -> bool:
        return self.phase in ACTIVE_PHASES


class StateStore:
    def __init__(self, directory: Path | None = None) -> None:
        self.dir = directory or state_dir() / "canary"
        self.path = self.dir / "state.json"
        self.lock_path = self.dir / "state.lock"

    def load(self) -> RolloutState | None:
        if not self.path.exists():
            return None
        try:
            return RolloutState.model_validate_json(self.path.read_text(encoding="utf-8"))
        except (ValidationError, ValueError) as exc:
            raise MlshipError(
                f"canary state {self.path} is corrupted and was left untouched: {exc.__class__.__name__}: "
                f"{str(exc).splitlines()[0]}. Inspect it, then remove it to start over (traffic routing is "
                "unaffected: check it with `mlship local status`)"
            ) from exc

    def save(self, state: RolloutState) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        state.updated_at = time.time()
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        # Written, flushed to disk, then renamed and the folder flushed: after a power cut the file is
        # the old state or the new one, never empty or torn (the reboot case of the fault campaign).
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(state.model_dump_json(indent=2))
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(self.path)
        folder = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive lock for a read-modify-write of the state (and the routing it describes)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with self.lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def runner_lock(self) -> Iterator[None]:
        """Held by `mlship canary run` for its whole life: one runner per rollout."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / "runner.lock"
        with path.open("a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                owner = handle.read().strip() or "?"
                raise RefusedError(
                    f"another `mlship canary run` (pid {owner}) is driving the rollout"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

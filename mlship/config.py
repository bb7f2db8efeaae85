"""Project configuration (`mlship.yaml`), validated before anything is touched.

Every command loads the configuration first; an unknown key or a bad value fails with a message
naming the key, so nothing is half-applied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlship.errors import ConfigError

CONFIG_FILE = "mlship.yaml"

Port = Annotated[int, Field(ge=1024, le=65535)]
Probability = Annotated[float, Field(gt=0.0, lt=1.0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Strict):
    """The model mlship trains for the demo and serves."""

    name: str = Field("diabetes-regressor", pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    seed: int = 42
    test_size: Annotated[float, Field(gt=0.05, lt=0.5)] = 0.2


class LocalConfig(_Strict):
    """The local environment: every process binds to loopback only."""

    proxy_port: Port = 8080
    router_metrics_port: Port = 8404
    prometheus_port: Port = 9090
    stable_port: Port = 3001
    canary_port: Port = 3002
    # A second stable server (slot `stable-2`, port `stable_2_port`) behind the router: killing one
    # stable server then costs no request. At most 2: HAProxy weights stop at 256 and the canary's
    # weight is scaled by the number of stable servers.
    stable_replicas: Annotated[int, Field(ge=1, le=2)] = 1
    stable_2_port: Port = 3003
    node_exporter_port: Port = 9100
    workers: Annotated[int, Field(ge=1, le=16)] = 1
    start_timeout_s: Annotated[float, Field(gt=0, le=600)] = 120.0

    @model_validator(mode="after")
    def _distinct_ports(self) -> LocalConfig:
        ports = [
            self.proxy_port,
            self.router_metrics_port,
            self.prometheus_port,
            self.stable_port,
            self.stable_2_port,
            self.canary_port,
            self.node_exporter_port,
        ]
        if len(set(ports)) != len(ports):
            raise ValueError(f"local ports must be distinct, got {ports}")
        return self


class CanaryConfig(_Strict):
    """How a canary is stepped and judged."""

    steps: list[Annotated[int, Field(ge=1, le=100)]] = [5, 10, 25, 50, 100]
    # Minimum canary requests observed in a step before it may advance (never wall-clock).
    min_samples: Annotated[int, Field(ge=10)] = 200
    # Give up on a step (rollback, "no data is never a pass") after this long without enough samples.
    max_step_seconds: Annotated[float, Field(gt=0)] = 600.0
    # Type-I error of the whole rollout: probability of rolling back a canary that is as good as stable.
    false_rollback_rate: Probability = 0.01
    # Shadow phase and the CanaryErrorsAboveStable alert: canary error rate may exceed stable's by this much.
    error_rate_margin: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.005
    # Traffic steps: the canary's error rate may be up to this many times stable's (1: not worse at all).
    # Tested on which arm each error lands on given the step's weight, so outages both arms share cancel.
    error_ratio_limit: Annotated[float, Field(ge=1.0)] = 1.5
    # Canary latency (same quantile) may be this many times stable's before it counts as worse.
    latency_ratio_limit: Annotated[float, Field(gt=1.0)] = 1.5
    latency_quantile: Probability = 0.99
    # Population stability index between canary and stable predictions above which they differ.
    prediction_psi_limit: Annotated[float, Field(gt=0.0)] = 0.2
    rejection_rate_margin: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.01
    # Traffic steps: the canary's input-rejection rate may be up to this many times stable's.
    rejection_ratio_limit: Annotated[float, Field(ge=1.0)] = 2.0
    poll_seconds: Annotated[float, Field(gt=0, le=60)] = 2.0
    # Shadow phase: mirrored requests the candidate must answer before users see it.
    shadow_samples: Annotated[int, Field(ge=10)] = 300

    @field_validator("steps")
    @classmethod
    def _increasing_to_100(cls, steps: list[int]) -> list[int]:
        if not steps or steps != sorted(set(steps)) or steps[-1] != 100 or steps[0] >= 100:
            raise ValueError(
                "steps must be strictly increasing percentages ending at 100, with at least one below 100 "
                "(the canary is judged against stable at every weight below 100; 100 is the promotion)"
            )
        return steps


class GateConfig(_Strict):
    """Model quality gate applied before a version may serve (`mlship model validate`)."""

    # Held-out RMSE may be at most this much worse (relative) than the current model's.
    metric_tolerance: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.05
    slice_tolerance: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.10
    # Share of reference rows whose prediction must agree with the current model within tolerance.
    agreement_min: Probability = 0.8
    agreement_tolerance: Annotated[float, Field(gt=0.0)] = 0.25  # relative


class SLOConfig(_Strict):
    """Service level objectives the alert rules are generated from."""

    availability: Probability = 0.995
    latency_threshold_seconds: Annotated[float, Field(gt=0.0)] = 0.1
    latency_target: Probability = 0.99


class DriftConfig(_Strict):
    psi_threshold: Annotated[float, Field(gt=0.0)] = 0.2
    p_value: Probability = 0.01
    max_model_age_days: Annotated[float, Field(gt=0.0)] = 30.0


class FeedbackConfig(_Strict):
    """Outcome feedback (mlship/feedback): the shared store of served predictions and their outcomes."""

    # Predictions (and their outcomes) older than this are expired: outcomes for them are refused and
    # `mlship feedback purge` deletes them.
    retention_days: Annotated[float, Field(gt=0.0, le=3650.0)] = 30.0
    # `mlship load` and `mlship demo`: share of answered requests whose true target is sent back as an
    # outcome, and how long after the prediction: at least 1 s, because a prediction reaches the shared
    # store up to ~0.2 s after its answer (the recorder's batch wait) and /feedback re-checks once 0.3 s
    # later; a sooner outcome may reach another server before the prediction is stored (404).
    outcome_share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    outcome_delay_s: Annotated[float, Field(ge=1.0, le=3600.0)] = 5.0


class Config(_Strict):
    model: ModelConfig = ModelConfig()
    local: LocalConfig = LocalConfig()
    canary: CanaryConfig = CanaryConfig()
    gate: GateConfig = GateConfig()
    slo: SLOConfig = SLOConfig()
    drift: DriftConfig = DriftConfig()
    feedback: FeedbackConfig = FeedbackConfig()


def load_config(path: Path | None = None) -> Config:
    """Load and validate `mlship.yaml`; defaults apply when the file does not exist."""
    path = path or Path(CONFIG_FILE)
    if not path.exists():
        return Config()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path.name, exc)) from exc


def format_validation_error(source: str, exc: ValidationError) -> str:
    """One line per problem, each naming the dotted key, e.g. `canary.steps: ...`."""
    lines = [f"{source}: invalid configuration"]
    for err in exc.errors(include_url=False):
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  {key}: {err['msg']}")
    return "\n".join(lines)

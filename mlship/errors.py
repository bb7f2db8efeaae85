"""Every exit code of the `mlship` CLI, once, and the errors the CLI turns into a one-line message.

``docs/cli.md`` lists exactly these codes (a test compares them). An ``MlshipError`` never reaches the
user as a traceback: ``mlship.cli.main`` prints its message and exits with its code.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1  # the command failed; the message says why and what to do
    USAGE = 2  # bad arguments or configuration (click's own usage errors exit 2 as well)
    REFUSED = 3  # refused and changed nothing (no rollout running, unknown version, ...)
    NOT_READY = 4  # a binary, a port, a model or a service the command needs is missing
    PROMETHEUS_UNAVAILABLE = 5  # Prometheus did not answer
    VALIDATION_FAILED = 6  # rendered manifests or a preflight check failed
    DRIFT_FOUND = 7  # `mlship drift` found drift
    SCORE_TOO_LOW = 8  # `mlship score --fail-under` was not reached
    MODEL_VETOED = 9  # the quality gate vetoed the model (`mlship model validate`)
    ROLLED_BACK = 10  # `mlship canary run` ended with the canary rolled back
    EXPIRED = 11  # `mlship canary run` ended expired: no evidence either way in time, candidate withdrawn
    INTERRUPTED = 130  # Ctrl-C; a rollout stays where it is and `canary run` resumes it


class MlshipError(Exception):
    """Base class: the message says what is wrong and, where possible, what to do."""

    exit_code: ExitCode = ExitCode.ERROR


class ConfigError(MlshipError):
    exit_code = ExitCode.USAGE


class RefusedError(MlshipError):
    """A command that was refused and changed nothing (no canary running, unknown version, ...)."""

    exit_code = ExitCode.REFUSED


class EnvironmentNotReady(MlshipError):
    """A binary, a port, a model or a service the command needs is missing."""

    exit_code = ExitCode.NOT_READY


class ValidationFailed(MlshipError):
    """Rendered manifests (``mlship render``) or the rendered pods (``mlship preflight``) failed a check."""

    exit_code = ExitCode.VALIDATION_FAILED

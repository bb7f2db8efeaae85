"""Errors that the CLI turns into a clear message and a non-zero exit code, with no traceback."""

from __future__ import annotations


class MlshipError(Exception):
    """Base class: the message says what is wrong and, where possible, what to do."""

    exit_code = 1


class ConfigError(MlshipError):
    exit_code = 2


class RefusedError(MlshipError):
    """A command that was refused and changed nothing (no canary running, unknown version, ...)."""

    exit_code = 3


class EnvironmentNotReady(MlshipError):
    """A binary, a port or a service the command needs is missing."""

    exit_code = 4

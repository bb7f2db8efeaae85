"""Kubernetes traffic backend: changes the stack config and runs ``pulumi up`` (Automation API).

The HTTPRoute weights, the RequestMirror filter and the canary Deployment all derive from the
model's entry in ``mlship:models`` of the stack. A change is: read the config, compute the new
entry, validate the whole stack config (nothing invalid is ever written), write it, ``up``. If
``up`` fails, the previous config is written back before the error is raised, so the stack file
again describes what runs.

Promotion copies the canary version into the stable Deployment and removes the canary in one
``up``: the HTTPRoute waits for the stable rollout (it depends on the stable Deployment) and
Pulumi deletes the canary Deployment only after every update succeeded.

The Pulumi CLI sits behind ``StackWorkspace``: ``AutomationWorkspace`` is the real one.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from mlship.canary.backend import Routing
from mlship.errors import ConfigError, MlshipError, RefusedError
from mlship.k8s import stack_config

MODELS_KEY = f"{stack_config.NAMESPACE}:models"


class StackWorkspace(Protocol):
    """The three things the backend needs from a Pulumi stack."""

    def get_config(self, key: str) -> Any:
        """Structured value of a config key (``mlship:models`` -> list of dicts); None if unset."""
        ...

    def set_config(self, key: str, value: Any) -> None:
        """Write a structured value to the stack's config."""
        ...

    def up(self) -> None:
        """Deploy the stack with its current config; raise if the update fails."""
        ...


class AutomationWorkspace:
    """``StackWorkspace`` over the Pulumi Automation API (needs the Pulumi CLI on PATH)."""

    def __init__(self, stack: str, program_dir: Path, on_output: Callable[[str], None] = print) -> None:
        from pulumi import automation

        self._stack = automation.select_stack(stack_name=stack, work_dir=str(program_dir))
        self._on_output = on_output

    def get_config(self, key: str) -> Any:
        value = self._stack.get_all_config().get(key)
        if value is None:
            return None
        try:
            return json.loads(value.value)
        except json.JSONDecodeError:
            return value.value

    def set_config(self, key: str, value: Any) -> None:
        # `pulumi config set-all --json` (the `pulumi config --json` format) keeps structured values
        # structured in Pulumi.<stack>.yaml, so the stack file stays readable after a change.
        payload = {key: {"value": json.dumps(value), "objectValue": value, "secret": False}}
        self._stack.set_all_config_json(json.dumps(payload))

    def up(self) -> None:
        self._stack.up(on_output=self._on_output)


class KubernetesBackend:
    """``TrafficBackend`` for one model of one Pulumi stack."""

    name = "kubernetes"

    def __init__(self, workspace: StackWorkspace, model: str) -> None:
        self.workspace = workspace
        self.model = model

    # --- reading ------------------------------------------------------------------------------
    def _models(self) -> list[dict[str, Any]]:
        models = self.workspace.get_config(MODELS_KEY)
        if not isinstance(models, list):
            raise MlshipError(f"the stack has no {MODELS_KEY} list")
        return models

    def _entry(self, models: list[dict[str, Any]]) -> dict[str, Any]:
        for entry in models:
            if isinstance(entry, dict) and entry.get("name") == self.model:
                return entry
        known = [m.get("name") for m in models if isinstance(m, dict)]
        raise RefusedError(f"model {self.model!r} is not in {MODELS_KEY} (known: {known})")

    def routing(self) -> Routing:
        entry = self._entry(self._models())
        canary = entry.get("canary") or None
        return Routing(
            stable_version=entry.get("stable"),
            canary_version=canary["version"] if canary else None,
            weight=int(canary.get("weight", 0)) if canary else 0,
            shadow=bool(canary.get("shadow", False)) if canary else False,
        )

    # --- changing -----------------------------------------------------------------------------
    def _apply(self, change: Callable[[dict[str, Any]], None]) -> None:
        """Change this model's entry, validate, write, ``up``; restore the old config on failure."""
        previous = self._models()
        models = copy.deepcopy(previous)
        change(self._entry(models))
        self._validate(models)
        self.workspace.set_config(MODELS_KEY, models)
        try:
            self.workspace.up()
        except Exception as exc:
            try:
                self.workspace.set_config(MODELS_KEY, previous)
            except Exception as restore_exc:
                raise MlshipError(
                    f"pulumi up failed ({exc}) and restoring the previous {MODELS_KEY} failed too "
                    f"({restore_exc}): check the stack config before the next change"
                ) from exc
            raise MlshipError(f"pulumi up failed, stack config restored: {exc}") from exc

    def _validate(self, models: list[dict[str, Any]]) -> None:
        """Validate the new models list as part of a stack config (same rules as ``pulumi up``)."""
        try:
            stack_config.validate_models(models)
        except ConfigError as exc:
            raise RefusedError(f"refused, the change would make the stack config invalid: {exc}") from exc

    def _require_canary(self, entry: dict[str, Any], action: str) -> dict[str, Any]:
        canary = entry.get("canary")
        if not canary:
            raise RefusedError(f"no canary is deployed for {self.model}: nothing to {action}")
        return canary

    def deploy_canary(self, version: str, *, shadow: bool) -> None:
        def change(entry: dict[str, Any]) -> None:
            current = entry.get("canary")
            if current and current.get("version") != version:
                raise RefusedError(
                    f"canary {current.get('version')} is already deployed for {self.model}: "
                    "promote or roll it back first"
                )
            if version == entry.get("stable"):
                raise RefusedError(f"{version} is already the stable version of {self.model}")
            entry["canary"] = {"version": version, "weight": 0, "shadow": shadow}

        self._apply(change)

    def set_weight(self, weight: int) -> None:
        if not 0 <= weight <= 100:
            raise RefusedError(f"weight must be between 0 and 100, got {weight}")

        def change(entry: dict[str, Any]) -> None:
            canary = self._require_canary(entry, "weight")
            canary.update({"weight": weight, "shadow": False})

        self._apply(change)

    def promote(self) -> None:
        def change(entry: dict[str, Any]) -> None:
            canary = self._require_canary(entry, "promote")
            entry["stable"] = canary["version"]
            del entry["canary"]

        self._apply(change)

    def rollback(self) -> None:
        def change(entry: dict[str, Any]) -> None:
            self._require_canary(entry, "roll back")
            del entry["canary"]  # one update: the route drops the canary, then the Deployment goes

        self._apply(change)

    def deploy_stable(self, version: str) -> None:
        def change(entry: dict[str, Any]) -> None:
            if entry.get("canary"):
                raise RefusedError(f"a canary is deployed for {self.model}: promote or roll it back first")
            entry["stable"] = version

        self._apply(change)

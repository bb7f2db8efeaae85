"""Helpers to query rendered objects (imported by the tests of this folder)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlship.k8s import render as renderer

PROGRAM = Path(__file__).resolve().parents[2] / "pulumi"


def stack_models(stack: str) -> list[dict[str, Any]]:
    """The ``mlship:models`` list of a shipped stack file (to derive overrides from)."""
    from mlship.k8s.stack_config import read_stack_file

    raw, _ = read_stack_file(PROGRAM / f"Pulumi.{stack}.yaml")
    return json.loads(json.dumps(raw["models"]))


def find(
    result: renderer.RenderResult, kind: str, name: str | None = None, namespace: str | None = None
) -> list[dict]:
    return [
        m
        for m in result.manifests
        if m["kind"] == kind
        and (name is None or m["metadata"]["name"] == name)
        and (namespace is None or m["metadata"].get("namespace") == namespace)
    ]


def one(result: renderer.RenderResult, kind: str, name: str, namespace: str | None = None) -> dict:
    found = find(result, kind, name, namespace)
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def release(result: renderer.RenderResult, name: str) -> dict:
    found = [r for r in result.releases if r["release"] == name]
    assert len(found) == 1, (
        f"expected one Helm release {name}, found {[r['release'] for r in result.releases]}"
    )
    return found[0]


def with_canary(stack: str, **canary: Any) -> list[dict[str, Any]]:
    models = stack_models(stack)
    models[0]["canary"] = {"version": "2.0.0", **canary}
    return models

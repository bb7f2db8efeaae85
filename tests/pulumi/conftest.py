"""Shared fixtures: the real Pulumi program rendered under Pulumi's mocks.

No Kubernetes API server and no Pulumi CLI can exist on these machines, so the program runs
in-process with ``pulumi.runtime.set_mocks`` (Pulumi's documented unit-test method): every resource
the program declares is captured with its inputs, exactly as the engine would receive them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlship.k8s import render as renderer

PROGRAM = Path(__file__).resolve().parents[2] / "pulumi"
STACKS = ("dev", "staging", "prod")

Render = Callable[..., renderer.RenderResult]


@pytest.fixture(scope="session")
def render() -> Render:
    """render(stack, **overrides) -> RenderResult, cached per (stack, overrides)."""
    cache: dict[str, renderer.RenderResult] = {}

    def _render(stack: str, **overrides: Any) -> renderer.RenderResult:
        key = json.dumps([stack, overrides], sort_keys=True)
        if key not in cache:
            cache[key] = renderer.run_program(stack, PROGRAM, overrides)
        return cache[key]

    return _render

"""Fixtures for the scorer: a sample git project whose test suite ran under real pytest, a real Prometheus."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_process import running_prometheus
from score_helpers import MAP, REPO, copy_project, make_project, run_pytest, write_bench

from mlship.local.processes import wait_until


@pytest.fixture(scope="module")
def ran_project(tmp_path_factory) -> Path:
    """The sample project, committed, its suite run once (JUnit report, figures) and a bench written."""
    root = make_project(tmp_path_factory.mktemp("sample") / "project")
    run_pytest(root)
    write_bench(root)
    return root


@pytest.fixture
def project(ran_project, tmp_path, monkeypatch) -> Path:
    """A private copy of the run project (git history included), for a test to change.

    The scorer's `pytest --collect-only` inherits the environment: the sample project needs no
    third-party pytest plugin, and loading them all costs seconds per collection.
    """
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    return copy_project(ran_project, tmp_path / "project")


@pytest.fixture
def raw_map() -> dict:
    return copy.deepcopy(MAP)


@pytest.fixture
def repo_map_raw() -> dict:
    """This repository's evidence map as plain data, to derive variants from."""
    return yaml.safe_load((REPO / "mlship-score.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory) -> Iterator[str]:
    """Debian's Prometheus on a free loopback port, loading mlship's committed alerting rules."""
    folder = tmp_path_factory.mktemp("prometheus")
    rules = sorted((REPO / "mlship" / "monitoring" / "generated" / "rules").glob("*.yml"))
    with running_prometheus(folder, rule_files=rules) as url:
        wait_until(lambda: _rules_healthy(url), timeout=30, what="prometheus rule evaluation")
        yield url


def _rules_healthy(url: str) -> bool:
    try:
        groups = httpx.get(f"{url}/api/v1/rules", timeout=1, trust_env=False).json()["data"]["groups"]
    except (httpx.HTTPError, ValueError, KeyError):
        return False
    return bool(groups) and all(r.get("health") == "ok" for g in groups for r in g["rules"])

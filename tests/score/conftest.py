"""Fixtures for the scorer: JUnit reports written by real pytest runs, rubrics, a real Prometheus."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import httpx
import pytest
import yaml
from prometheus_process import running_prometheus
from score_helpers import REPO

from mlship.local.processes import wait_until


@pytest.fixture
def raw_rubric() -> dict:
    """The shipped rubric as plain data, to derive variants from."""
    text = (REPO / "mlship" / "score" / "rubric.yaml").read_text(encoding="utf-8")
    return copy.deepcopy(yaml.safe_load(text))


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

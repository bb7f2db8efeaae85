"""Fixtures for the monitoring tests: Debian's promtool and prometheus, run as plain processes."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from prometheus_process import running_prometheus


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed: `make setup` installs Debian's prometheus package")
    return path


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start Debian's prometheus on a free loopback port; returns its URL. Stopped after the test."""
    started = itertools.count(1)
    with ExitStack() as stack:

        def start(scrape_configs: list[dict], rule_files: list[Path], interval: str = "1s") -> str:
            folder = tmp_path / f"prometheus-{next(started)}"
            return stack.enter_context(
                running_prometheus(
                    folder, rule_files=rule_files, scrape_configs=scrape_configs, interval=interval
                )
            )

        yield start

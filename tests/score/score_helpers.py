"""Helpers for the scorer tests: JUnit reports as pytest writes them, rubric variants, free ports."""

from __future__ import annotations

import socket
from pathlib import Path

import yaml

from mlship.score import rubric as rubric_module

REPO = Path(__file__).resolve().parents[2]


def junit_xml(
    cases: dict[str, str], *, module: str = "tests.demo.test_demo", stamp: str | None = None
) -> str:
    """A JUnit report like pytest writes: {test name: passed|failed|error|skipped}."""
    body = []
    for name, outcome in cases.items():
        inner = {
            "passed": "",
            "failed": '<failure message="assert 1 == 2">trace</failure>',
            "error": '<error message="fixture exploded">trace</error>',
            "skipped": '<skipped type="pytest.skip" message="needs docker">skip</skipped>',
        }[outcome]
        body.append(f'<testcase classname="{module}" name="{name}" time="0.01">{inner}</testcase>')
    stamp_attr = f' timestamp="{stamp}"' if stamp else ""
    return (
        '<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">'
        f'<testsuite name="pytest" errors="0" failures="0" skipped="0" tests="{len(cases)}"{stamp_attr}>'
        + "".join(body)
        + "</testsuite></testsuites>"
    )


def parse(raw: dict) -> rubric_module.Rubric:
    return rubric_module.parse(yaml.safe_dump(raw), "test-rubric.yaml")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

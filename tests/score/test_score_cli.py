"""`mlship score` as a user runs it on their own project: table, --json (documented shape), --html,
--fail-under, --evidence, and one clear line when the evidence map is missing or invalid."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from mlship.cli import app
from mlship.errors import ExitCode


@pytest.fixture
def in_project(project, monkeypatch):
    """The sample project as the working directory, its reports/ and bench/ as the state folder."""
    monkeypatch.chdir(project)
    monkeypatch.setenv("MLSHIP_STATE_DIR", str(project))
    return project


def invoke(*args: str):
    return CliRunner(env={"COLUMNS": "200"}).invoke(
        app, ["score", "--no-live", *args], catch_exceptions=False
    )


def test_json_has_the_documented_shape(in_project):
    result = invoke("--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["schema_version"] == 2
    assert set(body) == {
        "schema_version",
        "generated_at",
        "final",
        "automated",
        "proxy",
        "manual",
        "missing",
        "inputs",
        "sections",
    }
    assert body["automated"] + body["proxy"] + body["manual"] + body["missing"] == 28
    assert body["inputs"]["commit"] and body["inputs"]["junit_commit"] == body["inputs"]["commit"]
    assert body["inputs"]["run_problem"] is None and body["inputs"]["prometheus"]["checked"] is False
    items = {i["id"]: i for s in body["sections"] for i in s["items"]}
    assert len(items) == 28
    assert items["infra-1"]["status"] == "automated" and items["infra-1"]["points"] == 1
    assert items["infra-1"]["checks"] == [
        {
            "kind": "pytest",
            "target": "tests/test_beta.py::TestGroup",
            "status": "passed",
            "detail": "1 collected, 1 passed",
            "proxy_reason": "",
        }
    ]
    assert items["model-4"]["status"] == "proxy" and items["model-4"]["points"] == 0.5
    assert items["monitor-1"]["proxy_checks"][0]["status"] == "passed"
    assert items["data-6"]["manual"]["status"] == "documented"
    assert (
        items["model-1"]["status"] == "missing"
        and items["model-1"]["reason"] == "no evidence declared in the evidence map"
    )
    assert body["final"] == {
        "score": 0.5,
        "weakest": ["model", "monitoring"],
        "band": "(0, 1]",
        "interpretation": body["final"]["interpretation"],
    }


def test_the_table_shows_status_and_evidence_for_each_item(in_project):
    result = invoke()
    assert result.exit_code == 0
    out = result.output
    assert "Training is reproducible." in out and "ML Test Score 0.5" in out
    for status in ("automated", "proxy", "manual", "missing"):
        assert status in out
    assert "pytest tests/beta.py" not in out and "pytest tests/test_beta.py::TestGroup: passed" in out
    assert "row order stands in for time here" in out


def test_html_report_names_statuses_and_evidence(in_project):
    assert invoke("--html", "out/score.html").exit_code == 0
    page = (in_project / "out" / "score.html").read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and "<h1>ML Test Score</h1>" in page
    assert (
        "<tr class='proxy'>" in page and "<tr class='automated'>" in page and "<tr class='missing'>" in page
    )
    assert "tests/test_beta.py::TestGroup" in page


def test_fail_under_exits_with_score_too_low(in_project):
    assert invoke("--fail-under", "1").exit_code == ExitCode.SCORE_TOO_LOW
    assert invoke("--fail-under", "0.5").exit_code == 0


def test_the_evidence_map_path_is_configurable(in_project, tmp_path):
    moved = tmp_path / "elsewhere.yaml"
    moved.write_text((in_project / "mlship-score.yaml").read_text())
    (in_project / "mlship-score.yaml").unlink()
    # The map's folder is the project root: a map outside the repository binds nothing.
    result = invoke("--json", "--evidence", str(moved))
    assert result.exit_code == 0
    assert "not a git work tree" in json.loads(result.stdout)["inputs"]["tree_problem"]


def test_an_invalid_map_is_one_line_and_exit_2(in_project, monkeypatch, capsys):
    """(A missing map is walked by tests/unit/test_cli_fresh_checkout.py, as a new user meets it.)"""
    from mlship.cli import main

    (in_project / "mlship-score.yaml").write_text(
        "version: 1\nitems:\n  model-9: {how: a ninth model test}\n"
    )
    monkeypatch.setattr(sys, "argv", ["mlship", "score", "--no-live"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == ExitCode.USAGE
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: mlship-score.yaml: items.model-9: unknown item id (the rubric's are data-1..7, model-1..7, "
        "infra-1..7, monitor-1..7)"
    )

"""`mlship score` as a user runs it: table, --json (documented shape), --html, --fail-under."""

from __future__ import annotations

import json
import sys

import pytest
from score_helpers import junit_xml
from typer.testing import CliRunner

from mlship.cli import app
from mlship.errors import ExitCode


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder (no mlship.yaml: defaults) with a test report where one covered test failed."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLSHIP_STATE_DIR", str(tmp_path / ".mlship"))
    reports = tmp_path / ".mlship" / "reports"
    reports.mkdir(parents=True)
    cases = {"test_same_data_and_seed_give_a_byte_identical_model": "passed"}
    (reports / "junit.xml").write_text(junit_xml(cases, module="tests.unit.test_training"), encoding="utf-8")
    return tmp_path


def invoke(*args: str):
    return CliRunner(env={"COLUMNS": "200"}).invoke(
        app, ["score", "--no-live", *args], catch_exceptions=False
    )


def test_json_has_the_documented_shape_and_reads_the_default_report(project):
    result = invoke("--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["schema_version"] == 1
    assert set(body) == {
        "schema_version",
        "generated_at",
        "final",
        "automated",
        "manual",
        "none",
        "inputs",
        "sections",
    }
    assert set(body["final"]) == {"score", "weakest", "band", "interpretation"}
    assert body["automated"] + body["manual"] + body["none"] == 28
    assert body["inputs"]["junit_found"] and body["inputs"]["junit"][0].endswith(".mlship/reports/junit.xml")
    assert body["inputs"]["prometheus"]["checked"] is False
    assert [s["id"] for s in body["sections"]] == ["data", "model", "infra", "monitoring"]
    items = {i["id"]: i for s in body["sections"] for i in s["items"]}
    assert len(items) == 28
    assert items["infra-1"]["points"] == 1 and items["infra-1"]["status"] == "automated"
    assert items["infra-1"]["checks"] == [
        {
            "kind": "pytest",
            "target": "tests/unit/test_training.py::test_same_data_and_seed_give_a_byte_identical_model",
            "status": "passed",
            "detail": "1 passed",
        }
    ]
    assert items["infra-2"]["points"] == 0, "only one test of the file ran: the rest did not"
    assert items["data-6"]["manual"]["status"] == "documented"
    assert body["final"]["score"] == 0 and body["final"]["band"] == "0"


def test_the_table_names_each_test_its_points_and_the_interpretation(project):
    result = invoke()
    assert result.exit_code == 0
    assert "Training is reproducible." in result.output
    assert "ML Test Score 0" in result.output
    assert "More of a research project than a productionized system." in result.output


def test_html_report_is_written_and_readable(project):
    result = invoke("--html", "out/score.html")
    assert result.exit_code == 0
    page = (project / "out" / "score.html").read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and "<h1>ML Test Score</h1>" in page
    for title in ("Tests for features and data", "Tests for model development", "Monitoring tests for ML"):
        assert title in page
    assert "Training is reproducible." in page


def test_fail_under_exits_8_below_the_threshold(project):
    assert invoke("--fail-under", "0.5").exit_code == ExitCode.SCORE_TOO_LOW
    assert invoke("--fail-under", "0").exit_code == 0


def test_without_a_report_it_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLSHIP_STATE_DIR", str(tmp_path / ".mlship"))
    result = invoke()
    assert result.exit_code == 0
    assert "no test report at" in result.output and "make test" in result.output


def test_a_broken_report_is_one_clear_error(project):
    from mlship.cli import main

    (project / ".mlship" / "reports" / "junit.xml").write_text("<testsuites>", encoding="utf-8")
    argv = sys.argv
    sys.argv = ["mlship", "score", "--no-live"]
    try:
        with pytest.raises(SystemExit) as exit_info:
            main()
    finally:
        sys.argv = argv
    assert exit_info.value.code == 1

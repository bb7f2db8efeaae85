"""The paper's scoring rules applied to evidence: 1 point automated, 0.5 documented manual procedure, 0
otherwise; a failing, skipped or missing test removes the point; the final score is the section minimum."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from score_helpers import REPO, junit_xml, parse

from mlship.score import rubric, scoring
from mlship.score.evidence import FIGURES_DIR, Evidence, LiveState, selector_parts

ALL = rubric.load()


def cases_for(loaded: rubric.Rubric) -> dict[tuple[str, str], str]:
    """One passing JUnit case per pytest selector of the rubric: (classname, name) -> outcome."""
    out = {}
    for item in loaded.items:
        for check in item.automated:
            if isinstance(check, rubric.PytestCheck):
                _, module, name = selector_parts(check.pytest)
                out[(module, name or "test_whole_file")] = "passed"
    return out


def write_junit(path: Path, cases: dict[tuple[str, str], str], stamp: str = "") -> Path:
    modules: dict[str, dict[str, str]] = {}
    for (module, name), outcome in cases.items():
        modules.setdefault(module, {})[name] = outcome
    parts = [junit_xml(named, module=module, stamp=stamp) for module, named in modules.items()]
    suites = "".join(
        p.split('<testsuites name="pytest tests">', 1)[1].removesuffix("</testsuites>") for p in parts
    )
    path.write_text(
        f'<?xml version="1.0" encoding="utf-8"?><testsuites>{suites}</testsuites>', encoding="utf-8"
    )
    return path


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A finished run: JUnit report, the figures its tests wrote, a passing compute benchmark."""
    reports = tmp_path / "reports"
    (reports / FIGURES_DIR).mkdir(parents=True)
    for item in ALL.items:
        for check in item.automated:
            if isinstance(check, rubric.FigureCheck):
                (reports / FIGURES_DIR / check.figure).write_text(json.dumps({"test": "t"}), encoding="utf-8")
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "model_compute.json").write_text(json.dumps({"passed": True, "at": "now"}))
    return tmp_path


def evidence(run_dir: Path, cases: dict, live: LiveState | None = None, stamp: str = "") -> Evidence:
    junit = write_junit(run_dir / "reports" / "junit.xml", cases, stamp)
    return Evidence(
        repo=REPO,
        junit_paths=[junit],
        bench_dir=run_dir / "bench",
        live=live or LiveState(url=None, reachable=False, detail="live checks disabled"),
    )


def item(result: scoring.Score, item_id: str) -> scoring.ItemScore:
    return next(i for i in result.items if i.item.id == item_id)


def test_everything_passing_scores_each_automated_test_one_point_and_the_minimum_section(run_dir):
    result = scoring.score(ALL, evidence(run_dir, cases_for(ALL)))
    by_section = {s.section.id: s.score for s in result.sections}
    assert by_section == {"data": 6.5, "model": 5.0, "infra": 7.0, "monitoring": 7.0}
    assert result.final == 5.0 and result.weakest == ["model"]
    assert result.band.label == "(3, 5]"
    assert item(result, "data-6").points == 0.5 and item(result, "data-6").status == "manual"
    assert item(result, "model-2").points == 0 and item(result, "model-2").reason == "no automated check"
    assert result.count("automated") == 25 and result.count("manual") == 1


@pytest.mark.parametrize("outcome", ["failed", "error", "skipped"])
def test_a_failing_erroring_or_skipped_test_removes_the_point(run_dir, outcome):
    cases = cases_for(ALL)
    cases[("tests.mltest.test_staleness", "test_whole_file")] = outcome
    result = scoring.score(ALL, evidence(run_dir, cases))
    staleness = item(result, "model-4")
    assert staleness.points == 0 and staleness.status == "none"
    expected = "skipped" if outcome == "skipped" else "failed"
    assert [c.status for c in staleness.checks] == [expected, "passed"]
    assert result.final == 4.0 and result.weakest == ["model"]
    assert result.band.label == "(3, 5]"


def test_a_test_missing_from_the_report_did_not_run(run_dir):
    cases = cases_for(ALL)
    del cases[("tests.mltest.test_dependency_lock", "test_whole_file")]
    result = scoring.score(ALL, evidence(run_dir, cases))
    lock = item(result, "monitor-1")
    assert lock.points == 0 and lock.checks[0].status == "not run"
    assert "not in the latest test report" in lock.checks[0].detail


def test_one_failing_parametrisation_fails_the_whole_selector(run_dir):
    cases = cases_for(ALL)
    cases[("tests.mltest.test_gate", "test_good_models_predict_finite_values_on_every_edge_row[slow]")] = (
        "failed"
    )
    cases[
        ("tests.mltest.test_gate", "test_good_models_predict_finite_values_on_every_edge_row[baseline]")
    ] = "passed"
    del cases[("tests.mltest.test_gate", "test_whole_file")]
    cases[("tests.mltest.test_gate", "test_other")] = "passed"
    ev = evidence(run_dir, cases)
    result = scoring.score(ALL, ev)
    assert item(result, "infra-4").points == 0
    assert re.search(r"1 of 6 failed: test_good_models.*\[slow\]", item(result, "infra-4").checks[0].detail)
    assert item(result, "monitor-5").points == 1, "its own selector of the gate test still passed"
    selector = "tests/mltest/test_gate.py::test_good_models_predict_finite_values_on_every_edge_row"
    assert ev.check(rubric.PytestCheck(pytest=selector)).detail.startswith("1 of 2 failed")
    assert ev.check(rubric.PytestCheck(pytest=selector + "[baseline]")).status == "passed"


def test_without_a_test_report_only_documented_procedures_score(tmp_path):
    ev = Evidence(
        repo=REPO,
        junit_paths=[tmp_path / "missing.xml"],
        bench_dir=tmp_path,
        live=LiveState(url=None, reachable=False, detail="off"),
    )
    result = scoring.score(ALL, ev)
    assert result.final == 0 and result.band.text.startswith("More of a research project")
    statuses = {c.status for i in result.items for c in i.checks if c.kind == "pytest"}
    assert statuses == {"not run"}
    assert {s.section.id: s.score for s in result.sections}["data"] == 0.5


def test_a_documented_procedure_gives_half_a_point_when_automation_fails(run_dir, raw_rubric):
    raw_rubric["sections"][0]["items"][1]["manual"] = "docs/procedures/data-6-new-features.md"
    loaded = parse(raw_rubric)
    cases = cases_for(loaded)
    cases[("tests.mltest.test_feature_benefit", "test_whole_file")] = "failed"
    result = scoring.score(loaded, evidence(run_dir, cases))
    assert item(result, "data-2").points == 0.5 and item(result, "data-2").status == "manual"


def test_a_procedure_without_results_or_a_missing_document_gives_nothing(tmp_path):
    (tmp_path / "doc.md").write_text("# Adding a feature\n\n## Procedure\n\n1. edit features.py\n")
    ev = Evidence(
        repo=tmp_path, junit_paths=[tmp_path / "j.xml"], bench_dir=tmp_path, live=LiveState(None, False, "")
    )
    assert ev.manual("doc.md").status == "incomplete" and "## Results" in ev.manual("doc.md").detail
    assert ev.manual("nope.md").status == "missing"


def test_missing_figures_or_a_failed_benchmark_remove_the_point(run_dir):
    (run_dir / "reports" / FIGURES_DIR / "staleness.json").unlink()
    (run_dir / "bench" / "model_compute.json").write_text(json.dumps({"passed": False, "at": "then"}))
    result = scoring.score(ALL, evidence(run_dir, cases_for(ALL)))
    assert item(result, "model-4").points == 0
    assert [c.status for c in item(result, "model-4").checks] == ["passed", "missing"]
    assert item(result, "monitor-6").points == 0
    assert "did not pass" in item(result, "monitor-6").checks[1].detail


def test_a_figure_older_than_the_run_is_not_evidence_of_it(run_dir):
    figure = run_dir / "reports" / FIGURES_DIR / "feature_cost.json"
    an_hour_ago = time.time() - 3600
    os.utime(figure, (an_hour_ago, an_hour_ago))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(time.time() - 60))
    stamp = stamp[:-2] + ":" + stamp[-2:]
    result = scoring.score(ALL, evidence(run_dir, cases_for(ALL), stamp=stamp))
    assert item(result, "data-3").points == 0
    assert "older than the latest run" in item(result, "data-3").checks[1].detail


def test_a_live_check_that_fails_withholds_the_point_and_one_not_checked_does_not(run_dir):
    healthy = {a: ("ok", "") for i in ALL.items if i.live for a in i.live.alerts}
    series = {s: True for i in ALL.items if i.live for s in i.live.series}
    live = LiveState(url="http://prom", reachable=True, detail="Prometheus", rules=healthy, _series=series)
    assert scoring.score(ALL, evidence(run_dir, cases_for(ALL), live)).final == 5.0
    broken = {**healthy, "TrainingServingSkew": ("err", "bad expression")}
    live = LiveState(url="http://prom", reachable=True, detail="Prometheus", rules=broken, _series=series)
    result = scoring.score(ALL, evidence(run_dir, cases_for(ALL), live))
    skew = item(result, "monitor-3")
    assert skew.points == 0 and skew.live.status == "failed" and "bad expression" in skew.reason
    assert {s.section.id: s.score for s in result.sections}["monitoring"] == 6.0
    off = scoring.score(ALL, evidence(run_dir, cases_for(ALL)))
    assert item(off, "monitor-3").points == 1 and item(off, "monitor-3").live.status == "not checked"

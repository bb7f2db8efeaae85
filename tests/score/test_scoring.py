"""The scorer on a real project: a git repository whose test suite ran under real pytest with the mlship
plugin. Each status (automated, proxy, manual, missing) is earned as the paper and the evidence map say,
and each way a run can fail to be evidence of this commit - a dirty tree, another commit, a partial run,
a report that holds tests the file does not have, a figure or bench that does not hold up - scores nothing.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from score_helpers import git, load_map, run_pytest, write_bench, write_map

from mlship.score import evidence, rubric, scoring
from mlship.score.evidence import Evidence, LiveState

RUBRIC = rubric.load()
OFF = LiveState(url=None, reachable=False, detail="live checks disabled")


@pytest.fixture(scope="module")
def collected(ran_project) -> evidence.Collection:
    """`pytest --collect-only` of the sample project, once: copies whose tests are unchanged share it."""
    return evidence.pytest_collect(ran_project, load_map(ran_project).pytest_files())


@pytest.fixture
def score(collected):
    """score(root, live=OFF, recollect=False): the project scored; recollect after changing its tests."""

    def run(root: Path, live: LiveState = OFF, recollect: bool = False) -> scoring.Score:
        ev = Evidence(
            root=root,
            evidence_map=load_map(root),
            junit_paths=[root / "reports" / "junit.xml"],
            bench_dir=root / "bench",
            live=live,
            collector=evidence.pytest_collect if recollect else (lambda _root, _files: collected),
        )
        return scoring.score(RUBRIC, load_map(root), ev)

    return run


def item(result: scoring.Score, item_id: str) -> scoring.ItemScore:
    return next(i for i in result.items if i.item.id == item_id)


def statuses(result: scoring.Score) -> dict[str, str]:
    return {i.item.id: i.status for i in result.items if i.declared is not None}


def healthy(*alerts: str) -> LiveState:
    now = datetime.now(UTC)
    return LiveState(
        url="http://prom", reachable=True, detail="Prometheus", rules={a: ("ok", "", now) for a in alerts}
    )


def test_a_clean_full_run_earns_each_status_the_rules_give(score, project):
    result = score(project)
    assert statuses(result) == {
        "data-1": "automated",  # the whole file ran and passed
        "data-2": "missing",  # its figure's verdict is failed: the property does not hold
        "data-6": "manual",
        "model-4": "proxy",  # its figure says what stands in for what
        "infra-1": "automated",  # a class selector
        "infra-2": "automated",  # one parametrisation
        "infra-5": "missing",  # every test of its file is other items' evidence
        "infra-6": "automated",  # a figure and a bench of this commit
        "monitor-1": "proxy",  # declared a proxy in the map
        "monitor-2": "missing",  # a monitoring item without a live check
        "monitor-3": "missing",  # its live check was not run: not evidenced
    }
    assert {s.section.id: s.score for s in result.sections} == {
        "data": 1.5,
        "model": 0.5,
        "infra": 3.0,
        "monitoring": 0.5,
    }
    assert result.final == 0.5 and result.weakest == ["model", "monitoring"]
    assert "flagged: age" in item(result, "data-2").reason
    assert "row order stands in for time" in item(result, "model-4").reason
    assert (
        "every test of tests/test_delta.py is named as other items' evidence"
        in item(result, "infra-5").reason
    )
    assert "needs a live check that passed" in item(result, "monitor-2").reason
    assert "live checks disabled: not evidenced" in item(result, "monitor-3").reason
    data_1 = item(result, "data-1").checks[0]
    assert data_1.detail == "all 4 collected passed (2 count here)", (
        "test_param[2] and test_three are others'"
    )


def test_a_live_check_that_passed_makes_a_monitoring_item_automated_and_a_stale_one_does_not(score, project):
    assert item(score(project, healthy("Watch")), "monitor-3").status == "automated"
    stale = healthy("Watch")
    stale.rules["Watch"] = ("ok", "", datetime.now(UTC) - timedelta(minutes=30))
    result = item(score(project, stale), "monitor-3")
    assert result.status == "missing" and "not evaluated in the last 5 min" in result.reason
    broken = healthy()
    assert "alert Watch absent" in item(score(project, broken), "monitor-3").reason


def test_a_partial_run_of_a_file_is_not_evidence_for_the_file(score, project):
    run_pytest(project, "-k", "not test_three")
    result = score(project)
    for item_id in ("data-1", "infra-2", "monitor-3"):  # the whole file; one of its tests; the one left out
        check = item(result, item_id).checks[0]
        assert check.status == "not run", item_id
        assert check.detail == (
            "1 of 4 tests collected in tests/test_alpha.py did not run (first: test_three): not a full run"
        )
    assert item(result, "infra-1").status == "automated", "another file, run whole"


def test_one_failing_parametrisation_fails_the_file_and_its_own_selector(score, project):
    test = project / "tests" / "test_alpha.py"
    test.write_text(test.read_text().replace("assert n in (1, 2)", "assert n == 1"))
    git(project, "commit", "-qam", "break test_param[2]")
    run_pytest(project)
    result = score(project, recollect=True)
    assert re.match(r"1 of 4 failed: test_param\[2\]", item(result, "data-1").checks[0].detail)
    assert item(result, "infra-2").checks[0].status == "failed"


def test_a_dirty_tree_scores_no_run_and_says_how_to_fix_it(score, project):
    (project / "tests" / "test_delta.py").write_text("def test_alone():\n    assert 2 + 2 == 4\n")
    result = score(project)
    assert result.evidence.tree_problem.startswith(
        "the working tree has uncommitted changes (1 changed paths"
    )
    checks = [c for i in result.items for c in [*i.checks, *i.proxy_checks] if c.kind != "live"]
    assert checks and {c.status for c in checks} <= {"not bound", "missing"}
    assert statuses(result)["data-6"] == "manual"
    assert result.count("automated") == 0 and result.count("proxy") == 0


def test_a_report_from_another_commit_counts_for_nothing(score, project):
    (project / "NOTES.md").write_text("a later commit\n")
    git(project, "add", "NOTES.md")
    git(project, "commit", "-qm", "later")
    result = score(project)
    assert re.match(
        r"the test report ran on commit [0-9a-f]{12}, the tree is at [0-9a-f]{12}",
        result.evidence.run_problem,
    )
    assert result.count("automated") == 0
    assert item(result, "infra-6").checks[1].status == "failed", "the bench ran on the earlier commit too"


def test_a_report_of_a_dirty_tree_counts_for_nothing_even_once_clean_again(score, project):
    test = project / "tests" / "test_delta.py"
    original = test.read_text()
    test.write_text(original + "\n# an edit nobody committed\n")
    run_pytest(project)
    test.write_text(original)
    result = score(project)
    assert result.evidence.run_problem.startswith(
        "the test report ran on a dirty tree (mlship.dirty true: 1 changed"
    )


def test_a_report_without_the_plugins_properties_counts_for_nothing(score, project):
    junit = project / "reports" / "junit.xml"
    junit.write_text(re.sub(r"<properties>.*?</properties>", "", junit.read_text(), flags=re.S))
    result = score(project)
    assert "names no commit: run pytest with `-p mlship.score.pytest_plugin`" in result.evidence.run_problem
    assert result.count("automated") == 0


def test_a_report_holding_tests_the_file_does_not_collect_is_not_a_run_of_it(score, project):
    junit = project / "reports" / "junit.xml"
    fake = '<testcase classname="tests.test_delta" name="test_whole_file" time="0.0" />'
    junit.write_text(junit.read_text().replace("</testsuite>", fake + "</testsuite>"))
    check = item(score(project), "monitor-1").proxy_checks[0]
    assert check.status == "failed"
    assert check.detail.startswith(
        "the report holds 1 test(s) tests/test_delta.py does not collect (first: test_whole_file)"
    )


def test_a_selector_naming_a_test_that_does_not_exist_is_missing(score, project, raw_map):
    raw_map["items"]["infra-1"]["automated"] = [{"pytest": "tests/test_beta.py::test_nowhere"}]
    write_map(project, raw_map)
    git(project, "commit", "-qam", "map")
    run_pytest(project)
    check = item(score(project, recollect=True), "infra-1").checks[0]
    assert (
        check.status == "missing"
        and check.detail == "pytest collects no test test_nowhere in tests/test_beta.py"
    )


def figure_path(root: Path, name: str) -> Path:
    return root / "reports" / "mltest" / name


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ("", "not JSON"),
        ("{}", "test: Field required"),
        ("[1, 2]", "not a JSON object but list"),
        (
            '{"test": "tests/test_alpha.py::test_one", "written_at": "2026-01-01T00:00:00+00:00", '
            '"commit": "' + "a" * 40 + '", "verdict": "passed"}',
            "holds no figures besides its envelope",
        ),
    ],
)
def test_an_empty_or_malformed_figure_scores_nothing(score, project, body, detail):
    figure_path(project, "alpha.json").write_text(body)
    check = item(score(project), "infra-6").checks[0]
    assert check.status == "failed" and "is malformed" in check.detail and detail in check.detail


def test_a_figure_must_name_the_runs_commit_its_passing_test_and_a_time_inside_the_run(score, project):
    path = figure_path(project, "alpha.json")
    original = json.loads(path.read_text())

    def check_with(**changes) -> str:
        path.write_text(json.dumps({**original, **changes}))
        return item(score(project), "infra-6").checks[0].detail

    assert "names commit bbbbbbbbbbbb, not the run's" in check_with(commit="b" * 40)
    assert "which is not in the test report" in check_with(test="tests/test_alpha.py::test_ghost")
    assert "outside the run" in check_with(written_at="2020-01-01T00:00:00+00:00")
    assert check_with().endswith("passed")


def test_a_bench_file_holding_only_a_verdict_or_another_commits_results_scores_nothing(score, project):
    bench = project / "bench" / "speed.json"
    bench.write_text('{"passed": true}')
    check = item(score(project), "infra-6").checks[1]
    assert check.status == "failed" and "bench: Field required" in check.detail
    write_bench(project, commit="c" * 40)
    assert "ran on commit cccccccccccc" in item(score(project), "infra-6").checks[1].detail
    write_bench(project, passed=False)
    assert item(score(project), "infra-6").checks[1].detail.endswith("did not pass")
    write_bench(project, dirty=True)
    assert "dirty: Input should be False" in item(score(project), "infra-6").checks[1].detail
    bench.unlink()
    assert item(score(project), "infra-6").checks[1].status == "missing"


def test_without_a_git_repository_nothing_can_be_bound(score, project):
    import shutil

    shutil.rmtree(project / ".git")
    result = score(project)
    assert "is not a git work tree" in result.evidence.tree_problem
    assert result.count("automated") == 0 and statuses(result)["data-6"] == "manual"


def _figure(points: list[dict]) -> dict:
    usable = [(p["offline_rmse"], p["online_rmse"]) for p in points if p["n_outcomes"] >= 30]
    xs, ys = [x for x, _ in usable], [y for _, y in usable]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    num = sum((x - mx) * (y - my) for x, y in usable)
    r = num / (sum((x - mx) ** 2 for x in xs) * sum((y - my) ** 2 for y in ys)) ** 0.5
    return {
        "metric": "rmse",
        "points": points,
        "correlation": {"method": "pearson", "r": r, "n": len(usable)},
    }


def _point(version: str, offline: float, online: float, n: int = 150) -> dict:
    return {
        "version": version,
        "role": "canary",
        "offline_rmse": offline,
        "online_rmse": online,
        "n_outcomes": n,
    }


def test_the_offline_online_correlation_is_recomputed_from_the_figures_points():
    points = [
        _point("a", 52.0, 54.0),
        _point("b", 60.0, 63.0),
        _point("c", 90.0, 95.0),
        _point("e", 70.0, 71.0),
        _point("d", 40.0, 99.0, n=5),
    ]
    good = _figure(points)
    assert good["correlation"]["n"] == 4
    assert evidence.verify_offline_online(good, "passed") is None, "the 5-outcome point is left out"
    assert "contradicts" in evidence.verify_offline_online(good, "failed")
    inflated = {**good, "correlation": {"r": 0.99, "n": 5}}
    assert "its points give r=" in evidence.verify_offline_online(inflated, "passed")
    thin = {**good, "points": points[:3]}
    assert "needs >= 4 from >= 2 versions" in evidence.verify_offline_online(thin, "passed")


def test_a_correlation_carried_by_one_version_or_repeated_windows_is_not_evidence():
    """The review's figure: three versions whose online RMSE falls as offline rises, and one outlying
    version that makes Pearson's r 0.98. Without it r is negative: `passed` is refused. Two windows of
    one version are one point, not two."""
    outlier = _figure(
        [_point("a", 52.0, 50.0), _point("b", 53.0, 49.0), _point("c", 54.0, 48.0), _point("s", 80.0, 110.0)]
    )
    assert outlier["correlation"]["r"] > 0.9
    problem = evidence.verify_offline_online(outlier, "passed")
    assert problem is not None and "without version s" in problem
    assert evidence.verify_offline_online(outlier, "failed") is None
    windows = _figure(
        [_point("a", 52.0, 54.0), _point("a", 52.0, 55.0), _point("b", 60.0, 63.0), _point("c", 90.0, 95.0)]
    )
    assert "one point per version: a" in evidence.verify_offline_online(windows, "passed")
    assert "needs metric 'rmse'" in evidence.verify_offline_online({}, "passed")

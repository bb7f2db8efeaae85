"""JUnit reports written by a real pytest run with the mlship plugin: the commit and tree state it ran
on, every outcome, and the node id -> (classname, name) address pytest writes."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest
from score_helpers import git, make_project, run_pytest

from mlship.errors import MlshipError
from mlship.score import evidence
from mlship.score.evidence import junit_address, read_junit

SAMPLE = textwrap.dedent(
    """
    import sys

    import pytest

    def test_ok():
        assert 2 + 2 == 4

    def test_broken():
        assert 1 == 2

    @pytest.mark.skipif(sys.platform != "plan9", reason="needs docker")
    def test_skipped():
        pass

    @pytest.mark.parametrize("n", [1, 2, 3])
    def test_param(n):
        assert n != 3

    class TestGroup:
        def test_inside(self):
            assert 3 * 3 == 9

    @pytest.fixture
    def exploding():
        raise RuntimeError("fixture exploded")

    def test_error(exploding):
        pass
    """
)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("junit") / "project")
    (root / "tests" / "test_sample.py").write_text(SAMPLE, encoding="utf-8")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "sample")
    return root


@pytest.fixture(scope="module")
def run(project):
    return read_junit([run_pytest(project, "tests/test_sample.py")])


def test_the_report_carries_the_commit_and_a_clean_tree(run, project):
    assert run.commits == {git(project, "rev-parse", "HEAD")} and run.commit is not None
    assert run.dirty == [] and run.unbound == []
    assert run.started is not None and run.ended is not None and run.ended >= run.started


def test_outcomes_of_a_real_pytest_run(run):
    assert run.counts == {"passed": 4, "failed": 2, "skipped": 1, "error": 1}


def test_node_ids_map_to_the_addresses_pytest_writes(run, project):
    collected = evidence.pytest_collect(project, ["tests/test_sample.py"])
    assert not collected.error
    ids = collected.nodeids["tests/test_sample.py"]
    assert "tests/test_sample.py::TestGroup::test_inside" in ids and len(ids) == 8
    written = {(c.classname, c.name) for c in run.cases}
    assert {junit_address(n) for n in ids} == written
    assert junit_address("tests/test_sample.py::TestGroup::test_inside") == (
        "tests.test_sample.TestGroup",
        "test_inside",
    )
    assert junit_address("tests/test_sample.py::test_param[2]") == ("tests.test_sample", "test_param[2]")


def test_a_run_on_a_dirty_tree_says_so(project, tmp_path):
    (project / "scratch.txt").write_text("uncommitted")
    try:
        dirty = read_junit([run_pytest(project, "tests/test_sample.py::test_ok")])
    finally:
        (project / "scratch.txt").unlink()
    assert dirty.dirty and re.match(r"true: 1 changed paths \(scratch.txt\)", dirty.dirty[0])


def test_without_a_junit_report_the_plugin_writes_nothing_and_pytest_runs_as_usual(project):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_sample.py::test_ok"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_report_and_a_broken_report(tmp_path):
    assert read_junit([tmp_path / "missing.xml"]) is None
    broken = tmp_path / "junit.xml"
    broken.write_text("<testsuites><testsuite>", encoding="utf-8")
    with pytest.raises(MlshipError, match="not a JUnit XML report"):
        read_junit([broken])

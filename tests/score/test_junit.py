"""Reading JUnit reports that a real pytest run wrote: outcomes, parametrised tests, classes, selectors."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from mlship.errors import MlshipError
from mlship.score.evidence import matching, read_junit

SAMPLE = textwrap.dedent(
    """
    import pytest

    def test_ok():
        assert True

    def test_broken():
        assert 1 == 2

    @pytest.mark.skip(reason="needs docker")
    def test_skipped():
        pass

    @pytest.mark.parametrize("n", [1, 2, 3])
    def test_param(n):
        assert n != 3

    class TestGroup:
        def test_inside(self):
            assert True

    @pytest.fixture
    def exploding():
        raise RuntimeError("fixture exploded")

    def test_error(exploding):
        pass
    """
)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    (root / "tests" / "sample").mkdir(parents=True)
    (root / "tests" / "sample" / "test_sample.py").write_text(SAMPLE, encoding="utf-8")
    junit = root / "junit.xml"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--rootdir={root}",
            f"--junitxml={junit}",
            "tests/sample/test_sample.py",
        ],
        cwd=root,
        capture_output=True,
        check=False,
        timeout=120,
    )
    return read_junit([junit])


def outcomes(run, selector: str) -> list[str]:
    return sorted(c.outcome for c in matching(run, selector))


def test_outcomes_of_a_real_pytest_run(run):
    assert run.counts == {"passed": 4, "failed": 2, "skipped": 1, "error": 1}
    assert run.started is not None and run.started.tzinfo is not None


def test_selectors_match_files_tests_parametrisations_and_classes(run):
    file = "tests/sample/test_sample.py"
    assert len(matching(run, file)) == 8
    assert outcomes(run, f"{file}::test_ok") == ["passed"]
    assert outcomes(run, f"{file}::test_param") == ["failed", "passed", "passed"]
    assert outcomes(run, f"{file}::test_param[2]") == ["passed"]
    assert outcomes(run, f"{file}::test_skipped") == ["skipped"]
    assert outcomes(run, f"{file}::test_error") == ["error"]
    assert outcomes(run, f"{file}::test_missing") == []
    assert outcomes(run, "tests/sample/test_other.py") == []
    assert "test_inside" in [c.name for c in matching(run, file)]


def test_no_report_and_a_broken_report(tmp_path):
    assert read_junit([tmp_path / "missing.xml"]) is None
    broken = tmp_path / "junit.xml"
    broken.write_text("<testsuites><testsuite>", encoding="utf-8")
    with pytest.raises(MlshipError, match="not a JUnit XML report"):
        read_junit([broken])

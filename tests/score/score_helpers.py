"""Helpers for the scorer tests: a small git project with a real test suite, run by real pytest with the
mlship plugin, and evidence maps for it. Nothing here writes a JUnit report by hand except where a test
forges one on purpose."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from mlship.score import evidence_map, rubric

REPO = Path(__file__).resolve().parents[2]
GIT_ID = ["-c", "user.email=dev@example.org", "-c", "user.name=dev"]

CONFTEST = '''
from pathlib import Path

import pytest

from mlship.score import artifacts


@pytest.fixture
def figure(request):
    """figure(name, verdict, **payload): a figure next to the JUnit report, as tests/mltest writes them."""
    xml = request.config.getoption("xmlpath")

    def write(name, verdict, proxy_reason=None, **payload):
        return artifacts.write_figure(
            Path(xml).resolve().parent / artifacts.FIGURES_DIR, name, test=request.node.nodeid,
            payload=payload or {"value": 1.0}, verdict=verdict, proxy_reason=proxy_reason,
            root=Path(str(request.config.rootpath)),
        )

    return write
'''

TESTS = {
    "tests/test_alpha.py": """
import pytest

def test_one(figure):
    figure("alpha", "passed", rmse=52.1)

@pytest.mark.parametrize("n", [1, 2])
def test_param(n):
    assert n in (1, 2)

def test_three():
    assert 1 + 2 == 3
""",
    "tests/test_beta.py": """
class TestGroup:
    def test_inside(self):
        assert 5 - 1 == 4

def test_proxy(figure):
    figure("beta", "proxy", proxy_reason="row order stands in for time here")

def test_flagged(figure):
    figure("gamma", "failed", flagged=["age"])
""",
    "tests/test_delta.py": """
def test_alone():
    assert 2 + 2 == 4

def test_other():
    assert 3 * 3 == 9
""",
}

PYPROJECT = """
[tool.pytest.ini_options]
testpaths = ["tests"]
addopts = "-p mlship.score.pytest_plugin -p no:cacheprovider"
"""

PROCEDURE = (
    "# Adding a feature\n\n## Procedure\n\n1. edit features.py\n\n## Results\n\n3 lines, 20 minutes.\n"
)

MAP = {
    "version": 1,
    "items": {
        "data-1": {"how": "the alpha file, whole", "automated": [{"pytest": "tests/test_alpha.py"}]},
        "data-2": {
            "how": "one test and its figure",
            "automated": [{"pytest": "tests/test_beta.py::test_flagged"}, {"figure": "gamma.json"}],
        },
        "data-6": {"how": "documented procedure", "manual": "docs/proc.md"},
        "model-4": {
            "how": "a figure whose verdict is proxy",
            "automated": [{"pytest": "tests/test_beta.py::test_proxy"}, {"figure": "beta.json"}],
        },
        "infra-1": {"how": "a class-based test", "automated": [{"pytest": "tests/test_beta.py::TestGroup"}]},
        "infra-2": {
            "how": "one parametrisation",
            "automated": [{"pytest": "tests/test_alpha.py::test_param[2]"}],
        },
        "infra-5": {"how": "the delta file", "automated": [{"pytest": "tests/test_delta.py"}]},
        "infra-6": {
            "how": "a figure and a bench",
            "automated": [{"figure": "alpha.json"}, {"bench": "speed.json"}],
        },
        "monitor-1": {
            "how": "declared a proxy",
            "proxy": {
                "reason": "a lock file compared with itself",
                "evidence": [{"pytest": "tests/test_delta.py::test_alone"}],
            },
        },
        "monitor-2": {
            "how": "offline only, no live check",
            "automated": [{"pytest": "tests/test_delta.py::test_other"}],
        },
        "monitor-3": {
            "how": "with a live check",
            "automated": [{"pytest": "tests/test_alpha.py::test_three"}, {"live": {"alerts": ["Watch"]}}],
        },
    },
}


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *GIT_ID, "-C", str(root), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def write_map(root: Path, raw: dict) -> Path:
    path = root / "mlship-score.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def make_project(root: Path, raw_map: dict | None = None) -> Path:
    """The sample project, committed (reports/ and bench/ ignored, as .mlship/ is here)."""
    for name, body in {**TESTS, "tests/conftest.py": CONFTEST}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    (root / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    (root / "docs").mkdir(exist_ok=True)
    (root / "docs" / "proc.md").write_text(PROCEDURE, encoding="utf-8")
    (root / ".gitignore").write_text("reports/\nbench/\n__pycache__/\n", encoding="utf-8")
    write_map(root, raw_map if raw_map is not None else MAP)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "sample")
    return root


def run_pytest(root: Path, *args: str) -> Path:
    """Real pytest in ``root`` with the mlship plugin and a JUnit report at reports/junit.xml."""
    junit = root / "reports" / "junit.xml"
    # The sample project needs no third-party pytest plugin; loading them all costs seconds per run.
    env = {
        **{k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"},
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", f"--junitxml={junit}", *args],
        cwd=root,
        capture_output=True,
        check=False,
        timeout=300,
        env=env,
    )
    return junit


def write_bench(root: Path, name: str = "speed", **overrides) -> Path:
    from mlship.score import artifacts

    folder = root / "bench"
    folder.mkdir(exist_ok=True)
    body = {**artifacts.bench_fields(name, root), "passed": True, "p50_ratio": 1.02, **overrides}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


def copy_project(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, symlinks=True)
    return target


def load_map(root: Path) -> evidence_map.EvidenceMap:
    return evidence_map.load(root / "mlship-score.yaml", rubric.load())

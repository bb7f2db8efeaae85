"""The audit's forgery, fed to the scorer with this repository's evidence map: refused, every piece.

An independent audit scored the old scorer with fabricated inputs - one empty <testcase> per selector
(test names that do not exist for whole-file selectors), `{}` for every figure and `{"passed": true}` for
the benchmark - and got 6.5 / 5 / 7 / 7. Here the same inputs, and a stronger forgery that also carries
the commit property the pytest plugin writes, must earn nothing but the documented manual procedure.

The repository's tests, evidence map and procedures are copied into a fresh git repository (committed,
clean), so the scorer's checks run as they do here; `pytest --collect-only` runs on the copy.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from score_helpers import REPO, git

from mlship.score import evidence, evidence_map, rubric, scoring
from mlship.score.evidence import Evidence, LiveState
from mlship.score.evidence_map import BenchEvidence, FigureEvidence, PytestEvidence

RUBRIC = rubric.load()
COPIED = ("tests", "devtools", "bento", "docs", "mlship-score.yaml", "pyproject.toml", "requirements.lock")


@pytest.fixture(scope="module")
def forged_repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("forged") / "repo"
    root.mkdir()
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__", ".cache"))
        else:
            shutil.copy2(source, root / name)
    (root / ".gitignore").write_text(".mlship/\n__pycache__/\n", encoding="utf-8")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "copy")
    return root


@pytest.fixture(scope="module")
def declared(forged_repo) -> evidence_map.EvidenceMap:
    return evidence_map.load(forged_repo / "mlship-score.yaml", RUBRIC)


@pytest.fixture(scope="module")
def collected(forged_repo, declared) -> evidence.Collection:
    return evidence.pytest_collect(forged_repo, declared.pytest_files())


def every(declared: evidence_map.EvidenceMap, kind: type) -> list:
    return [e for item in declared.items.values() for e in item.all_evidence() if isinstance(e, kind)]


def forge(root: Path, declared: evidence_map.EvidenceMap, *, with_commit: bool) -> Path:
    """The audit's inputs: an empty testcase per selector, `{}` figures, a bench holding only a verdict."""
    state = root / ".mlship"
    (state / "reports" / "mltest").mkdir(parents=True, exist_ok=True)
    (state / "bench").mkdir(parents=True, exist_ok=True)
    cases = []
    for selector in every(declared, PytestEvidence):
        module = selector.file.removesuffix(".py").replace("/", ".")
        cases.append(f'<testcase classname="{module}" name="{selector.name or "test_whole_file"}" />')
    properties = ""
    stamp = ""
    if with_commit:
        head = git(root, "rev-parse", "HEAD")
        properties = (
            f'<properties><property name="mlship.commit" value="{head}" />'
            '<property name="mlship.dirty" value="false" /></properties>'
        )
        stamp = f' timestamp="{datetime.now(UTC).isoformat()}" time="60.0"'
    junit = state / "reports" / "junit.xml"
    junit.write_text(
        f'<testsuites><testsuite name="pytest" tests="{len(cases)}"{stamp}>{properties}'
        + "".join(cases)
        + "</testsuite></testsuites>",
        encoding="utf-8",
    )
    for figure in every(declared, FigureEvidence):
        (state / "reports" / "mltest" / figure.figure).write_text("{}", encoding="utf-8")
    for bench in every(declared, BenchEvidence):
        (state / "bench" / bench.bench).write_text(json.dumps({"passed": True}), encoding="utf-8")
    return junit


@pytest.mark.parametrize("with_commit", [False, True], ids=["as-the-audit-did", "with-the-commit-property"])
def test_the_audits_forged_inputs_are_refused(forged_repo, declared, collected, with_commit):
    junit = forge(forged_repo, declared, with_commit=with_commit)
    selectors = every(declared, PytestEvidence)
    assert len(selectors) >= 40, "one forged testcase per selector of the map"
    assert not git(forged_repo, "status", "--porcelain"), "the forgery sits in ignored folders: a clean tree"
    found = Evidence(
        root=forged_repo,
        evidence_map=declared,
        junit_paths=[junit],
        bench_dir=forged_repo / ".mlship" / "bench",
        live=LiveState(url=None, reachable=False, detail="no running system"),
        collector=lambda _root, _files: collected,
    )
    result = scoring.score(RUBRIC, declared, found)

    checks = [c for i in result.items for c in [*i.checks, *i.proxy_checks]]
    assert not [c for c in checks if c.counts], "no forged piece of evidence is believed"
    figures = [c for c in checks if c.kind == "figure"]
    benches = [c for c in checks if c.kind == "bench"]
    assert figures and all(c.status in ("failed", "not bound") for c in figures)
    assert benches and all(c.status == "failed" and "bench: Field required" in c.detail for c in benches)
    if with_commit:
        assert all("test: Field required" in c.detail for c in figures), "{} is no figure"
        whole_files = [
            c for c in checks if c.kind == "pytest" and "::" not in c.target and c.status != "missing"
        ]
        assert whole_files and all(
            "does not collect (first: test_whole_file)" in c.detail for c in whole_files
        ), "a test name the file does not have is no run of it"
    else:
        assert "names no commit" in found.run_problem
    assert result.count("automated") == 0 and result.count("proxy") == 0
    assert {s.section.id: s.score for s in result.sections} == {
        "data": 0.5,  # data-6: its documented procedure, the one piece that is no forgery
        "model": 0.0,
        "infra": 0.0,
        "monitoring": 0.0,
    }
    assert result.final == 0.0

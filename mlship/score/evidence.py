"""Evidence for the rubric: the latest test run (JUnit XML), figure and benchmark files, the live Prometheus.

Nothing here assumes a check passed: a test that is not in the report did not run, a skipped test did not
run, a file that is not there is missing, and Prometheus that does not answer was not checked.
"""

from __future__ import annotations

import json
import re

# Parses only the local JUnit report our own test run wrote.
import xml.etree.ElementTree as ET  # nosec B405
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlship.errors import MlshipError
from mlship.score.rubric import BenchCheck, Check, FigureCheck, LiveCheck, PytestCheck

FIGURES_DIR = "mltest"  # figures written by tests/mltest, next to the JUnit report of the run

PASSED = "passed"
FAILED = "failed"
SKIPPED = "skipped"
NOT_RUN = "not run"
MISSING = "missing"
NOT_CHECKED = "not checked"


@dataclass(frozen=True)
class CaseResult:
    classname: str
    name: str
    outcome: str  # passed | failed | error | skipped
    message: str = ""


@dataclass
class TestRun:
    paths: list[Path]
    cases: list[CaseResult]
    started: datetime | None  # earliest suite start, when the report says

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for case in self.cases:
            out[case.outcome] = out.get(case.outcome, 0) + 1
        return out


def _outcome(case: ET.Element) -> tuple[str, str]:
    for tag, outcome in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
        child = case.find(tag)
        if child is not None:
            return outcome, (child.get("message") or "").strip()[:300]
    return "passed", ""


def _started(suite: ET.Element) -> datetime | None:
    stamp = suite.get("timestamp")
    if not stamp:
        return None
    try:
        value = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return value if value.tzinfo else value.astimezone()


def read_junit(paths: list[Path]) -> TestRun | None:
    """All test cases of the JUnit reports that exist; None when none does."""
    existing = [p for p in paths if p.exists()]
    if not existing:
        return None
    cases: list[CaseResult] = []
    starts: list[datetime] = []
    for path in existing:
        try:
            root = ET.parse(path).getroot()  # noqa: S314  # nosec B314
        except ET.ParseError as exc:
            raise MlshipError(f"{path}: not a JUnit XML report ({exc}); re-run `make test`") from exc
        suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
        starts += [s for s in (_started(suite) for suite in suites) if s is not None]
        for case in root.iter("testcase"):
            outcome, message = _outcome(case)
            cases.append(CaseResult(case.get("classname", ""), case.get("name", ""), outcome, message))
    return TestRun(paths=existing, cases=cases, started=min(starts) if starts else None)


def selector_parts(selector: str) -> tuple[str, str, str | None]:
    """``tests/a/test_b.py::test_c[x]`` -> (file, JUnit classname ``tests.a.test_b``, test name or None)."""
    file, _, name = selector.partition("::")
    return file, file.removesuffix(".py").replace("/", "."), name or None


def matching(run: TestRun, selector: str) -> list[CaseResult]:
    _, module, name = selector_parts(selector)
    out = []
    for case in run.cases:
        if name is None:
            if case.classname == module or case.classname.startswith(module + "."):
                out.append(case)
        elif case.classname == module and (
            case.name == name or ("[" not in name and case.name.startswith(name + "["))
        ):
            out.append(case)
    return out


@dataclass(frozen=True)
class CheckResult:
    kind: str
    target: str
    status: str
    detail: str

    @property
    def passed(self) -> bool:
        return self.status == PASSED


@dataclass(frozen=True)
class ManualResult:
    path: str
    status: str  # documented | missing | incomplete
    detail: str

    @property
    def documented(self) -> bool:
        return self.status == "documented"


@dataclass
class LiveState:
    """What the running Prometheus has: alerting rules (name -> health) and which series exist."""

    url: str | None
    reachable: bool
    detail: str
    rules: dict[str, tuple[str, str]] = field(default_factory=dict)  # alert -> (health, last error)
    _series: dict[str, bool] = field(default_factory=dict)
    _client: Any = None

    @classmethod
    def probe(cls, url: str | None) -> LiveState:
        from mlship.promclient import Prometheus, PrometheusUnavailable

        if url is None:
            return cls(url=None, reachable=False, detail="live checks disabled")
        client = Prometheus(url, timeout=3.0)
        if not client.ready():
            client.close()
            return cls(url=url, reachable=False, detail=f"Prometheus at {url} does not answer")
        try:
            groups = client._get("/api/v1/rules", {"type": "alert"})["groups"]
        except (PrometheusUnavailable, MlshipError, KeyError) as exc:
            client.close()
            return cls(url=url, reachable=False, detail=f"Prometheus at {url}: rules not readable ({exc})")
        rules = {
            r["name"]: (str(r.get("health", "unknown")), str(r.get("lastError", "")))
            for g in groups
            for r in g.get("rules", [])
        }
        return cls(url=url, reachable=True, detail=f"Prometheus at {url}", rules=rules, _client=client)

    def has_series(self, name: str) -> bool:
        if name not in self._series:
            self._series[name] = bool(self._client.query(f"count({name})"))
        return self._series[name]

    def check(self, live: LiveCheck) -> CheckResult:
        """Every named alert loaded with health ok and every named series present; else failed."""
        target = ", ".join([*live.alerts, *live.series])
        if not self.reachable:
            return CheckResult("live", target, NOT_CHECKED, self.detail)
        problems = []
        for alert in live.alerts:
            health, error = self.rules.get(alert, ("absent", ""))
            if health != "ok":
                problems.append(f"alert {alert} {health}" + (f": {error}" if error else ""))
        problems += [f"no series {s}" for s in live.series if not self.has_series(s)]
        if problems:
            return CheckResult("live", target, FAILED, "; ".join(problems))
        return CheckResult("live", target, PASSED, f"loaded and healthy in {self.url}")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


class Evidence:
    """Evaluates checks against one test run, the files it wrote, the benchmarks and Prometheus."""

    def __init__(
        self,
        *,
        repo: Path,
        junit_paths: list[Path],
        bench_dir: Path,
        live: LiveState,
    ) -> None:
        self.repo = repo
        self.junit_paths = junit_paths
        self.run = read_junit(junit_paths)
        self.figures_dir = (self.run.paths[0] if self.run else junit_paths[0]).parent / FIGURES_DIR
        self.bench_dir = bench_dir
        self.live = live

    # --- automated checks -------------------------------------------------------------------------
    def check(self, check: Check) -> CheckResult:
        if isinstance(check, PytestCheck):
            return self._pytest(check.pytest)
        if isinstance(check, FigureCheck):
            return self._figure(check.figure)
        if isinstance(check, BenchCheck):
            return self._bench(check.bench)
        raise TypeError(f"unknown check {check!r}")

    def _pytest(self, selector: str) -> CheckResult:
        file, _, name = selector_parts(selector)
        source = self.repo / file
        if not source.is_file():
            return CheckResult("pytest", selector, MISSING, f"no test file {file} in {self.repo}")
        if name is not None:
            function = name.split("[", 1)[0]
            if not re.search(rf"^\s*(async\s+)?def {re.escape(function)}\(", source.read_text("utf-8"), re.M):
                return CheckResult("pytest", selector, MISSING, f"{file} has no test {function}")
        if self.run is None:
            where = ", ".join(str(p) for p in self.junit_paths)
            return CheckResult("pytest", selector, NOT_RUN, f"no test report at {where} (run `make test`)")
        cases = matching(self.run, selector)
        if not cases:
            return CheckResult("pytest", selector, NOT_RUN, "not in the latest test report")
        bad = [c for c in cases if c.outcome in ("failed", "error")]
        if bad:
            first = bad[0]
            return CheckResult(
                "pytest",
                selector,
                FAILED,
                f"{len(bad)} of {len(cases)} failed: {first.name}: {first.message}",
            )
        skipped = [c for c in cases if c.outcome == "skipped"]
        if skipped:
            return CheckResult(
                "pytest", selector, SKIPPED, f"{len(skipped)} of {len(cases)} skipped: {skipped[0].message}"
            )
        return CheckResult("pytest", selector, PASSED, f"{len(cases)} passed")

    def _figure(self, name: str) -> CheckResult:
        path = self.figures_dir / name
        if not path.is_file():
            return CheckResult("figure", name, MISSING, f"{path} was not written by the latest run")
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            return CheckResult("figure", name, FAILED, f"{path} is not JSON")
        written = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        started = self.run.started if self.run else None
        if started is not None and written < started.astimezone(UTC).replace(microsecond=0):
            return CheckResult("figure", name, FAILED, f"{path} is older than the latest run")
        return CheckResult("figure", name, PASSED, f"{path} (by {body.get('test', 'unknown test')})")

    def _bench(self, name: str) -> CheckResult:
        path = self.bench_dir / name
        if not path.is_file():
            return CheckResult("bench", name, MISSING, f"{path} does not exist (run `make bench`)")
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            return CheckResult("bench", name, FAILED, f"{path} is not JSON")
        if "passed" not in body:
            return CheckResult("bench", name, FAILED, f"{path} has no verdict (`passed`)")
        at = body.get("at", "unknown time")
        if body["passed"] is not True:
            return CheckResult("bench", name, FAILED, f"{path} ({at}) did not pass")
        return CheckResult("bench", name, PASSED, f"{path} ({at}) passed")

    # --- live and manual ---------------------------------------------------------------------------
    def live_check(self, live: LiveCheck) -> CheckResult:
        return self.live.check(live)

    def manual(self, path: str) -> ManualResult:
        doc = self.repo / path
        if not doc.is_file():
            return ManualResult(path, MISSING, f"no document {path}")
        text = doc.read_text(encoding="utf-8")
        lacking = [h for h in ("## Procedure", "## Results") if not re.search(rf"^{h}\b", text, re.M)]
        if lacking:
            return ManualResult(path, "incomplete", f"{path} has no {' / '.join(lacking)} section")
        return ManualResult(path, "documented", f"{path}: procedure and results documented")

"""Evidence for the rubric: the test run (JUnit XML), the figures it wrote, benchmark results, live checks.

Nothing here assumes a check passed, and nothing is believed on its word:

* the test run counts only if its report names the commit the tree is at now and says the tree was clean
  (``mlship.score.pytest_plugin``), and the tree is still clean;
* a selector counts only if every test pytest collects for it (``pytest --collect-only``, run here on
  the same tree) ran and passed; a report holding tests the file does not collect is not a run of it;
* a figure counts only if its envelope is whole (``artifacts``), it names the run's commit, was written
  during the run by a test that passed, and its verdict is ``passed`` (``proxy`` counts as a proxy);
* a benchmark counts only if it ran on this commit from a clean tree and passed;
* a live check counts only if Prometheus answered and every alert is loaded, healthy and evaluated, and
  every series has data. Prometheus that does not answer was not checked: that is not evidence.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys

# Parses only local JUnit reports written by pytest.
import xml.etree.ElementTree as ET  # nosec B405
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mlship.errors import MlshipError
from mlship.score import artifacts, provenance
from mlship.score.evidence_map import (
    BenchEvidence,
    EvidenceMap,
    FigureEvidence,
    LiveEvidence,
    LiveSpec,
    PytestEvidence,
)
from mlship.score.evidence_map import (
    Evidence as EvidenceSpec,
)

PASSED = "passed"
FAILED = "failed"
SKIPPED = "skipped"
NOT_RUN = "not run"
MISSING = "missing"
NOT_CHECKED = "not checked"
UNBOUND = "not bound"  # the run is not of this commit / tree
PROXY = "proxy"

# A figure's written_at may precede the suite's timestamp by clock rounding, or follow its end by the
# time pytest takes to write the report.
CLOCK_SLACK = timedelta(seconds=5)
# Rule groups must have been evaluated this recently for a live check to call them running.
MAX_EVALUATION_AGE = timedelta(minutes=5)
# One point per version, and enough of them that leaving any one out still leaves three: a correlation
# carried by one outlying version is not evidence.
MIN_CORRELATION_POINTS = 4
MIN_OUTCOMES_PER_POINT = 30
MIN_CORRELATION = 0.5


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
    started: datetime | None  # earliest suite start
    ended: datetime | None  # latest suite start + its duration
    commits: set[str] = field(default_factory=set)  # ``mlship.commit`` of each report
    dirty: list[str] = field(default_factory=list)  # ``mlship.dirty`` values other than "false"
    unbound: list[Path] = field(default_factory=list)  # reports without a commit property

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for case in self.cases:
            out[case.outcome] = out.get(case.outcome, 0) + 1
        return out

    @property
    def commit(self) -> str | None:
        return next(iter(self.commits)) if len(self.commits) == 1 and not self.unbound else None

    def outcome_of(self, nodeid: str) -> CaseResult | None:
        classname, name = junit_address(nodeid)
        for case in self.cases:
            if case.classname == classname and case.name == name:
                return case
        return None


def junit_address(nodeid: str) -> tuple[str, str]:
    """pytest node id -> (JUnit classname, name), as pytest's junitxml ``mangle_test_address`` does."""
    path, bracket, params = nodeid.partition("[")
    names = path.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    names[-1] += bracket + params
    return ".".join(names[:-1]), names[-1]


def _outcome(case: ET.Element) -> tuple[str, str]:
    for tag, outcome in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
        child = case.find(tag)
        if child is not None:
            return outcome, (child.get("message") or "").strip()[:300]
    return "passed", ""


def _when(suite: ET.Element) -> tuple[datetime | None, datetime | None]:
    stamp = suite.get("timestamp")
    if not stamp:
        return None, None
    try:
        start = datetime.fromisoformat(stamp)
    except ValueError:
        return None, None
    start = start if start.tzinfo else start.astimezone()
    try:
        duration = float(suite.get("time") or "nan")
    except ValueError:
        duration = math.nan
    end = start + timedelta(seconds=duration) if math.isfinite(duration) else None
    return start, end


def read_junit(paths: list[Path]) -> TestRun | None:
    """All test cases and provenance properties of the JUnit reports that exist; None when none does."""
    existing = [p for p in paths if p.exists()]
    if not existing:
        return None
    run = TestRun(paths=existing, cases=[], started=None, ended=None)
    starts: list[datetime] = []
    ends: list[datetime] = []
    for path in existing:
        try:
            root = ET.parse(path).getroot()  # noqa: S314  # nosec B314
        except ET.ParseError as exc:
            raise MlshipError(f"{path}: not a JUnit XML report ({exc}); re-run `make test`") from exc
        suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
        props: dict[str, str] = {}
        for suite in suites:
            start, end = _when(suite)
            starts += [start] if start else []
            ends += [end] if end else []
            for prop in suite.iter("property"):
                props[prop.get("name", "")] = prop.get("value", "")
        commit = props.get(provenance.PROP_COMMIT, "")
        if re.fullmatch(r"[0-9a-f]{40}", commit):
            run.commits.add(commit)
        else:
            run.unbound.append(path)
        dirty = props.get(provenance.PROP_DIRTY, "")
        if dirty != "false":
            run.dirty.append(dirty or "unknown (no mlship.dirty property)")
        for case in root.iter("testcase"):
            outcome, message = _outcome(case)
            run.cases.append(CaseResult(case.get("classname", ""), case.get("name", ""), outcome, message))
    run.started = min(starts) if starts else None
    run.ended = max(ends) if ends else None
    return run


# --- collection: which tests a selector stands for -----------------------------------------------------
@dataclass(frozen=True)
class Collection:
    nodeids: dict[str, list[str]]  # file -> node ids pytest collects in it
    error: str = ""


Collector = Callable[[Path, list[str]], Collection]


def pytest_collect(root: Path, files: list[str]) -> Collection:
    """``pytest --collect-only -q`` of ``files`` in ``root`` with this interpreter: node ids per file."""
    present = [f for f in files if (root / f).is_file()]
    if not present:
        return Collection({})
    argv = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *present]
    try:
        proc = subprocess.run(argv, cwd=root, capture_output=True, text=True, check=False, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Collection({}, f"pytest --collect-only did not run ({exc})")
    nodeids: dict[str, list[str]] = {f: [] for f in present}
    for line in proc.stdout.splitlines():
        file = line.partition("::")[0]
        if "::" in line and file in nodeids:
            nodeids[file].append(line.strip())
    if proc.returncode != 0:
        tail = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()][-3:]
        return Collection(
            nodeids, f"pytest --collect-only failed (exit {proc.returncode}): {' | '.join(tail)}"
        )
    return Collection(nodeids)


def selects(selector: PytestEvidence, nodeid: str) -> bool:
    """Whether ``nodeid`` is one of the tests ``selector`` stands for."""
    file, _, rest = nodeid.partition("::")
    if file != selector.file:
        return False
    name = selector.name
    if name is None:
        return True
    parts = rest.split("::")  # test[id], or Class::test[id]
    if parts[0] == name or parts[-1] == name:  # a class, a test, or one parametrisation
        return True
    return "[" not in name and parts[-1].split("[", 1)[0] == name


# --- results -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckResult:
    kind: str
    target: str
    status: str
    detail: str
    proxy_reason: str = ""

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    @property
    def counts(self) -> bool:
        """Passed, or passed as a proxy (the figure's own verdict)."""
        return self.status in (PASSED, PROXY)


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
    """What the running Prometheus has: alerting rules (name -> health, error, last evaluation), series."""

    url: str | None
    reachable: bool
    detail: str
    rules: dict[str, tuple[str, str, datetime | None]] = field(default_factory=dict)
    _series: dict[str, bool] = field(default_factory=dict)
    _client: Any = None
    now: Callable[[], datetime] = lambda: datetime.now(UTC)

    @classmethod
    def probe(cls, url: str | None) -> LiveState:
        from mlship.promclient import Prometheus, PrometheusUnavailable

        if url is None:
            return cls(url=None, reachable=False, detail="live checks disabled (--no-live)")
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
            r["name"]: (
                str(r.get("health", "unknown")),
                str(r.get("lastError", "")),
                _stamp(r.get("lastEvaluation")),
            )
            for g in groups
            for r in g.get("rules", [])
        }
        return cls(url=url, reachable=True, detail=f"Prometheus at {url}", rules=rules, _client=client)

    def has_series(self, name: str) -> bool:
        if name not in self._series:
            self._series[name] = bool(self._client.query(f"count({name})"))
        return self._series[name]

    def check(self, live: LiveSpec) -> CheckResult:
        """Every alert loaded, healthy and evaluated recently, and every series present; else failed."""
        target = ", ".join([*live.alerts, *live.series])
        if not self.reachable:
            return CheckResult("live", target, NOT_CHECKED, f"{self.detail}: not evidenced")
        problems = []
        now = self.now()
        for alert in live.alerts:
            health, error, evaluated = self.rules.get(alert, ("absent", "", None))
            if health != "ok":
                problems.append(f"alert {alert} {health}" + (f": {error}" if error else ""))
            elif evaluated is None or now - evaluated > MAX_EVALUATION_AGE:
                problems.append(
                    f"alert {alert} not evaluated in the last {MAX_EVALUATION_AGE.seconds // 60} min"
                )
        problems += [f"no series {s}" for s in live.series if not self.has_series(s)]
        if problems:
            return CheckResult("live", target, FAILED, "; ".join(problems))
        return CheckResult("live", target, PASSED, f"loaded, healthy and evaluated in {self.url}")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _stamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or value.startswith("0001-"):
        return None
    try:
        # Prometheus writes nanoseconds; fromisoformat takes at most microseconds.
        return datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", value.replace("Z", "+00:00")))
    except ValueError:
        return None


class Evidence:
    """Evaluates a project's evidence: one test run, the files it wrote, benchmarks and Prometheus."""

    def __init__(
        self,
        *,
        root: Path,
        evidence_map: EvidenceMap,
        junit_paths: list[Path],
        bench_dir: Path,
        live: LiveState,
        collector: Collector = pytest_collect,
        tree: provenance.TreeState | None = None,
    ) -> None:
        self.root = root
        self.map = evidence_map
        self.junit_paths = junit_paths
        self.run = read_junit(junit_paths)
        self.figures_dir = (self.run.paths[0] if self.run else junit_paths[0]).parent / artifacts.FIGURES_DIR
        self.bench_dir = bench_dir
        self.live = live
        self.tree = tree or provenance.tree_state(root)
        self._collector = collector
        self._collection: Collection | None = None

    # --- binding to the commit ----------------------------------------------------------------------
    @property
    def tree_problem(self) -> str | None:
        """Why nothing produced from this tree can be scored now, if anything."""
        if self.tree.commit is None:
            return f"{self.tree.error}: evidence cannot be bound to a commit"
        if self.tree.dirty:
            return (
                f"the working tree has uncommitted changes ({self.tree.describe_dirty()[6:]}): "
                "commit or stash them, then re-run the tests"
            )
        return None

    @property
    def run_problem(self) -> str | None:
        """Why the test run (and the figures it wrote) cannot be scored, if anything."""
        if self.tree_problem:
            return self.tree_problem
        if self.run is None:
            where = ", ".join(str(p) for p in self.junit_paths)
            return f"no test report at {where} (run `make test`)"
        if self.run.unbound:
            return (
                f"{self.run.unbound[0]} names no commit: run pytest with `-p mlship.score.pytest_plugin` "
                "and --junitxml (docs/score.md)"
            )
        if len(self.run.commits) > 1:
            commits = ", ".join(c[:12] for c in sorted(self.run.commits))
            return f"the test reports ran on different commits ({commits})"
        if self.run.commit != self.tree.commit:
            return (
                f"the test report ran on commit {str(self.run.commit)[:12]}, "
                f"the tree is at {str(self.tree.commit)[:12]}: "
                "re-run the tests on this commit"
            )
        if self.run.dirty:
            return (
                f"the test report ran on a dirty tree (mlship.dirty {self.run.dirty[0]}): "
                "commit, then re-run the tests"
            )
        return None

    @property
    def collection(self) -> Collection:
        if self._collection is None:
            self._collection = self._collector(self.root, self.map.pytest_files())
        return self._collection

    # --- checks -------------------------------------------------------------------------------------
    def check(self, item_id: str, spec: EvidenceSpec) -> CheckResult:
        if isinstance(spec, PytestEvidence):
            return self._pytest(item_id, spec)
        if isinstance(spec, FigureEvidence):
            return self._figure(spec)
        if isinstance(spec, BenchEvidence):
            return self._bench(spec.bench)
        if isinstance(spec, LiveEvidence):
            return self.live.check(spec.live)
        raise TypeError(f"unknown evidence {spec!r}")

    def _pytest(self, item_id: str, spec: PytestEvidence) -> CheckResult:
        selector = spec.pytest
        if not (self.root / spec.file).is_file():
            return CheckResult("pytest", selector, MISSING, f"no test file {spec.file} in {self.root}")
        if self.run_problem or self.run is None:
            return CheckResult("pytest", selector, UNBOUND, str(self.run_problem))
        collection = self.collection
        collected = collection.nodeids.get(spec.file, [])
        if collection.error and not collected:
            return CheckResult("pytest", selector, FAILED, collection.error)
        expected = [n for n in collected if selects(spec, n)]
        if not expected:
            what = f"no test {spec.name}" if spec.name else "no tests"
            return CheckResult("pytest", selector, MISSING, f"pytest collects {what} in {spec.file}")
        module = re.sub(r"\.py$", "", spec.file.replace("/", "."))
        known = {junit_address(n) for n in collected}
        in_module = [
            c for c in self.run.cases if c.classname == module or c.classname.startswith(module + ".")
        ]
        unknown = [c for c in in_module if (c.classname, c.name) not in known]
        if unknown:
            return CheckResult(
                "pytest",
                selector,
                FAILED,
                f"the report holds {len(unknown)} test(s) {spec.file} does not collect "
                f"(first: {unknown[0].name}): "
                "not a run of this file",
            )
        # A full run: every test the file collects is in the report (a partial run, -k or a node id, is
        # not evidence for any selector of the file); the selected ones - all of them for a whole-file
        # selector - passed.
        outcomes = {n: self.run.outcome_of(n) for n in collected}
        not_run = [n for n, c in outcomes.items() if c is None]
        required = collected if spec.name is None else expected
        ran = [(n, c) for n in required if (c := outcomes[n]) is not None]
        bad = [(n, c) for n, c in ran if c.outcome in ("failed", "error")]
        skipped = [(n, c) for n, c in ran if c.outcome == "skipped"]
        if not_run:
            return CheckResult(
                "pytest",
                selector,
                NOT_RUN,
                f"{len(not_run)} of {len(collected)} tests collected in {spec.file} did not run "
                f"(first: {not_run[0].split('::', 1)[1]}): not a full run",
            )
        if bad:
            n, c = bad[0]
            return CheckResult(
                "pytest",
                selector,
                FAILED,
                f"{len(bad)} of {len(required)} failed: {n.split('::', 1)[1]}: {c.message}",
            )
        if skipped:
            n, c = skipped[0]
            return CheckResult(
                "pytest", selector, SKIPPED, f"{len(skipped)} of {len(required)} skipped: {c.message}"
            )
        if spec.name is None:
            claimed = self.map.claimed_elsewhere(item_id, spec.file)
            own = [n for n in collected if not any(selects(PytestEvidence(pytest=c), n) for c in claimed)]
            if not own:
                return CheckResult(
                    "pytest", selector, FAILED, f"every test of {spec.file} is named as other items' evidence"
                )
            return CheckResult(
                "pytest", selector, PASSED, f"all {len(collected)} collected passed ({len(own)} count here)"
            )
        return CheckResult("pytest", selector, PASSED, f"{len(expected)} collected, {len(expected)} passed")

    def _figure(self, spec: FigureEvidence) -> CheckResult:
        name = spec.figure
        path = self.figures_dir / name
        if not path.is_file():
            return CheckResult("figure", name, MISSING, f"{path} was not written by the latest run")
        if self.run_problem or self.run is None:
            return CheckResult("figure", name, UNBOUND, str(self.run_problem))
        try:
            body = artifacts.read_json_object(path)
            figure = artifacts.FigureEnvelope.model_validate(body)
        except ValueError as exc:
            detail = artifacts.first_error(exc) if isinstance(exc, ValidationError) else str(exc)
            return CheckResult("figure", name, FAILED, f"{path} is malformed: {detail}")
        if figure.commit != self.run.commit:
            return CheckResult(
                "figure", name, FAILED, f"{name} names commit {figure.commit[:12]}, not the run's"
            )
        case = self.run.outcome_of(figure.test)
        if case is None or case.outcome != "passed":
            state = "is not in the test report" if case is None else f"did not pass ({case.outcome})"
            return CheckResult("figure", name, FAILED, f"{name} was written by {figure.test}, which {state}")
        if self.run.started is not None and self.run.ended is not None:
            written = figure.written_at.astimezone(UTC)
            start = self.run.started.astimezone(UTC).replace(microsecond=0) - CLOCK_SLACK
            end = self.run.ended.astimezone(UTC) + CLOCK_SLACK
            if not start <= written <= end:
                return CheckResult(
                    "figure",
                    name,
                    FAILED,
                    f"{name} was written at {written:%Y-%m-%d %H:%M:%S}, outside the run",
                )
        if spec.verify == "offline_online_correlation":
            problem = verify_offline_online(figure.payload, figure.verdict)
            if problem:
                return CheckResult("figure", name, FAILED, f"{name}: {problem}")
        by = f"by {figure.test.split('::', 1)[1]}"
        if figure.verdict == "failed":
            return CheckResult(
                "figure", name, FAILED, f"{name} ({by}): the test's verdict is failed{_summary(figure)}"
            )
        if figure.verdict == "proxy":
            return CheckResult(
                "figure", name, PROXY, f"{name} ({by}): proxy", proxy_reason=str(figure.proxy_reason)
            )
        return CheckResult("figure", name, PASSED, f"{name} ({by}): passed")

    def _bench(self, name: str) -> CheckResult:
        path = self.bench_dir / name
        if not path.is_file():
            return CheckResult("bench", name, MISSING, f"{path} does not exist (run `make bench`)")
        if self.tree_problem:
            return CheckResult("bench", name, UNBOUND, self.tree_problem)
        try:
            bench = artifacts.BenchEnvelope.model_validate(artifacts.read_json_object(path))
        except ValueError as exc:
            detail = artifacts.first_error(exc) if isinstance(exc, ValidationError) else str(exc)
            return CheckResult("bench", name, FAILED, f"{path} is malformed: {detail}")
        if bench.bench != name.removesuffix(".json"):
            return CheckResult("bench", name, FAILED, f"{path} holds the results of {bench.bench!r}")
        if bench.commit != self.tree.commit:
            return CheckResult(
                "bench",
                name,
                FAILED,
                f"{name} ran on commit {bench.commit[:12]}, the tree is at {str(self.tree.commit)[:12]}: "
                "run `make bench`",
            )
        if bench.at.astimezone(UTC) > datetime.now(UTC) + CLOCK_SLACK:
            return CheckResult(
                "bench", name, FAILED, f"{name} is dated in the future ({bench.at.isoformat()})"
            )
        at = bench.at.strftime("%Y-%m-%d %H:%M")
        if not bench.passed:
            return CheckResult("bench", name, FAILED, f"{name} ({at}) did not pass")
        return CheckResult("bench", name, PASSED, f"{name} ({at}, this commit) passed")

    # --- manual ------------------------------------------------------------------------------------
    def manual(self, path: str) -> ManualResult:
        doc = self.root / path
        if not doc.is_file():
            return ManualResult(path, MISSING, f"no document {path}")
        text = doc.read_text(encoding="utf-8")
        lacking = [h for h in ("## Procedure", "## Results") if not re.search(rf"^{h}\b", text, re.M)]
        if lacking:
            return ManualResult(path, "incomplete", f"{path} has no {' / '.join(lacking)} section")
        return ManualResult(path, "documented", f"{path}: procedure and results documented")


def _summary(figure: artifacts.FigureEnvelope) -> str:
    flagged = figure.payload.get("flagged")
    if isinstance(flagged, list) and flagged:
        return f" (flagged: {', '.join(map(str, flagged))})"
    return ""


def verify_offline_online(payload: dict[str, Any], verdict: str) -> str | None:
    """Model 2's figure (``online_offline.json``, schema in docs/score.md): recompute the correlation.

    Points with at least ``MIN_OUTCOMES_PER_POINT`` outcomes count; at least ``MIN_CORRELATION_POINTS``
    of them, from at least two versions, one point per version. The Pearson correlation of offline and
    online RMSE over them must equal the figure's ``correlation.r`` and ``n``, and the verdict must be
    ``passed`` exactly when r >= ``MIN_CORRELATION`` over all points and without each version in turn.
    None when it holds, else what does not.
    """
    points = payload.get("points")
    corr = payload.get("correlation")
    if payload.get("metric") != "rmse" or not isinstance(points, list) or not isinstance(corr, dict):
        return "needs metric 'rmse', points [...] and correlation {r, n}"
    usable = []
    for index, p in enumerate(points):
        try:
            offline, online, n = float(p["offline_rmse"]), float(p["online_rmse"]), int(p["n_outcomes"])
            version = str(p["version"])
        except (KeyError, TypeError, ValueError):
            return f"points.{index} needs version, offline_rmse, online_rmse and n_outcomes"
        if not (math.isfinite(offline) and math.isfinite(online)):
            return f"points.{index} is not finite"
        if n >= MIN_OUTCOMES_PER_POINT:
            usable.append((version, offline, online))
    if len(usable) < MIN_CORRELATION_POINTS or len({v for v, _, _ in usable}) < 2:
        return (
            f"{len(usable)} points with >= {MIN_OUTCOMES_PER_POINT} outcomes from "
            f"{len({v for v, _, _ in usable})} versions; needs >= {MIN_CORRELATION_POINTS} from >= 2 versions"
        )
    versions = [v for v, _, _ in usable]
    repeated = sorted({v for v in versions if versions.count(v) > 1})
    if repeated:
        return f"one point per version: {', '.join(repeated)} has several (windows of one version share x)"
    r = _pearson([(x, y) for _, x, y in usable])
    if r is None:
        return "offline or online RMSE does not vary across the points: no correlation to measure"
    try:
        stated_r, stated_n = float(corr["r"]), int(corr["n"])
    except (KeyError, TypeError, ValueError):
        return "correlation needs r and n"
    if stated_n != len(usable) or abs(stated_r - r) > 1e-6:
        return f"states r={stated_r:.4f} over {stated_n} points; its points give r={r:.4f} over {len(usable)}"
    # Leave one version out: the correlation must survive without each of them.
    left_out = {v: _pearson([(x, y) for w, x, y in usable if w != v]) for v in versions}
    ranked = {v: -2.0 if r_v is None else r_v for v, r_v in left_out.items()}
    # The version whose absence weakens r most (an undefined r, a constant remainder, ranks lowest).
    weakest = min(ranked, key=ranked.__getitem__)
    r_weakest = left_out[weakest]
    holds = r >= MIN_CORRELATION and r_weakest is not None and r_weakest >= MIN_CORRELATION
    if (verdict == "passed") != holds:
        loo = "undefined" if r_weakest is None else f"{r_weakest:.3f}"
        return (
            f"verdict {verdict} contradicts r={r:.3f}, r={loo} without version {weakest} "
            f"(passes when both are >= {MIN_CORRELATION})"
        )
    return None


def _pearson(points: list[tuple[float, float]]) -> float | None:
    """Pearson's r of (x, y) points; None when either does not vary."""
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)

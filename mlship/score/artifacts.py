"""The files evidence is read from besides the JUnit report: figures written by tests, benchmark results.

Both are JSON objects with an envelope the scorer checks before it believes a word of them; an empty or
malformed file, one from another commit, or one without a verdict scores nothing.

Figure (written by a test, next to the JUnit report, ``<junit dir>/mltest/NAME.json``)::

    {"test": "tests/x/test_y.py::test_z",      # the pytest node id that wrote it: it must have passed
     "written_at": ISO-8601,                     # inside the test run's time window
     "commit": "<40 hex>",                       # the commit the run's JUnit report names
     "verdict": "passed" | "failed" | "proxy",   # the test's own conclusion about the property
     "proxy_reason": str,                        # required with "proxy": what stands in for what
     ...payload}                                 # at least one more field: the figures themselves

Benchmark (``<state_dir>/bench/NAME.json``, written by `make bench`)::

    {"bench": NAME (without .json), "at": ISO-8601, "commit": "<40 hex>", "dirty": false,
     "passed": true | false, ...payload}         # at least one more field

``write_figure`` and ``bench_fields`` produce these envelopes for a project's own tests and benchmarks.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlship.score import provenance

FIGURES_DIR = "mltest"  # figures live next to the JUnit report of the run that wrote them
VERDICTS = ("passed", "failed", "proxy")
Commit = Annotated[str, Field(pattern=r"^[0-9a-f]{40}$")]


class FigureEnvelope(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    test: Annotated[str, Field(pattern=r"^[\w/.-]+\.py::\S+$")]
    written_at: datetime
    commit: Commit
    verdict: Literal["passed", "failed", "proxy"]
    proxy_reason: Annotated[str, Field(min_length=10)] | None = None

    @model_validator(mode="after")
    def _reason_and_payload(self) -> FigureEnvelope:
        if self.verdict == "proxy" and self.proxy_reason is None:
            raise ValueError("a figure with verdict proxy must say why (proxy_reason)")
        if not self.model_extra:
            raise ValueError("the figure holds no figures besides its envelope")
        if self.written_at.tzinfo is None:
            raise ValueError("written_at has no time zone")
        return self

    @property
    def payload(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class BenchEnvelope(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    bench: Annotated[str, Field(pattern=r"^[\w.-]+$")]
    at: datetime
    commit: Commit
    dirty: Literal[False]
    passed: bool

    @model_validator(mode="after")
    def _payload(self) -> BenchEnvelope:
        if not self.model_extra:
            raise ValueError("the benchmark file holds no results besides its envelope")
        if self.at.tzinfo is None:
            raise ValueError("at has no time zone")
        return self


def first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    return f"{key}: {err['msg']}"


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; ValueError naming what is wrong otherwise."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON ({exc})") from exc
    if not isinstance(body, dict):
        raise ValueError(f"not a JSON object but {type(body).__name__}")
    return body


def write_figure(
    folder: Path,
    name: str,
    *,
    test: str,
    payload: dict[str, Any],
    verdict: str,
    root: Path,
    proxy_reason: str | None = None,
) -> Path:
    """Write ``<folder>/<name>.json`` with the envelope the scorer checks (commit read from ``root``)."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
    state = provenance.tree_state(root)
    body: dict[str, Any] = {
        "test": test,
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": state.commit,
        "verdict": verdict,
        **({"proxy_reason": proxy_reason} if proxy_reason else {}),
        **payload,
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(body, indent=2, default=float), encoding="utf-8")
    return path


def bench_fields(name: str, root: Path) -> dict[str, Any]:
    """The envelope of a benchmark result (add ``passed`` and the results)."""
    state = provenance.tree_state(root)
    return {
        "bench": name,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": state.commit,
        "dirty": state.dirty if state.commit else None,
    }

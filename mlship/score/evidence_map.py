"""The project's evidence map (``mlship-score.yaml``): which of its tests, figures, benchmarks, live checks
and procedures evidence each item of the rubric. The scorer reads it; the rubric itself ships with mlship.

Shape (docs/score.md has the full reference)::

    version: 1
    items:
      data-1:
        how: what the project does for it            # shown in the tables
        automated:                                   # all must pass: 1 point
          - pytest: tests/unit/test_schema.py        # a file, file::test, file::Class, file::test[id]
          - figure: feature_benefit.json             # written by a test of the run (``verify:`` optional)
          - bench: model_compute.json                # written by `make bench` on this commit
          - live: {alerts: [FeatureDrift], series: [mlship_feature_reference_share]}
        proxy:                                       # stands in for the property: 0.5 at most
          reason: what it stands in for and what it misses
          evidence: [...same kinds...]
        manual: docs/procedures/x.md                 # ## Procedure and ## Results: 0.5
    shared:                                          # one piece of evidence counts for one item, unless:
      - evidence: pytest tests/x.py::test_y          # "<kind> <target>": pytest/figure/bench/alert/series
        items: [data-1, monitor-2]
        why: why the paper's intents of these items coincide for this piece

Validation is strict and each problem is one line naming the key: an unknown item id, an unknown evidence
kind, a malformed selector, and a piece of evidence used by two items without a ``shared`` entry saying why.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from mlship.errors import ConfigError
from mlship.score.rubric import Rubric

DEFAULT_FILE = "mlship-score.yaml"
KINDS = ("pytest", "figure", "bench", "live")
VERIFIERS = ("offline_online_correlation",)
_SELECTOR = re.compile(r"^[\w/.-]+\.py(::[\w]+(\[[^\]]+\])?)?$")
_FILE_NAME = re.compile(r"^[\w.-]+\.json$")
_ALERT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SERIES = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Evidence(_Strict):
    kind: ClassVar[str]

    @property
    def target(self) -> str:
        return str(getattr(self, self.kind))

    def pieces(self) -> list[str]:
        """The pieces this evidence is made of, as ``"<kind> <target>"`` (live checks: one per name)."""
        return [f"{self.kind} {self.target}"]


class PytestEvidence(_Evidence):
    kind: ClassVar[str] = "pytest"
    pytest: str

    @field_validator("pytest")
    @classmethod
    def _selector(cls, value: str) -> str:
        if not _SELECTOR.match(value):
            raise ValueError(f"{value!r} is not <path>.py, <path>.py::test or <path>.py::test[id]")
        return value

    @property
    def file(self) -> str:
        return self.pytest.partition("::")[0]

    @property
    def name(self) -> str | None:
        return self.pytest.partition("::")[2] or None


class FigureEvidence(_Evidence):
    kind: ClassVar[str] = "figure"
    figure: str
    verify: Literal["offline_online_correlation"] | None = None

    @field_validator("figure")
    @classmethod
    def _json(cls, value: str) -> str:
        if not _FILE_NAME.match(value):
            raise ValueError(f"{value!r} is not a JSON file name")
        return value


class BenchEvidence(_Evidence):
    kind: ClassVar[str] = "bench"
    bench: str

    @field_validator("bench")
    @classmethod
    def _json(cls, value: str) -> str:
        if not _FILE_NAME.match(value):
            raise ValueError(f"{value!r} is not a JSON file name")
        return value


class LiveSpec(_Strict):
    alerts: list[str] = []
    series: list[str] = []

    @model_validator(mode="after")
    def _names(self) -> LiveSpec:
        if not self.alerts and not self.series:
            raise ValueError("a live check names at least one alert or series")
        bad = [a for a in self.alerts if not _ALERT.match(a)] + [
            s for s in self.series if not _SERIES.match(s)
        ]
        if bad:
            raise ValueError(f"not an alert or metric name: {bad[0]!r}")
        return self


class LiveEvidence(_Evidence):
    kind: ClassVar[str] = "live"
    live: LiveSpec

    @property
    def target(self) -> str:
        return ", ".join([*self.live.alerts, *self.live.series])

    def pieces(self) -> list[str]:
        return [f"alert {a}" for a in self.live.alerts] + [f"series {s}" for s in self.live.series]


def _kind_of(value: Any) -> str | None:
    """The union member an entry is validated as: named by the entry's kind key (checked beforehand)."""
    if isinstance(value, _Evidence):
        return type(value).__name__
    if isinstance(value, dict):
        kind = next((k for k in KINDS if k in value), None)
        return f"{kind.capitalize()}Evidence" if kind else None
    return None


Evidence = Annotated[
    Annotated[PytestEvidence, Tag("PytestEvidence")]
    | Annotated[FigureEvidence, Tag("FigureEvidence")]
    | Annotated[BenchEvidence, Tag("BenchEvidence")]
    | Annotated[LiveEvidence, Tag("LiveEvidence")],
    Discriminator(_kind_of),
]
_BY_KIND: dict[str, type[_Evidence]] = {
    "pytest": PytestEvidence,
    "figure": FigureEvidence,
    "bench": BenchEvidence,
    "live": LiveEvidence,
}


class ProxyTier(_Strict):
    reason: Annotated[str, Field(min_length=10)]
    evidence: Annotated[list[Evidence], Field(min_length=1)]


class ItemEvidence(_Strict):
    how: Annotated[str, Field(min_length=10)]
    automated: list[Evidence] = []
    proxy: ProxyTier | None = None
    manual: str | None = None  # repository path of a documented procedure with results

    def all_evidence(self) -> list[Evidence]:
        return [*self.automated, *(self.proxy.evidence if self.proxy else [])]


class Share(_Strict):
    evidence: Annotated[str, Field(pattern=r"^(pytest|figure|bench|alert|series) \S+$")]
    items: Annotated[list[str], Field(min_length=2)]
    why: Annotated[str, Field(min_length=20)]


class EvidenceMap(_Strict):
    version: Literal[1]
    items: dict[str, ItemEvidence]
    shared: list[Share] = []

    def get(self, item_id: str) -> ItemEvidence | None:
        return self.items.get(item_id)

    def pytest_files(self) -> list[str]:
        return sorted(
            {
                e.file
                for item in self.items.values()
                for e in item.all_evidence()
                if isinstance(e, PytestEvidence)
            }
        )

    def claimed_elsewhere(self, item_id: str, file: str) -> list[str]:
        """Tests of ``file`` named one by one as other items' evidence (not shared with ``item_id``)."""
        shared_with = {
            s.evidence.split(" ", 1)[1]
            for s in self.shared
            if item_id in s.items and s.evidence.startswith("pytest ")
        }
        out = []
        for other, item in self.items.items():
            if other == item_id:
                continue
            for e in item.all_evidence():
                if (
                    isinstance(e, PytestEvidence)
                    and e.file == file
                    and e.name
                    and e.pytest not in shared_with
                ):
                    out.append(e.pytest)
        return out


@dataclass(frozen=True)
class _Use:
    item: str
    key: str  # dotted key in the file, for messages
    piece: str


def _uses(items: dict[str, ItemEvidence]) -> Iterator[_Use]:
    for item_id, item in items.items():
        for tier, evidence in (
            ("automated", item.automated),
            ("proxy.evidence", item.proxy.evidence if item.proxy else []),
        ):
            for index, e in enumerate(evidence):
                for piece in e.pieces():
                    yield _Use(item_id, f"items.{item_id}.{tier}.{index}", piece)


def _overlap(a: str, b: str) -> bool:
    """Two pieces are the same evidence: equal, or pytest selectors naming the same test(s).

    A whole-file selector and a selector of one test in that file do not overlap here: the file's
    selector counts the tests of the file that no other item names (checked when scoring).
    """
    if a == b:
        return True
    if not (a.startswith("pytest ") and b.startswith("pytest ")):
        return False
    fa, _, na = a[7:].partition("::")
    fb, _, nb = b[7:].partition("::")
    if fa != fb or not na or not nb:
        return False
    return na.split("[", 1)[0] == nb.split("[", 1)[0] and ("[" not in na or "[" not in nb)


def _check_kinds(raw: Any, source: str) -> None:
    """Unknown evidence kinds and item ids are caught before pydantic, with a one-line message."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    items = raw.get("items")
    if not isinstance(items, dict):
        return
    for item_id, item in items.items():
        if not isinstance(item, dict):
            continue
        tiers = [("automated", item.get("automated"))]
        if isinstance(item.get("proxy"), dict):
            tiers.append(("proxy.evidence", item["proxy"].get("evidence")))
        for tier, evidence in tiers:
            if not isinstance(evidence, list):
                continue
            for index, entry in enumerate(evidence):
                key = f"items.{item_id}.{tier}.{index}"
                if not isinstance(entry, dict) or not entry:
                    raise ConfigError(f"{source}: {key}: expected one of {', '.join(KINDS)}: <target>")
                kinds = [k for k in entry if k in KINDS]
                unknown = [k for k in entry if k not in KINDS and k != "verify"]
                if unknown or len(kinds) != 1:
                    what = (
                        f"unknown evidence kind {unknown[0]!r}" if unknown else "exactly one kind per entry"
                    )
                    raise ConfigError(f"{source}: {key}: {what} (known kinds: {', '.join(KINDS)})")


def _one_line(source: str, exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    loc = [str(p) for p in err["loc"]]
    # Drop pydantic's union member names (e.g. "PytestEvidence") from the key.
    key = ".".join(p for p in loc if not p.endswith("Evidence")) or "(top level)"
    return f"{source}: {key}: {err['msg']}"


def parse(text: str, source: str, rubric: Rubric) -> EvidenceMap:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {str(exc).splitlines()[0]}") from exc
    _check_kinds(raw, source)
    known = rubric.ids
    items = raw.get("items") if isinstance(raw.get("items"), dict) else {}
    for item_id in items:
        if item_id not in known:
            raise ConfigError(
                f"{source}: items.{item_id}: unknown item id (the rubric's are data-1..7, model-1..7, "
                "infra-1..7, monitor-1..7)"
            )
    for index, share in enumerate(raw.get("shared") or []):
        for item_id in share.get("items", []) if isinstance(share, dict) else []:
            if item_id not in known:
                raise ConfigError(f"{source}: shared.{index}.items: unknown item id {item_id!r}")
    try:
        mapped = EvidenceMap.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_one_line(source, exc)) from exc
    _check_sharing(mapped, source)
    return mapped


def _check_sharing(mapped: EvidenceMap, source: str) -> None:
    uses = list(_uses(mapped.items))
    declared = {(s.evidence, item) for s in mapped.shared for item in s.items}
    for index, share in enumerate(mapped.shared):
        for item_id in share.items:
            if not any(u.item == item_id and _overlap(u.piece, share.evidence) for u in uses):
                raise ConfigError(
                    f"{source}: shared.{index}: {item_id} does not use {share.evidence}; "
                    "list only the items that share it"
                )
    for i, a in enumerate(uses):
        for b in uses[i + 1 :]:
            if a.item == b.item or not _overlap(a.piece, b.piece):
                continue
            covered = any(
                (share, a.item) in declared and (share, b.item) in declared for share in (a.piece, b.piece)
            )
            if not covered:
                raise ConfigError(
                    f"{source}: {b.key}: {b.piece} is already evidence for {a.item} ({a.key}); one piece of "
                    f"evidence counts for one item: give {b.item} its own, or add a `shared` entry saying "
                    "why the paper's intents coincide"
                )


def load(path: Path, rubric: Rubric) -> EvidenceMap:
    if not path.is_file():
        raise ConfigError(
            f"no evidence map at {path}: declare which tests, figures, benchmarks and live checks evidence "
            "each item (docs/score.md), or pass --evidence PATH"
        )
    return parse(path.read_text(encoding="utf-8"), path.name, rubric)

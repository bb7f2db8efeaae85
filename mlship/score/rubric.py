"""The rubric shipped with mlship (``rubric.yaml``): the paper's 28 tests, their intent, and the bands."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlship.config import format_validation_error
from mlship.errors import ConfigError

SECTION_IDS = ("data", "model", "infra", "monitoring")
TESTS_PER_SECTION = 7
ITEM_ID_PATTERN = r"^(data|model|infra|monitor)-[1-7]$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Item(_Strict):
    id: Annotated[str, Field(pattern=ITEM_ID_PATTERN)]
    test: Annotated[str, Field(min_length=10)]  # the paper's wording (Tables I-IV)
    intent: Annotated[str, Field(min_length=10)]  # what the test is for, from the paper's text
    live_required: bool = False  # counts as automated only with a passing live check


class Section(_Strict):
    id: Literal["data", "model", "infra", "monitoring"]
    title: str
    items: list[Item]

    @model_validator(mode="after")
    def _seven_numbered(self) -> Section:
        prefix = "monitor" if self.id == "monitoring" else self.id
        expected = [f"{prefix}-{i}" for i in range(1, TESTS_PER_SECTION + 1)]
        found = [item.id for item in self.items]
        if found != expected:
            raise ValueError(f"section {self.id} must list {expected} in order, found {found}")
        return self


class Band(_Strict):
    above: float | None  # exclusive lower bound (None: the score equals ``upto``)
    upto: float | None  # inclusive upper bound (None: no upper bound)
    text: str

    def contains(self, score: float) -> bool:
        if self.above is None:
            return score == self.upto
        return score > self.above and (self.upto is None or score <= self.upto)

    @property
    def label(self) -> str:
        if self.above is None:
            return f"{self.upto:g}"
        if self.upto is None:
            return f"> {self.above:g}"
        return f"({self.above:g}, {self.upto:g}]"


class Rubric(_Strict):
    version: Literal[2]
    sections: list[Section]
    interpretation: list[Band]

    @model_validator(mode="after")
    def _four_sections_and_bands(self) -> Rubric:
        if tuple(s.id for s in self.sections) != SECTION_IDS:
            raise ValueError(f"sections must be {list(SECTION_IDS)} in order")
        for probe in (0.0, 0.5, 1.0, 1.5, 3.0, 4.5, 5.0, 5.5, 7.0):
            hits = [b for b in self.interpretation if b.contains(probe)]
            if len(hits) != 1:
                raise ValueError(
                    f"interpretation bands must cover every score once; {probe} is in {len(hits)}"
                )
        return self

    @property
    def items(self) -> list[Item]:
        return [item for section in self.sections for item in section.items]

    @property
    def ids(self) -> list[str]:
        return [item.id for item in self.items]

    def band(self, score: float) -> Band:
        return next(b for b in self.interpretation if b.contains(score))


def parse(text: str, source: str) -> Rubric:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    try:
        return Rubric.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from exc


@cache
def load(path: Path | None = None) -> Rubric:
    """The rubric shipped with mlship (or the file at ``path``), validated."""
    if path is not None:
        return parse(path.read_text(encoding="utf-8"), str(path))
    text = resources.files("mlship.score").joinpath("rubric.yaml").read_text(encoding="utf-8")
    return parse(text, "mlship/score/rubric.yaml")

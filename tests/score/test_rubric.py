"""The rubric shipped with mlship: the paper's 28 tests in its words and its interpretation, and nothing
about any project (the evidence lives in the project's evidence map)."""

from __future__ import annotations

import copy

import pytest
import yaml
from score_helpers import REPO

from mlship.errors import ConfigError
from mlship.score import rubric

# Tables I-IV of Breck et al., "The ML Test Score", IEEE Big Data 2017.
PAPER = {
    "data": [
        "Feature expectations are captured in a schema.",
        "All features are beneficial.",
        "No feature's cost is too much.",
        "Features adhere to meta-level requirements.",
        "The data pipeline has appropriate privacy controls.",
        "New features can be added quickly.",
        "All input feature code is tested.",
    ],
    "model": [
        "Model specs are reviewed and submitted.",
        "Offline and online metrics correlate.",
        "All hyperparameters have been tuned.",
        "The impact of model staleness is known.",
        "A simpler model is not better.",
        "Model quality is sufficient on important data slices.",
        "The model is tested for considerations of inclusion.",
    ],
    "infra": [
        "Training is reproducible.",
        "Model specs are unit tested.",
        "The ML pipeline is integration tested.",
        "Model quality is validated before serving.",
        "The model is debuggable.",
        "Models are canaried before serving.",
        "Serving models can be rolled back.",
    ],
    "monitoring": [
        "Dependency changes result in notification.",
        "Data invariants hold for inputs.",
        "Training and serving are not skewed.",
        "Models are not too stale.",
        "Models are numerically stable.",
        "Computing performance has not regressed.",
        "Prediction quality has not regressed.",
    ],
}
RUBRIC_FILE = REPO / "mlship" / "score" / "rubric.yaml"


@pytest.fixture
def raw() -> dict:
    return copy.deepcopy(yaml.safe_load(RUBRIC_FILE.read_text(encoding="utf-8")))


def parse(raw: dict) -> rubric.Rubric:
    return rubric.parse(yaml.safe_dump(raw), "test-rubric.yaml")


def test_the_shipped_rubric_has_the_papers_28_tests_in_its_words():
    loaded = rubric.load()
    assert {s.id: [i.test for i in s.items] for s in loaded.sections} == PAPER
    assert len(loaded.items) == 28 and all(len(i.intent) > 40 for i in loaded.items)


def test_the_product_rubric_names_no_project_evidence():
    data_lines = [
        line
        for line in RUBRIC_FILE.read_text(encoding="utf-8").splitlines()
        if not line.lstrip().startswith("#")
    ]
    text = "\n".join(data_lines)
    for project_word in ("tests/", ".py", ".json", "pytest:", "figure:", "bench:"):
        assert project_word not in text, f"the product rubric mentions {project_word!r}"


def test_only_the_papers_production_monitoring_tests_require_a_live_check():
    required = [i.id for i in rubric.load().items if i.live_required]
    assert required == [f"monitor-{n}" for n in range(2, 8)]


def test_the_interpretation_rows_are_the_papers():
    loaded = rubric.load()
    assert loaded.band(0).text.startswith("More of a research project")
    assert loaded.band(0.5).label == "(0, 1]" and loaded.band(1).label == "(0, 1]"
    assert loaded.band(2).text.startswith("There's been first pass at basic productionization")
    assert loaded.band(3).text.startswith("Reasonably tested")
    assert loaded.band(5).text.startswith("Strong levels of automated testing")
    assert loaded.band(5.5).label == "> 5" and loaded.band(5.5).text.startswith("Exceptional")


def test_a_section_with_a_missing_test_is_refused_naming_it(raw):
    raw["sections"][1]["items"].pop(3)
    with pytest.raises(ConfigError, match=r"section model must list .*model-4.*found"):
        parse(raw)


def test_overlapping_interpretation_bands_are_refused(raw):
    raw["interpretation"][2]["above"] = 0.5
    with pytest.raises(ConfigError, match="cover every score once"):
        parse(raw)


def test_an_unknown_key_is_refused(raw):
    raw["sections"][0]["items"][0]["automated"] = [{"pytest": "tests/x.py"}]
    with pytest.raises(ConfigError, match="automated"):
        parse(raw)

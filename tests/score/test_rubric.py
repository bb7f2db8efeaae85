"""The rubric data file: the paper's 28 tests in its words, and evidence that exists in this repository."""

from __future__ import annotations

import re

import pytest
from score_helpers import REPO, parse

from mlship.errors import ConfigError
from mlship.score import rubric
from mlship.score.evidence import selector_parts

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


def test_the_shipped_rubric_has_the_papers_28_tests_in_its_words():
    loaded = rubric.load()
    assert {s.id: [i.test for i in s.items] for s in loaded.sections} == PAPER
    assert len(loaded.items) == 28


def test_every_pytest_check_names_a_test_that_exists():
    for item in rubric.load().items:
        for check in item.automated:
            if not isinstance(check, rubric.PytestCheck):
                continue
            file, _, name = selector_parts(check.pytest)
            source = REPO / file
            assert source.is_file(), f"{item.id}: {file} does not exist"
            if name:
                function = name.split("[", 1)[0]
                assert re.search(rf"^def {function}\(", source.read_text(), re.M), (
                    f"{item.id}: {check.pytest}"
                )


def test_every_documented_procedure_exists_with_procedure_and_results():
    for item in rubric.load().items:
        if item.manual:
            text = (REPO / item.manual).read_text()
            assert "## Procedure" in text and "## Results" in text, item.manual


def test_the_interpretation_rows_are_the_papers():
    loaded = rubric.load()
    assert loaded.band(0).text.startswith("More of a research project")
    assert loaded.band(0.5).label == "(0, 1]" and loaded.band(1).label == "(0, 1]"
    assert loaded.band(2).text.startswith("There's been first pass at basic productionization")
    assert loaded.band(3).text.startswith("Reasonably tested")
    assert loaded.band(5).text.startswith("Strong levels of automated testing")
    assert loaded.band(5.5).label == "> 5" and loaded.band(5.5).text.startswith("Exceptional")


def test_a_section_with_a_missing_test_is_refused_naming_it(raw_rubric):
    raw_rubric["sections"][1]["items"].pop(3)
    with pytest.raises(ConfigError, match=r"section model must list .*model-4.*found"):
        parse(raw_rubric)


def test_a_malformed_selector_is_refused_naming_the_key(raw_rubric):
    raw_rubric["sections"][0]["items"][0]["automated"] = [{"pytest": "unit/test_schema.py::"}]
    with pytest.raises(ConfigError, match=r"sections\.0\.items\.0\.automated\.0"):
        parse(raw_rubric)


def test_overlapping_interpretation_bands_are_refused(raw_rubric):
    raw_rubric["interpretation"][2]["above"] = 0.5
    with pytest.raises(ConfigError, match="cover every score once"):
        parse(raw_rubric)


def test_a_live_check_without_automated_checks_is_refused(raw_rubric):
    item = raw_rubric["sections"][1]["items"][1]
    item["live"] = {"alerts": ["PredictionDrift"]}
    with pytest.raises(ConfigError, match="model-2: a live check only confirms automated checks"):
        parse(raw_rubric)


def test_an_unknown_key_is_refused(raw_rubric):
    raw_rubric["sections"][0]["items"][0]["points"] = 1
    with pytest.raises(ConfigError, match="points"):
        parse(raw_rubric)

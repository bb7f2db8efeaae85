"""Model specs are reviewed and submitted (ML Test Score, Model 1): the review record stored with a model.

A copy of a registered model's directory stands in for a second model where a test changes it; reviews
are written by the code `mlship model review` runs, and read by the check `canary start` runs.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
from typer.testing import CliRunner

from mlship.cli import app
from mlship.errors import RefusedError
from mlship.model import approval

REVIEWER = "second.person@example.org"


@pytest.fixture
def unreviewed(models, tmp_path):
    """The baseline model in a folder of its own, without a review, trained by `author@example.org`."""
    base = models["baseline"]
    folder = tmp_path / "model"
    shutil.copytree(base.path, folder)
    (folder / approval.REVIEW_FILE).unlink(missing_ok=True)
    metadata = {**base.metadata, "trained_by": "author@example.org", "code_version": "0123456789ab"}
    return dataclasses.replace(base, path=folder, metadata=metadata)


def test_a_review_by_someone_else_of_the_spec_they_saw_is_recorded_and_counts(unreviewed):
    assert "no review of its spec" in approval.review_problem(unreviewed)
    seen = approval.spec_hash(unreviewed)
    done = approval.review(unreviewed, REVIEWER, seen_hash=seen, note="read the search and the features")
    stored = json.loads((unreviewed.path / approval.REVIEW_FILE).read_text())
    assert stored["reviewer"] == REVIEWER and stored["spec_hash"] == seen == done.spec_hash
    assert stored["commit"] == "0123456789ab" and stored["at"]
    assert approval.review_problem(unreviewed) is None


def test_the_author_cannot_review_their_own_model(unreviewed):
    with pytest.raises(RefusedError, match=r"is an author of .*someone else"):
        approval.review(unreviewed, "Author@Example.org ", seen_hash=approval.spec_hash(unreviewed))
    assert not (unreviewed.path / approval.REVIEW_FILE).exists()


def test_a_review_of_a_spec_that_changed_since_it_was_read_is_refused(unreviewed):
    stale_hash = approval.spec_hash(unreviewed)
    changed = dataclasses.replace(
        unreviewed, metadata={**unreviewed.metadata, "hyperparameters": {"n_estimators": 999}}
    )
    with pytest.raises(RefusedError, match="not the one you reviewed"):
        approval.review(changed, REVIEWER, seen_hash=stale_hash)
    assert not (unreviewed.path / approval.REVIEW_FILE).exists()


def test_a_recorded_review_stops_counting_when_the_spec_changes(unreviewed):
    approval.review(unreviewed, REVIEWER, seen_hash=approval.spec_hash(unreviewed))
    changed = dataclasses.replace(unreviewed, metadata={**unreviewed.metadata, "feature_version": "v2"})
    assert "changed since second.person@example.org reviewed it" in approval.review_problem(changed)


def test_a_model_trained_from_uncommitted_code_cannot_be_reviewed(unreviewed):
    dirty = dataclasses.replace(
        unreviewed, metadata={**unreviewed.metadata, "code_version": "0123456789ab+dirty"}
    )
    with pytest.raises(RefusedError, match=r"uncommitted code .*commit, retrain"):
        approval.review(dirty, REVIEWER, seen_hash=approval.spec_hash(dirty))


def test_a_review_written_by_the_author_by_hand_does_not_count(unreviewed):
    forged = approval.Review(
        model=unreviewed.tag,
        reviewer="author@example.org",
        at="2026-01-01T00:00:00+00:00",
        spec_hash=approval.spec_hash(unreviewed),
        commit="0123456789ab",
    )
    (unreviewed.path / approval.REVIEW_FILE).write_text(forged.model_dump_json())
    assert "reviewed by its own author" in approval.review_problem(unreviewed)


def test_the_spec_is_what_decides_what_the_model_learns(models):
    spec = approval.spec(models["baseline"])
    assert {"hyperparameters", "search", "feature_version", "data_hash", "code_version", "seed"} <= set(spec)
    assert "trained_at" not in spec and "metrics" not in spec, "outcomes of training are not its spec"
    assert approval.spec_hash(models["baseline"]) != approval.spec_hash(models["candidate"])


def test_release_checks_name_what_is_missing_and_force_returns_it(models, unreviewed):
    assert approval.require(models["candidate"], action="releasing", force=False, needs_review=True) == []
    with pytest.raises(RefusedError, match=r"releasing refused: .*no review of its spec.*--force"):
        approval.require(unreviewed, action="releasing", force=False, needs_review=True)
    forced = approval.require(unreviewed, action="releasing", force=True, needs_review=True)
    assert len(forced) == 1 and "no review" in forced[0]
    with pytest.raises(RefusedError, match="not blessed: the quality gate vetoed it"):
        approval.require(models["shifted"], action="promoting", force=False)


def test_the_cli_prints_the_spec_hash_and_refuses_a_wrong_one(models, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no mlship.yaml: the default model name, the session's store
    record = models["candidate"]
    runner = CliRunner()
    shown = runner.invoke(app, ["model", "spec", record.version, "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["spec_hash"] == approval.spec_hash(record)
    wrong = runner.invoke(app, ["model", "review", record.version, "--by", REVIEWER, "--spec-hash", "0" * 64])
    assert isinstance(wrong.exception, RefusedError) and "not the one you reviewed" in str(wrong.exception)

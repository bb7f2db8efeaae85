"""The quality gate (ML Test Score, Infra 4) blesses good models and vetoes each kind of bad one, naming
the check and its figures, and stores the verdict with the model."""

from __future__ import annotations

import dataclasses
import shutil

import joblib
import numpy as np
import pytest

from mlship.config import GateConfig
from mlship.model import gate, registry


def checks(verdict) -> dict[str, dict]:
    return {c["name"]: c for c in verdict["checks"]}


def test_the_first_model_is_checked_for_stability_coverage_and_against_simpler_models(models):
    verdict = models["baseline"].gate
    assert verdict["blessed"] and verdict["against"] is None
    assert set(checks(verdict)) == {
        "numeric stability on schema edges",
        "feature code covers the held-out rows",
        "not worse than a simpler model",
    }


def test_a_retrained_model_passes_every_check_against_the_current_one(models):
    verdict = models["candidate"].gate
    assert verdict["blessed"], verdict
    assert verdict["against"] == models["baseline"].tag
    assert len(verdict["checks"]) == 6 and all(c["passed"] for c in verdict["checks"])
    slices = checks(verdict)["no slice worse"]["figures"]["slices"]
    assert {"sex=1", "sex=2", "age=<40", "age=40-59", "age=60+"} <= set(slices)


def test_the_forest_is_vetoed_only_because_a_linear_regression_is_better_not_for_its_latency(models):
    """The 500-tree forest is no better than a linear regression on held-out rows (Model 5, no tolerance);
    every other check passes: the gate does not judge latency, the canary does."""
    verdict = models["slow"].gate
    failed = [c["name"] for c in verdict["checks"] if not c["passed"]]
    assert failed == ["not worse than a simpler model"], failed


def test_shifted_predictions_are_vetoed_on_rmse_agreement_and_the_simpler_model(models):
    verdict = models["shifted"].gate
    failed = {c["name"] for c in verdict["checks"] if not c["passed"]}
    assert not verdict["blessed"]
    assert {
        "held-out RMSE not worse",
        "predictions agree with the current model",
        "not worse than a simpler model",
    } <= failed
    rmse = checks(verdict)["held-out RMSE not worse"]["figures"]
    assert rmse["candidate_rmse"] > rmse["limit"]


def test_feature_code_that_raises_is_vetoed_on_stability_and_coverage(models):
    verdict = models["buggy"].gate
    by_name = checks(verdict)
    assert not verdict["blessed"]
    assert not by_name["numeric stability on schema edges"]["passed"]
    assert by_name["numeric stability on schema edges"]["figures"]["raised"] > 0
    assert not by_name["feature code covers the held-out rows"]["passed"]


def test_the_verdict_is_stored_with_the_model(models):
    record = registry.get(models["shifted"].tag)
    assert record.gate is not None and record.blessed is False
    assert record.gate["candidate"] == models["shifted"].tag


def test_a_slice_worse_beyond_the_tolerance_is_vetoed_and_named(models):
    verdict = gate.validate(models["candidate"], models["baseline"], GateConfig(slice_tolerance=0.0))
    check = checks(verdict)["no slice worse"]
    worse = [name for name, s in check["figures"]["slices"].items() if s["ratio"] > 1.0]
    assert worse, "with zero tolerance some slice of a retrained model is worse"
    assert not check["passed"] and not verdict["blessed"]
    assert all(name in check["detail"] for name in worse)


def test_the_simpler_model_check_reports_its_figures(models):
    figures = checks(models["baseline"].gate)["not worse than a simpler model"]["figures"]
    assert set(figures["simpler_rmse"]) == {"linear regression", "training mean"}
    assert figures["tolerance"] == 0.0 and figures["heldout_passed"]
    assert figures["model_rmse"] <= figures["simpler_rmse"]["linear regression"]
    assert (
        figures["cross_validation"]["model_rmse"]
        <= figures["cross_validation"]["simpler_rmse"]["linear regression"]
    )
    assert figures["simpler_rmse"]["training mean"] > figures["model_rmse"] * 1.2


class NanAboveBmi:
    """A model wrapper that returns NaN when BMI (column 2) exceeds a threshold: numerically unstable."""

    def __init__(self, inner, threshold: float) -> None:
        self.inner = inner
        self.threshold = threshold

    def predict(self, x):
        out = np.asarray(self.inner.predict(x), dtype=float)
        out[x[:, 2] > self.threshold] = np.nan
        return out


def test_non_finite_predictions_on_valid_edge_inputs_are_vetoed(models, tmp_path):
    base = models["baseline"]
    folder = tmp_path / "model"
    shutil.copytree(base.path, folder)
    schema = base.schema
    bmi_max = schema.feature("bmi").maximum
    joblib.dump(NanAboveBmi(base.load_estimator(), bmi_max - 1e-6), folder / registry.MODEL_FILE)
    unstable = dataclasses.replace(base, path=folder, tag=f"{base.name}:unstable")
    check = gate.stability_check(unstable)
    assert not check.passed
    assert check.figures["non_finite"] >= 1 and check.figures["raised"] == 0


@pytest.mark.parametrize("variant", ["baseline", "candidate", "slow"])
def test_good_models_predict_finite_values_on_every_edge_row(models, variant):
    check = gate.stability_check(models[variant])
    assert check.passed, check.detail
    assert check.figures["rows"] == 3 + sum(
        len(f.allowed) if hasattr(f, "allowed") else 2 for f in models[variant].schema.features
    )

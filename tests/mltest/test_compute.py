"""Computing performance has not regressed (ML Test Score, Monitor 6): the compute benchmark's comparison
rules, and that its measurement tells the 500-tree forest from the served recipe."""

from __future__ import annotations

import json

from mlship.model import compute

BASE = compute.Figures(p50_us=400.0, p99_us=900.0, batch_rows_per_s=50_000.0, alloc_bytes=20_000)


def test_ratios_are_cost_against_the_reference_and_only_those_over_the_limit_regress():
    same = compute.ratios(BASE, BASE)
    assert same == {"p50": 1.0, "p99": 1.0, "throughput": 1.0, "alloc": 1.0}
    assert compute.regressions(same) == []
    slower = compute.Figures(p50_us=800.0, p99_us=1000.0, batch_rows_per_s=20_000.0, alloc_bytes=20_000)
    r = compute.ratios(slower, BASE)
    assert r["p50"] == 2.0 and r["throughput"] == 2.5
    assert compute.regressions(r) == ["p50 2.00x > 1.5x", "throughput 2.50x > 1.5x"]


def test_the_stored_baseline_is_written_once_then_compared(tmp_path):
    stored = tmp_path / "model_compute.baseline.json"
    first = compute.compare_with_stored(2.0, stored, rebaseline=False)
    assert first["recorded_now"] and first["passed"]
    assert json.loads(stored.read_text())["normalised_p50"] == 2.0
    leak = compute.compare_with_stored(3.2, stored, rebaseline=False)
    assert leak["ratio"] == 1.6 and not leak["passed"] and not leak["recorded_now"]
    fine = compute.compare_with_stored(2.4, stored, rebaseline=False)
    assert fine["passed"]
    compute.compare_with_stored(3.2, stored, rebaseline=True)
    assert json.loads(stored.read_text())["normalised_p50"] == 3.2


def test_the_measurement_sees_that_the_forest_costs_far_more_than_the_served_recipe(trained, heldout):
    rows, _, _ = heldout
    models = {name: (trained[name].estimator, "v1") for name in ("baseline", "slow")}
    figures = compute.measure(models, rows, repeats=20, every={"slow": 2})
    fast, slow = figures["baseline"], figures["slow"]
    assert fast.p50_us > 0 and fast.batch_rows_per_s > 0 and fast.alloc_bytes > 0
    # The forest walks 17x more nodes through 500 trees: a regression far beyond any timing noise.
    assert "p50" in " ".join(compute.regressions(compute.ratios(slow, fast)))

"""Model 2: offline and online metrics correlate. Every demo variant serves the same patient traffic, shaped
as `mlship load` shapes it (a smoothed bootstrap) but drawn from the held-out rows only - no row any model
was trained on, or online RMSE would be lower than offline for the reason that the model saw the data -
through the model server's own runtime, with its predictions recorded by the server's recorder and the
patients' true outcomes joined in the feedback store the way POST /feedback joins them. One point per
version (online RMSE over all its outcomes) against the held-out RMSE stored with it: the figure
`online_offline.json`, whose correlation `mlship score` recomputes and requires to survive leaving any
one version out. When it does not, the figure says so (verdict proxy with the figures) rather than
passing on one outlying version."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from mlship.feedback import validation
from mlship.feedback.recorder import PredictionRecorder
from mlship.feedback.store import FeedbackStore
from mlship.local import load
from mlship.serving.runtime import ModelRuntime

PATIENTS_PER_WINDOW = 150
WINDOWS = 2
MIN_CORRELATION = 0.5  # the scorer's bar (mlship/score/evidence.py)
# "buggy" fails on every request (its feature code raises: the demo rolls it back on errors), so it has
# no served prediction and no online metric.
SERVING = ("baseline", "candidate", "slow", "shifted")


def _serve_window(runtime, store, recorder, rows, targets, *, version, role, start, window) -> None:
    frame = runtime.frame(rows)
    predictions = runtime.predict(frame)
    ids = [f"{version}-{window}-{i}" for i in range(len(rows))]
    for rid, row, value in zip(ids, rows, predictions, strict=True):
        recorder(rid, version, role, [row], [float(value)])
    assert recorder.flush(30)
    body = json.dumps([{"request_id": r, "outcome": t} for r, t in zip(ids, targets, strict=True)])
    outcomes, problems = validation.parse(body.encode())
    assert problems == []
    joined, refused = store.add_outcomes(outcomes, now=start + window * 3600 + 1)
    assert refused == [] and len(joined) == len(rows)


def test_offline_and_online_rmse_correlate_across_versions(models, tmp_path, record_figure):
    rows, targets = load.traffic_population(
        seed=7, test_size=0.2, size=PATIENTS_PER_WINDOW * WINDOWS, held_out_only=True
    )
    store = FeedbackStore(tmp_path / "fb.db")
    recorder = PredictionRecorder(store)
    start = time.time()  # window w holds the outcomes received in hour w from now
    offline = {}
    for variant in SERVING:
        record = models[variant]
        runtime = ModelRuntime.from_directory(
            Path(record.path), name=record.name, version=record.version, metadata=dict(record.metadata)
        )
        offline[record.version] = float(record.metadata["metrics"]["rmse"])
        role = "stable" if variant == "baseline" else "canary"
        for w in range(WINDOWS):
            part = slice(w * PATIENTS_PER_WINDOW, (w + 1) * PATIENTS_PER_WINDOW)
            _serve_window(
                runtime, store, recorder, rows[part], targets[part],
                version=record.version, role=role, start=start, window=w,
            )  # fmt: skip
    until = start + WINDOWS * 3600
    points = [
        {
            "version": q.model_version,
            "role": q.role,
            "window_start": datetime.fromtimestamp(start, UTC).isoformat(),
            "window_end": datetime.fromtimestamp(until, UTC).isoformat(),
            "offline_rmse": offline[q.model_version],
            "online_rmse": round(q.rmse, 4),
            "n_outcomes": q.n,
        }
        for q in store.quality(since=start, until=until)
    ]
    xs = np.array([p["offline_rmse"] for p in points])
    ys = np.array([p["online_rmse"] for p in points])
    r = float(np.corrcoef(xs, ys)[0, 1])
    without = {
        p["version"]: float(np.corrcoef(np.delete(xs, i), np.delete(ys, i))[0, 1])
        for i, p in enumerate(points)
    }
    robust = r >= MIN_CORRELATION and min(without.values()) >= MIN_CORRELATION
    record_figure(
        "online_offline",
        {
            "metric": "rmse",
            "points": points,
            "correlation": {"method": "pearson", "r": r, "n": len(points), "leave_one_version_out": without},
        },
        verdict="passed" if robust else "proxy",
        proxy_reason=None
        if robust
        else (
            f"offline/online RMSE r={r:.3f} over {len(points)} versions, but r={min(without.values()):.3f} "
            "without one of them: online RMSE on held-out traffic is measured per version, but its "
            "correlation with the offline RMSE rests on one version and is not shown"
        ),
    )
    assert len(points) == len(SERVING), "one point per version"
    assert all(p["n_outcomes"] == PATIENTS_PER_WINDOW * WINDOWS for p in points)
    assert math.isfinite(r)
    online = {p["version"]: p["online_rmse"] for p in points}
    shifted, baseline = models["shifted"].version, models["baseline"].version
    assert online[shifted] > 1.5 * online[baseline], "the shifted variant's online error rises"


def test_a_version_without_outcomes_or_outside_the_window_has_no_online_point(tmp_path):
    """Points come only from joined outcomes in their window: a version served but never labelled (or
    labelled in another window) is left out rather than given an online RMSE."""
    from mlship.feedback.store import Outcome, PredictionRow

    store = FeedbackStore(tmp_path / "fb.db")
    now = time.time()
    store.record_predictions(
        [
            PredictionRow("a", 0, "labelled", "stable", 10.0, now),
            PredictionRow("b", 0, "silent", "canary", 10.0, now),
        ]
    )
    store.add_outcomes([Outcome("a", 0, 13.0)], now=now + 10)
    assert [(q.model_version, q.rmse) for q in store.quality(since=now, until=now + 60)] == [
        ("labelled", 3.0)
    ]
    assert store.quality(since=now + 60, until=now + 120) == []

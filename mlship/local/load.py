"""Traffic generator: replays held-out rows (drawn at random) through the proxy at a constant rate.

Requests are scheduled at fixed instants whatever the server does, and latency is measured from the
scheduled instant, so a slow server cannot hide its slowness by slowing the generator down
(coordinated omission). Options let a run shift the input population (drift experiments) or mix in
invalid requests (rejection metrics).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import numpy as np

from mlship import names
from mlship.errors import EnvironmentNotReady
from mlship.model import data
from mlship.model.schema import CategoricalFeature, NumericFeature, Schema

MAX_IN_FLIGHT = 256


def require_target(target: str, *, explicit: bool) -> None:
    """Refuse to start a load run when nothing answers at ``target`` (every request would fail)."""
    try:
        httpx.get(f"{target.rstrip('/')}/readyz", timeout=3.0, trust_env=False)
    except httpx.HTTPError as exc:
        hint = "check --url" if explicit else "start the local environment with `mlship local up`"
        raise EnvironmentNotReady(f"nothing answers at {target} ({exc}): {hint}") from None


@dataclass(frozen=True)
class Outcomes:
    """Send the true target of a share of answered requests to /feedback, ``delay_s`` after the answer.

    ``duplicate_every``: every n-th outcome is sent twice (the second must be refused as a duplicate):
    the invalid share of a run covers the feedback endpoint's refusals too.
    """

    targets: Sequence[float]
    share: float
    delay_s: float
    duplicate_every: int = 0


@dataclass
class LoadReport:
    target: str
    rps: float
    duration_s: float
    sent: int = 0
    ok: int = 0
    client_errors: int = 0  # 4xx
    server_errors: int = 0  # 5xx
    failed: int = 0  # no HTTP answer (connection refused/reset, timeout)
    dropped: int = 0  # not sent: too many requests in flight
    latency_ms: dict[str, float] = field(default_factory=dict)
    status_counts: dict[str, int] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    failure_kinds: dict[str, int] = field(default_factory=dict)  # exception name -> count
    achieved_rps: float = 0.0
    # Outcomes sent to /feedback (true targets of answered requests), by answer.
    outcomes_sent: int = 0
    outcomes_accepted: int = 0
    outcomes_refused: int = 0  # 4xx (the deliberate duplicates of an invalid share among them)
    outcomes_failed: int = 0  # 5xx or no answer

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def heldout_rows(*, seed: int, test_size: float) -> list[dict[str, float | int]]:
    """The held-out split's feature rows (what the demo replays)."""
    split = data.split(data.load_frame(), seed=seed, test_size=test_size)
    rows = split.x_test.to_dict(orient="records")
    return [{str(k): (int(v) if k == "sex" else float(v)) for k, v in row.items()} for row in rows]


POPULATION_SIZE = 5000
BANDWIDTH = 0.1  # kernel standard deviation, as a share of each feature's standard deviation


def traffic_rows(*, seed: int, test_size: float, size: int = POPULATION_SIZE) -> list[dict[str, float | int]]:
    """The patient population the load generator replays (``traffic_population`` without the targets)."""
    return traffic_population(seed=seed, test_size=test_size, size=size)[0]


def traffic_population(
    *, seed: int, test_size: float, size: int = POPULATION_SIZE, held_out_only: bool = False
) -> tuple[list[dict[str, float | int]], list[float]]:
    """The patient population the load generator replays: a smoothed bootstrap of the dataset's rows.

    Rows are drawn with replacement from the dataset's feature rows and each numeric feature gets Gaussian
    noise (``BANDWIDTH`` x its standard deviation), clipped to the schema's valid range; categorical
    features are kept. The result is a continuous population shaped like the data, as production traffic
    is. Replaying the 89 held-out rows instead would send the same few point masses over and over, and
    bucketed comparisons of two good models' predictions (PSI) would see spurious shifts: two models
    whose predictions correlate at 0.995 differ by PSI 0.4 on those rows and by 0.02 on this population.

    The targets are the true outcomes of the dataset rows each patient was drawn from (what `mlship load`
    sends back to /feedback): the feature noise is small, so they stand for the patient's outcome.

    ``held_out_only`` draws from the held-out rows only (no row any model was trained on): what an
    online metric must be measured on to be compared with the offline one (Model 2's figure).
    """
    full = data.load_frame()
    split = data.split(full, seed=seed, test_size=test_size)
    schema = Schema.derive(split.train, dataset=data.DATASET_NAME, data_hash=data.data_hash(full))
    frame = split.test if held_out_only else full
    rows = frame.loc[:, schema.names]
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, len(rows), size)
    sample = rows.iloc[drawn].reset_index(drop=True)
    targets = [float(v) for v in frame[data.TARGET].to_numpy()[drawn]]
    for feature in schema.features:
        if isinstance(feature, NumericFeature):
            noise = rng.normal(0.0, BANDWIDTH * float(rows[feature.name].std()), size)
            sample[feature.name] = np.clip(sample[feature.name] + noise, feature.minimum, feature.maximum)
    records = sample.to_dict(orient="records")
    return [
        {str(k): (int(v) if k == "sex" else float(v)) for k, v in row.items()} for row in records
    ], targets


def shift_rows(
    rows: list[dict[str, Any]], shifts: dict[str, float], features: list[NumericFeature | CategoricalFeature]
) -> list[dict[str, Any]]:
    """Add ``shifts[name]`` to numeric features, clipped to the valid range (stays valid, drifts)."""
    bounds = {f.name: (f.minimum, f.maximum) for f in features if isinstance(f, NumericFeature)}
    unknown = sorted(set(shifts) - set(bounds))
    if unknown:
        raise ValueError(f"cannot shift {unknown}: not numeric features (numeric: {sorted(bounds)})")
    out = []
    for row in rows:
        new = dict(row)
        for name, delta in shifts.items():
            lo, hi = bounds[name]
            new[name] = float(min(hi, max(lo, row[name] + delta)))
        out.append(new)
    return out


def invalid_row(row: Mapping[str, Any], i: int) -> dict[str, Any]:
    """A request that must be rejected (cycling through missing, out of range, wrong type)."""
    bad = dict(row)
    kind = i % 3
    if kind == 0:
        bad.pop(next(iter(bad)))
    elif kind == 1:
        bad["age"] = 1000.0
    else:
        bad["bmi"] = "heavy"
    return bad


async def _run(
    url: str,
    payloads: list[bytes],
    rps: float,
    duration_s: float,
    report: LoadReport,
    on_tick: Callable[[LoadReport], None] | None,
    stop: threading.Event | None,
    seed: int,
    outcomes: Outcomes | None = None,
) -> list[float]:
    latencies: list[float] = []
    feedback_url = url.rsplit("/", 1)[0] + names.ENDPOINT_FEEDBACK
    pick = np.random.default_rng(seed + 1)
    total = max(1, int(rps * duration_s))
    interval = 1.0 / rps
    in_flight = 0
    limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=10.0, limits=limits, trust_env=False) as client:

        async def send_outcome(request_id: str, value: float, copies: int) -> None:
            await asyncio.sleep(outcomes.delay_s if outcomes else 0.0)
            body = json.dumps({"request_id": request_id, "outcome": value}).encode()
            for _ in range(copies):
                report.outcomes_sent += 1
                try:
                    answer = await client.post(
                        feedback_url, content=body, headers={"content-type": "application/json"}
                    )
                except httpx.HTTPError:
                    report.outcomes_failed += 1
                    continue
                if answer.status_code < 300:
                    report.outcomes_accepted += 1
                elif answer.status_code < 500:
                    report.outcomes_refused += 1
                else:
                    report.outcomes_failed += 1

        def maybe_outcome(response: httpx.Response, index: int) -> None:
            if outcomes is None or pick.random() >= outcomes.share:
                return
            request_id = response.headers.get("x-request-id")
            if not request_id:
                return
            n = report.outcomes_sent
            copies = 2 if outcomes.duplicate_every and n % outcomes.duplicate_every == 0 and n else 1
            task = asyncio.create_task(send_outcome(request_id, float(outcomes.targets[index]), copies))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        async def one(body: bytes, scheduled: float, index: int) -> None:
            nonlocal in_flight
            try:
                response = await client.post(url, content=body, headers={"content-type": "application/json"})
            except httpx.HTTPError as exc:
                report.failed += 1
                kind = type(exc).__name__
                report.failure_kinds[kind] = report.failure_kinds.get(kind, 0) + 1
                return
            finally:
                in_flight -= 1
            latencies.append((time.perf_counter() - scheduled) * 1000)
            code = response.status_code
            report.status_counts[str(code)] = report.status_counts.get(str(code), 0) + 1
            if code < 300:
                report.ok += 1
                version = response.json().get("model_version", "?")
                report.versions[version] = report.versions.get(version, 0) + 1
                maybe_outcome(response, index)
            elif code < 500:
                report.client_errors += 1
            else:
                report.server_errors += 1

        start = time.perf_counter()
        tasks: set[asyncio.Task[None]] = set()
        # Rows drawn at random (seeded): replaying them in a fixed cycle would alias with the router's
        # round robin and give the canary a biased subset of the inputs.
        order = np.random.default_rng(seed).integers(0, len(payloads), size=total)
        for i, index in enumerate(order):
            body = payloads[index]
            if stop is not None and stop.is_set():
                break
            scheduled = start + i * interval
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if in_flight >= MAX_IN_FLIGHT:
                report.dropped += 1
                continue
            in_flight += 1
            report.sent += 1
            task = asyncio.create_task(one(body, scheduled, int(index)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if on_tick is not None and i % max(1, int(rps)) == 0:
                on_tick(report)
        while tasks:  # answered requests may still add their outcomes
            await asyncio.gather(*list(tasks))
        report.achieved_rps = round(report.sent / max(1e-9, time.perf_counter() - start), 2)
    return latencies


def run_load(
    proxy_url: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    rps: float,
    duration_s: float,
    invalid_share: float = 0.0,
    on_tick: Callable[[LoadReport], None] | None = None,
    stop: threading.Event | None = None,
    report: LoadReport | None = None,
    seed: int = 0,
    outcomes: Outcomes | None = None,
) -> LoadReport:
    """Send ``rps`` requests per second for ``duration_s`` seconds to ``proxy_url``/predict.

    ``stop`` ends the run early; ``report`` (updated live) lets another thread watch the counts;
    ``outcomes``: send the true targets (one per row of ``rows``) of a share of answered requests to
    ``proxy_url``/feedback after a delay.
    """
    if rps <= 0 or duration_s <= 0:
        raise ValueError("rps and duration must be positive")
    if not 0.0 <= invalid_share < 1.0:
        raise ValueError("invalid share must be in [0, 1)")
    every = round(1 / invalid_share) if invalid_share > 0 else 0
    payloads = [
        json.dumps(invalid_row(row, i) if every and i % every == every - 1 else row).encode()
        for i, row in enumerate(rows)
    ]
    url = proxy_url.rstrip("/") + names.ENDPOINT_PREDICT
    report = report or LoadReport(target=url, rps=rps, duration_s=duration_s)
    if outcomes is not None and len(outcomes.targets) != len(rows):
        raise ValueError("outcomes need one target per row")
    latencies = asyncio.run(_run(url, payloads, rps, duration_s, report, on_tick, stop, seed, outcomes))
    if latencies:
        arr = np.array(latencies)
        report.latency_ms = {
            q: round(float(np.percentile(arr, p)), 2) for q, p in (("p50", 50), ("p90", 90), ("p99", 99))
        }
        report.latency_ms["max"] = round(float(arr.max()), 2)
    return report

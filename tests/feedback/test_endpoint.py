"""POST /feedback on the real model server (in process): accepted outcomes join the served prediction;
every kind of bad input gets a 4xx naming the field, is counted by reason, and stores nothing."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from prometheus_client import REGISTRY

from mlship import names
from mlship.feedback.validation import MAX_OUTCOMES_PER_REQUEST


def _predict(client, row, rid: str | None = None) -> tuple[str, float]:
    rid = rid or uuid.uuid4().hex
    response = client.post("/predict", json=row, headers={"x-request-id": rid})
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == rid
    return rid, response.json()["prediction"]


def _rejected(reason: str) -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        for s in metric.samples:
            if s.name == names.METRIC_FEEDBACK_REJECTED and s.labels.get(names.LABEL_REASON) == reason:
                total += s.value
    return total


def test_an_outcome_is_joined_to_the_served_prediction(feedback_client, valid_row):
    module, client = feedback_client
    rid, prediction = _predict(client, valid_row)
    response = client.post("/feedback", json={"request_id": rid, "outcome": prediction + 12.5})
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 1}
    stored = module.FEEDBACK.store.prediction(rid)
    assert (stored.model_version, stored.role, stored.prediction) == (module.VERSION, module.ROLE, prediction)
    assert module.FEEDBACK.store.outcome(rid) == prediction + 12.5


def test_a_list_of_outcomes_with_batch_rows_by_index(feedback_client, valid_row):
    module, client = feedback_client
    rid = uuid.uuid4().hex
    batch = client.post(
        "/predict_batch",
        json={"instances": [valid_row, {**valid_row, "bmi": 35.0}]},
        headers={"x-request-id": rid},
    )
    assert batch.status_code == 200
    single, _ = _predict(client, valid_row)
    body = [
        {"request_id": rid, "index": 0, "outcome": 100},
        {"request_id": rid, "index": 1, "outcome": 200.5},
        {"request_id": single, "outcome": 50},
    ]
    response = client.post("/feedback", json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 3}
    assert module.FEEDBACK.store.outcome(rid, 1) == 200.5


# (name, body builder given a fresh served request id, expected status, field, reason)
BAD_INPUTS = [
    ("not json", lambda rid: b"{'request_id': ", 400, "(body)", "bad_json"),
    ("a number", lambda rid: b"42", 400, "(body)", "wrong_shape"),
    ("empty list", lambda rid: b"[]", 400, "(body)", "empty_batch"),
    ("missing outcome", lambda rid: {"request_id": rid}, 400, "outcome", "missing_field"),
    ("missing request id", lambda rid: {"outcome": 1.0}, 400, "request_id", "missing_field"),
    ("outcome a string", lambda rid: {"request_id": rid, "outcome": "12"}, 400, "outcome", "wrong_type"),
    ("outcome a boolean", lambda rid: {"request_id": rid, "outcome": True}, 400, "outcome", "wrong_type"),
    ("outcome null", lambda rid: {"request_id": rid, "outcome": None}, 400, "outcome", "wrong_type"),
    ("request id a number", lambda rid: {"request_id": 7, "outcome": 1.0}, 400, "request_id", "wrong_type"),
    (
        "outcome NaN",
        lambda rid: f'{{"request_id": "{rid}", "outcome": NaN}}'.encode(),
        400,
        "outcome",
        "non_finite",
    ),
    (
        "outcome overflowing to infinity",
        lambda rid: f'{{"request_id": "{rid}", "outcome": 1e999}}'.encode(),
        400,
        "outcome",
        "non_finite",
    ),
    (
        "nested deeper than the recursion limit",
        lambda rid: b"[" * 100_000 + b"]" * 100_000,
        400,
        "(body)",
        "bad_json",
    ),
    (
        "outcome an integer beyond any float",
        lambda rid: f'{{"request_id": "{rid}", "outcome": 1{"0" * 400}}}'.encode(),
        400,
        "outcome",
        "non_finite",
    ),
    (
        "request id with a trailing newline",
        lambda rid: {"request_id": rid + "\n", "outcome": 1.0},
        400,
        "request_id",
        "bad_request_id",
    ),
    (
        "unknown field",
        lambda rid: {"request_id": rid, "outcome": 1.0, "label": 3},
        400,
        "(extra)",
        "unknown_field",
    ),
    (
        "request id with spaces",
        lambda rid: {"request_id": "a b", "outcome": 1.0},
        400,
        "request_id",
        "bad_request_id",
    ),
    (
        "negative index",
        lambda rid: {"request_id": rid, "outcome": 1.0, "index": -1},
        400,
        "index",
        "bad_index",
    ),
    (
        "unknown request id",
        lambda rid: {"request_id": "never-served", "outcome": 1.0},
        404,
        "request_id",
        "unknown_request_id",
    ),
    (
        "index past the request's rows",
        lambda rid: {"request_id": rid, "outcome": 1.0, "index": 3},
        404,
        "request_id",
        "unknown_request_id",
    ),
    (
        "too many outcomes",
        lambda rid: [{"request_id": rid, "outcome": 1.0}] * (MAX_OUTCOMES_PER_REQUEST + 1),
        400,
        "(body)",
        "batch_too_large",
    ),
    (
        "the same request twice in one batch",
        lambda rid: [{"request_id": rid, "outcome": 1.0}, {"request_id": rid, "outcome": 2.0}],
        409,
        "request_id",
        "duplicate",
    ),
]


@pytest.mark.parametrize(
    ("body", "status", "field", "reason"), [b[1:] for b in BAD_INPUTS], ids=[b[0] for b in BAD_INPUTS]
)
def test_bad_input_gets_a_4xx_naming_the_field_counted_and_stores_nothing(
    feedback_client, valid_row, body, status, field, reason
):
    module, client = feedback_client
    rid, _ = _predict(client, valid_row)
    payload = body(rid)
    content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    before = _rejected(reason)
    response = client.post("/feedback", content=content, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    problem = response.json()["problems"][0]
    assert (problem["field"], problem["reason"]) == (field, reason)
    assert field in response.json()["error"]
    assert _rejected(reason) > before
    assert module.FEEDBACK.store.outcome(rid) is None, "a refused submission stores nothing"


def test_a_second_outcome_for_a_request_is_a_409_and_the_first_stays(feedback_client, valid_row):
    module, client = feedback_client
    rid, _ = _predict(client, valid_row)
    assert client.post("/feedback", json={"request_id": rid, "outcome": 10}).status_code == 200
    again = client.post("/feedback", json={"request_id": rid, "outcome": 99})
    assert again.status_code == 409
    assert again.json()["problems"][0]["reason"] == "duplicate"
    assert module.FEEDBACK.store.outcome(rid) == 10


def test_a_hostile_body_gets_a_bounded_answer_counted_once(feedback_client, valid_row):
    """One object with 75,000 unknown keys, or 1,000 bad items: at most MAX_PROBLEMS problems are
    listed and each (reason, field) is counted once for the request, not once per key or item."""
    from mlship.feedback.validation import MAX_PROBLEMS

    module, client = feedback_client
    rid, _ = _predict(client, valid_row)
    many_keys = {"request_id": rid, "outcome": 1.0, **{f"k{i}": 0 for i in range(75_000)}}
    many_items = [{"request_id": rid, "outcome": "x"}] * MAX_OUTCOMES_PER_REQUEST
    for body, reason in ((many_keys, "unknown_field"), (many_items, "wrong_type")):
        before = _rejected(reason)
        response = client.post("/feedback", json=body)
        assert response.status_code == 400, response.text[:300]
        assert 1 <= len(response.json()["problems"]) <= MAX_PROBLEMS
        assert _rejected(reason) == before + 1
    assert module.FEEDBACK.store.outcome(rid) is None


def test_a_reused_request_id_is_refused_as_ambiguous(feedback_client, valid_row):
    """Two predictions answered under one X-Request-ID (the server echoes the client's): the outcome
    cannot be joined to either, so it is a 409 naming the id, counted, and nothing is stored."""
    module, client = feedback_client
    rid, first = _predict(client, valid_row)
    _, second = _predict(client, {**valid_row, "bmi": 40.0}, rid=rid)
    assert first != second
    before = _rejected("ambiguous_request_id")
    response = client.post("/feedback", json={"request_id": rid, "outcome": 100.0})
    assert response.status_code == 409, response.text
    assert response.json()["problems"][0]["reason"] == "ambiguous_request_id"
    assert "X-Request-ID" in response.json()["error"]
    assert _rejected("ambiguous_request_id") == before + 1
    assert module.FEEDBACK.store.outcome(rid) is None


def test_protocol_errors_are_4xx(feedback_client):
    _, client = feedback_client
    wrong_method = client.get("/feedback")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"
    assert client.post("/feedback", content=b"x=1", headers={"content-type": "text/plain"}).status_code == 415
    big = b"[" + b" " * (names.MAX_REQUEST_BYTES + 1) + b"]"
    assert (
        client.post("/feedback", content=big, headers={"content-type": "application/json"}).status_code == 413
    )


def test_a_locked_store_is_a_503_with_retry_after_counted(feedback_client, tmp_path):
    """The store's write lock held past the busy timeout (a long ingest, a stuck writer): the endpoint
    answers 503 with Retry-After, counted as store_unavailable, instead of a 500."""
    from starlette.testclient import TestClient

    from mlship.feedback.endpoint import FeedbackEndpoint
    from mlship.feedback.store import FeedbackStore, PredictionRow

    module, _ = feedback_client
    store = FeedbackStore(tmp_path / "fb.db", busy_timeout_s=0.2)
    store.record_predictions([PredictionRow("locked", 0, "v1", "stable", 1.0, time.time())])

    async def not_found(scope, receive, send):  # the BentoML app behind the route; never reached here
        raise AssertionError("POST /feedback must not reach the app")

    endpoint = FeedbackEndpoint(not_found, store=store, recorder=None, metrics=module.FEEDBACK.metrics)
    blocker = FeedbackStore(tmp_path / "fb.db")._conn()
    blocker.execute("BEGIN IMMEDIATE")
    before = _rejected("store_unavailable")
    client = TestClient(endpoint)  # not entered: no lifespan messages for the stand-in app
    response = client.post("/feedback", json={"request_id": "locked", "outcome": 2.0})
    blocker.execute("COMMIT")
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["problems"][0]["reason"] == "store_unavailable"
    assert _rejected("store_unavailable") == before + 1
    assert store.outcome("locked") is None


def test_an_outcome_sent_before_another_server_stored_its_prediction_is_joined(feedback_client, tmp_path):
    """The prediction was answered by another server (or worker) whose recorder writes it 0.15 s after
    the outcome arrives here: the endpoint looks again before answering 404."""
    import threading

    from starlette.testclient import TestClient

    from mlship.feedback.endpoint import FeedbackEndpoint
    from mlship.feedback.store import FeedbackStore, PredictionRow

    module, _ = feedback_client
    store = FeedbackStore(tmp_path / "fb.db")
    other_server = FeedbackStore(tmp_path / "fb.db")  # stands in for another process's recorder
    later = threading.Timer(
        0.15,
        lambda: other_server.record_predictions([PredictionRow("late", 0, "v1", "stable", 7.0, time.time())]),
    )

    async def app(scope, receive, send):  # the BentoML app behind the route; never reached here
        raise AssertionError("POST /feedback must not reach the app")

    client = TestClient(FeedbackEndpoint(app, store=store, recorder=None, metrics=module.FEEDBACK.metrics))
    later.start()
    response = client.post("/feedback", json={"request_id": "late", "outcome": 9.0})
    later.join()
    assert response.status_code == 200, response.text
    assert store.outcome("late") == 9.0

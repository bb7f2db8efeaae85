"""`mlship feedback ingest` and `report`: outcomes from files, all or nothing, online quality per version."""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

from mlship.cli import app
from mlship.errors import ConfigError, EnvironmentNotReady, ExitCode, RefusedError
from mlship.feedback.store import FeedbackStore, PredictionRow


@pytest.fixture
def db(tmp_path):
    store = FeedbackStore(tmp_path / "fb.db")
    now = time.time()
    store.record_predictions(
        [PredictionRow(f"s{i}", 0, "v1", "stable", 100.0, now) for i in range(4)]
        + [
            PredictionRow("c0", 0, "v2", "canary", 100.0, now),
            PredictionRow("b", 1, "v1", "stable", 80.0, now),
        ]
    )
    return tmp_path / "fb.db"


def _run(*args: str):
    return CliRunner().invoke(app, ["feedback", *args])


def test_ingest_a_csv_then_report_rmse_per_version_and_role(db, tmp_path):
    csv = tmp_path / "outcomes.csv"
    csv.write_text("request_id,outcome,index\ns0,110,\ns1,90,\nc0,130,\nb,80,1\n")
    result = _run("ingest", str(csv), "--db", str(db))
    assert result.exit_code == 0, result.output
    assert "stored 4 outcomes" in result.output
    report = _run("report", "--db", str(db), "--json")
    rows = {(r["model_version"], r["role"]): r for r in json.loads(report.output)["quality"]}
    assert rows[("v1", "stable")]["outcomes"] == 3
    assert rows[("v1", "stable")]["online_rmse"] == pytest.approx((200 / 3) ** 0.5, abs=1e-4)
    assert rows[("v2", "canary")]["online_mae"] == 30.0


def test_ingest_jsonl_is_all_or_nothing_unless_skip_refused(db, tmp_path):
    lines = tmp_path / "outcomes.jsonl"
    lines.write_text('{"request_id": "s2", "outcome": 1}\n{"request_id": "ghost", "outcome": 2}\n')
    refused = _run("ingest", str(lines), "--db", str(db))
    assert isinstance(refused.exception, RefusedError) and refused.exception.exit_code == ExitCode.REFUSED
    assert "1 unknown_request_id" in str(refused.exception) and "nothing was stored" in str(refused.exception)
    assert FeedbackStore(db).counts() == (6, 0)
    partial = _run("ingest", str(lines), "--db", str(db), "--skip-refused")
    assert partial.exit_code == 0, partial.output
    assert "stored 1 outcomes; refused 1 unknown_request_id" in partial.output
    again = _run("ingest", str(lines), "--db", str(db), "--skip-refused")
    assert isinstance(again.exception, RefusedError), "the second run stores nothing twice"
    assert FeedbackStore(db).counts() == (6, 1)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.csv", "id,value\nx,1\n", "header must name request_id and outcome"),
        ("bad.csv", "request_id,outcome\ns0,tall\n", "bad.csv:2: outcome: outcome must be a number"),
        ("bad.jsonl", '{"request_id": "s0", "outcome": 1}\n{oops\n', "bad.jsonl:2: not JSON"),
        (
            "bad.jsonl",
            '{"request_id": "s0", "outcome": NaN}\n',
            "bad.jsonl:1: outcome: outcome must be a finite",
        ),
        ("bad.txt", "s0 1\n", "expected a .csv or .jsonl file"),
    ],
)
def test_a_bad_file_is_a_usage_error_naming_line_and_field(db, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    result = _run("ingest", str(path), "--db", str(db))
    assert isinstance(result.exception, ConfigError) and result.exception.exit_code == ExitCode.USAGE
    assert message in str(result.exception)
    assert FeedbackStore(db).counts()[1] == 0


def test_a_missing_store_names_the_next_step(tmp_path):
    result = _run("report", "--db", str(tmp_path / "none.db"))
    assert isinstance(result.exception, EnvironmentNotReady)
    assert "mlship local up" in str(result.exception)


def test_load_refuses_an_outcome_delay_under_one_second():
    """A sooner outcome may reach a server before the prediction is stored: refused before any traffic."""
    result = CliRunner().invoke(app, ["load", "--outcome-delay", "0.5", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 2, result.output
    assert "--outcome-delay" in result.output

"""The campaign's parsers and report writer, on recorded tool output (no processes)."""

from __future__ import annotations

import json

import pytest

from devtools.reliability import report, saturation, scans
from devtools.reliability.result import CaseResult, skipped, verdict

WRK_OUTPUT = """Running 8s test @ http://127.0.0.1:51339/predict
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   703.46ms  212.73ms   1.04s    62.02%
    Req/Sec    31.08     23.68   127.00     72.22%
  Latency Distribution
     50%  749.90ms
     75%  877.20ms
     90%  967.23ms
     99%    1.03s
  258 requests in 6.05s, 74.07KB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 4
Requests/sec:     42.64
Transfer/sec:     12.24KB
MLSHIP_STATUS 200=254 503=3 400=1
"""


def test_wrk_report_is_parsed_with_statuses_and_socket_errors():
    result = saturation.parse_wrk(WRK_OUTPUT)
    assert result.requests == 258
    assert result.seconds == pytest.approx(6.05)
    assert result.rps == pytest.approx(42.64)
    assert result.latency_ms == {"p50": 749.9, "p75": 877.2, "p90": 967.23, "p99": 1030.0}
    assert result.status_counts == {200: 254, 503: 3, 400: 1}
    assert result.server_errors == 3
    assert result.unanswered == 5


def test_unexpected_wrk_output_is_an_error_naming_it():
    with pytest.raises(ValueError, match="unexpected wrk output"):
        saturation.parse_wrk("wrk: connection refused\n")


def test_bandit_finding_is_justified_only_by_the_same_rule_with_a_reason(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        'A = "/tmp"  # noqa: S108 - an emptyDir, not a shared /tmp\n'
        'B = "/tmp"  # noqa: S108\n'
        'C = "/tmp"  # noqa: S105 - the wrong rule for this line\n'
    )
    assert scans._justified(source, 1, "B108")
    assert not scans._justified(source, 2, "B108")
    assert not scans._justified(source, 3, "B108")


@pytest.mark.parametrize(
    ("line", "identifier"),
    [
        ('  "sha256": "8cc217c548371480b2ff1e730f78622424a0ecad801a25606f35fa92c185dbfa",', True),
        ('  "canary_version": "d0fbceec5456",', True),
        (
            "api_token: 8cc217c548371480b2ff1e730f78622424a0ecad801a25606f35fa92c185dbfa",
            False,
        ),  # pragma: allowlist secret
        ('AWS_SECRET = "8cc217c548371480b2ff1e730f78622424a0ecad"', False),  # pragma: allowlist secret
    ],
)
def test_only_hex_values_labelled_as_digests_or_versions_count_as_identifiers(tmp_path, line, identifier):
    path = tmp_path / "f.txt"
    path.write_text(line + "\n")

    class Hit:
        line_number = 1

    assert scans._labelled_identifier(path, Hit()) is identifier


def test_report_is_written_as_json_and_markdown(tmp_path):
    rows: list[CaseResult] = [
        verdict("api", "pipes | in a name", expected="4xx", observed="400", ok=True, codes={"a": 400}),
        verdict("load", "saturation", expected="0 5xx", observed="3 5xx", ok=False),
        skipped("faults", "two stable servers", expected="0 lost", why="one slot only"),
    ]
    written = report.Report(mode="short", results=rows, seconds=12.0)
    json_path, md_path = report.write(written, tmp_path / "out" / "reliability.json")
    data = json.loads(json_path.read_text())
    assert data["counts"] == {"pass": 1, "fail": 1, "skip": 1}
    assert data["cases"][0]["figures"] == {"codes": {"a": 400}}
    table = md_path.read_text().splitlines()
    assert table[4] == "| area | case | expected | observed | result |"
    assert "| api | pipes \\| in a name | 4xx | 400 | pass |" in table
    assert "| load | saturation | 0 5xx | 3 5xx | FAIL |" in table
    assert written.failed == [rows[1]]

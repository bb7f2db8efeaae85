"""The shortened reliability campaign (`python -m devtools.reliability --short`) on a real local environment.

One module-scoped run: BentoML servers behind HAProxy with Prometheus (conftest.make_local_env, free
ports), wrk saturation, faults during a real canary rollout, bad input to the API and the CLI, and the
security scans (checkov from .venv-checkov, bandit, detect-secrets). Each test asserts that every case
of one area passed, naming the failing case with what was observed. Figures are counts and ratios
(lost requests, 5xx, memory ratio), never timings: other work shares the CPU.

Related single-fault tests that are not repeated here: tests/integration/test_canary_local.py (weight
changes and promotion under traffic drop nothing, a killed canary is rolled back, a corrupted state is
left untouched, the runner and the router killed mid-rollout (issue 16)),
tests/ansible/test_ansible_preflight.py (every role's variables), tests/service
(every validation error in process).
"""

from __future__ import annotations

import json

import pytest

from devtools.reliability import campaign, report

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Every case the short campaign must report, by area (a case that silently disappears fails too).
EXPECTED_CASES = {
    "load": ["saturation through the proxy", "model server memory under saturation"],
    "faults": [
        "Prometheus stopped during canary analysis",
        "proxy configuration reloaded under load",
        "canary server killed mid-rollout",
        "every process gone at once (reboot) (bad version)",
        "one of two stable servers killed",
    ],
    "api": [
        "NaN and infinite numbers",
        "wrong types",
        "missing and extra fields",
        "malformed bodies",
        "deeply nested JSON",
        "wrong content type",
        "batch limits",
        "wrong method or path",
        "request size limit at the proxy",
        "request size limit at the model server",
        "schemathesis run",
        "unknown field names as metric labels",
        "server still ready after the bad input",
    ],
    "cli": [
        "unknown model version",
        "corrupted canary state file",
        "invalid mlship.yaml",
        "invalid Pulumi stack config",
        "invalid inventory variable",
    ],
    "scans": [
        "bandit",
        "secret scan",
        "checkov on the generated Dockerfile",
        "checkov on rendered manifests",
        "containers run as non-root",
        "request size limit documented",
        "ansible-lint production",
    ],
}
# Cases the environment cannot run (reported as skip with the reason, never as a pass).
KNOWN_SKIPS = {"ansible-lint production"}


@pytest.fixture(scope="module")
def campaign_report(models, tmp_path_factory, local_env_factory):
    from mlship.model.releases import Releases

    handle = local_env_factory(tmp_path_factory.mktemp("reliability") / "state")
    handle.env.config = handle.config = campaign.campaign_config(handle.config)  # two stable servers
    baseline, candidate = models["baseline"].version, models["candidate"].version
    handle.env.up(baseline)
    Releases.load().record(baseline, "initial")
    try:
        result = campaign.run_campaign(
            handle.env,
            campaign.Models(
                name=models["baseline"].name,
                baseline=baseline,
                candidate=candidate,
                bad=models["buggy"].version,
            ),
            campaign.SHORT,
            progress=print,
        )
    finally:
        handle.env.down()
    out = tmp_path_factory.mktemp("reliability-report") / "reliability.json"
    report.write(result, out)
    report.print_table(result)
    return result, out


def _rows(campaign_report, area):
    result, _ = campaign_report
    return [r for r in result.results if r.area == area]


@pytest.mark.parametrize("area", list(EXPECTED_CASES))
def test_every_case_of_the_area_passes(campaign_report, area):
    rows = _rows(campaign_report, area)
    names = [r.case for r in rows]
    for expected in EXPECTED_CASES[area]:
        assert any(name.startswith(expected) for name in names), f"case {expected!r} missing from {names}"
    failed = [f"{r.case}: expected {r.expected}; observed {r.observed}" for r in rows if r.status == "fail"]
    assert not failed, "\n".join(failed)
    for r in rows:
        if r.status == "skip":
            assert r.case in KNOWN_SKIPS, f"unexpected skip: {r.case}: {r.observed}"


def test_no_request_lost_to_any_fault_but_the_router_s_own_downtime(campaign_report):
    rows = {r.case: r for r in _rows(campaign_report, "faults") if r.status != "skip"}
    sent = {case: row.figures.get("sent", 0) for case, row in rows.items()}
    assert all(n > 0 for n in sent.values()), f"every fault ran under traffic: {sent}"
    # A crash that takes the router down (a reboot) loses what users send until it is back, nothing
    # after; a bad release's canary answers 5xx by design, so only requests without answer count.
    cost = {case: row.figures.get("lost_to_crash", row.figures.get("lost")) for case, row in rows.items()}
    down = {case for case, row in rows.items() if row.figures.get("router_down")}
    assert down == {"every process gone at once (reboot) (bad version)"}
    assert all(cost[case] == 0 for case in rows if case not in down), cost
    assert all(cost[case] > 0 and rows[case].figures["lost_after_recovery"] == 0 for case in down), cost


def test_a_reboot_mid_rollout_is_restored_and_the_bad_version_still_rolled_back(campaign_report):
    (row,) = [r for r in _rows(campaign_report, "faults") if "outcome" in r.figures]
    figures = row.figures
    assert (figures["outcome"], figures["expected_outcome"]) == ("rolled_back", "rolled_back"), row.observed
    assert figures["restored_s"] is not None and figures["first_verdict_s"] is not None, row.observed
    # `local up` found the router gone and restored the rollout's canary and weight; the resumed
    # runner judged on counters that all started over, and still saw the bad version's errors.
    restored = [r for r in figures["reconciliations"] if r["by"] == "local up"]
    assert [r["result"] for r in restored] == ["repaired"], figures["reconciliations"]
    assert restored[0]["found"].startswith("routing unreadable")
    assert restored[0]["desired"]["weight"] > 0 and restored[0]["desired"]["canary_version"]


def test_saturation_figures_are_reported_and_memory_stays_flat(campaign_report):
    load_row, memory_row = _rows(campaign_report, "load")
    figures = load_row.figures
    assert figures["requests"] > 0 and figures["rps"] > 0
    assert {"p50", "p99"} <= set(figures["latency_ms"])
    assert sum(n for code, n in figures["status_counts"].items() if code.startswith("5")) == 0
    ratio = memory_row.figures["rss_after"] / memory_row.figures["rss_before"]
    assert ratio <= 1.2, f"server memory grew x{ratio:.2f} under saturation"


def test_report_files_hold_the_table(campaign_report):
    result, json_path = campaign_report
    data = json.loads(json_path.read_text())
    assert data["mode"] == "short"
    assert [c["case"] for c in data["cases"]] == [r.case for r in result.results]
    assert data["counts"]["pass"] + data["counts"]["fail"] + data["counts"]["skip"] == len(result.results)
    markdown = json_path.with_suffix(".md").read_text()
    assert markdown.count("\n| ") == len(result.results) + 2  # header, separator, one row per case
    for r in result.results:
        assert r.case.replace("|", "\\|") in markdown

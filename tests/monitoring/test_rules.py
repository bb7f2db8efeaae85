"""The generated Prometheus rules: valid for promtool, committed as generated, each alert unit-tested."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from monitoring_helpers import PROMTOOL_TESTS, REPO
from scipy import stats

from mlship.config import Config, DriftConfig, SLOConfig
from mlship.errors import ConfigError
from mlship.monitoring import committed, rules, slo
from mlship.monitoring.rule_types import runbook_slug

RUNBOOKS = REPO / "docs" / "runbooks"
TEST_FILES = sorted(PROMTOOL_TESTS.glob("*.test.yml"))


def _check(promtool: str, *files: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [promtool, "check", "rules", *map(str, files)], capture_output=True, text=True, check=False
    )


def test_committed_files_are_the_generator_output():
    stale = committed.stale_files()
    assert not stale, f"regenerate with `python -m mlship.monitoring generate`: {[str(p) for p in stale]}"


@pytest.mark.parametrize("path", sorted(committed.RULES_DIR.glob("*.yml")), ids=lambda p: p.name)
def test_promtool_accepts_every_rule_file(promtool, path):
    result = _check(promtool, path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_rules_generated_from_a_non_default_config(promtool, tmp_path):
    config = Config(
        slo=SLOConfig(availability=0.999, latency_threshold_seconds=0.25, latency_target=0.95),
        drift=DriftConfig(psi_threshold=0.1, p_value=0.001, max_model_age_days=7),
    )
    files = rules.write_rule_files(tmp_path, config)
    result = _check(promtool, *files)
    assert result.returncode == 0, result.stdout + result.stderr
    text = "\n".join(p.read_text() for p in files)
    assert 'le="0.25"' in text  # the latency SLI counts the threshold's bucket
    assert "mlship:feature_psi:1h > 0.1" in text
    assert f"(0 * (mlship:feature_reference:bins == 10) + {float(stats.chi2.isf(0.001, 9)):.10g})" in text
    assert "mlship:model_age:seconds > 604800" in text
    assert 'slo:sli_error:ratio_rate1h{slo="model-api-availability"} > 0.0144' in text  # 14.4 x 0.1%


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(promtool, path):
    result = subprocess.run(
        [promtool, "test", "rules", path.name], cwd=path.parent, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _cases() -> dict[str, dict[str, int]]:
    """alert -> {"fires": n, "quiet": n} over every promtool test file."""
    cases: dict[str, dict[str, int]] = {}
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for check in test.get("alert_rule_test", []):
                counts = cases.setdefault(check["alertname"], {"fires": 0, "quiet": 0})
                counts["fires" if check.get("exp_alerts") else "quiet"] += 1
    return cases


ALERT_NAMES = sorted(alert.name for alert in rules.alerts())


@pytest.mark.parametrize("alert", ALERT_NAMES)
def test_alert_fires_and_stays_quiet(promtool, alert, tmp_path):
    """Each alert on its own: its promtool cases (one that fires, one that must not) and nothing else.

    One case per alert is the evidence `mlship score` counts for that alert's item, so a change to one
    alert fails its own case, not a file of unrelated ones.
    """
    kept, fires, quiet = [], 0, 0
    for path in TEST_FILES:
        spec = yaml.safe_load(path.read_text())
        for test in spec["tests"]:
            own = [c for c in test.get("alert_rule_test", []) if c["alertname"] == alert]
            if not own:
                continue
            fires += sum(1 for c in own if c.get("exp_alerts"))
            quiet += sum(1 for c in own if not c.get("exp_alerts"))
            files = [str((path.parent / f).resolve()) for f in spec["rule_files"]]
            body = {k: v for k, v in test.items() if k not in ("alert_rule_test", "promql_expr_test")}
            kept.append(
                (
                    {"rule_files": files, "evaluation_interval": spec.get("evaluation_interval", "1m")},
                    {**body, "alert_rule_test": own},
                )
            )
    assert fires and quiet, f"{alert}: {fires} firing and {quiet} quiet promtool cases"
    for index, (head, test) in enumerate(kept):
        file = tmp_path / f"{alert}-{index}.test.yml"
        file.write_text(yaml.safe_dump({**head, "tests": [test]}, sort_keys=False), encoding="utf-8")
        result = subprocess.run(
            [promtool, "test", "rules", str(file)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_case_that_fires_and_one_that_must_not():
    cases = _cases()
    names = {alert.name for alert in rules.alerts()}
    counts = {name: cases.get(name, {"fires": 0, "quiet": 0}) for name in names}
    missing = {name: c for name, c in counts.items() if c["fires"] == 0 or c["quiet"] == 0}
    assert not missing, f"alerts without a firing and a quiet promtool case: {missing}"
    assert set(cases) <= names, f"promtool tests name unknown alerts: {set(cases) - names}"


def test_every_rule_file_is_loaded_by_a_promtool_test():
    loaded = set()
    for path in TEST_FILES:
        loaded |= {(path.parent / f).resolve() for f in yaml.safe_load(path.read_text())["rule_files"]}
    assert loaded == {p.resolve() for p in committed.RULES_DIR.glob("*.yml")}


def test_alerts_are_unique_with_severity_and_a_runbook():
    alerts = [rule for group in rules.rule_groups() for rule in group["rules"] if "alert" in rule]
    names = [a["alert"] for a in alerts]
    assert len(names) == len(set(names))
    for alert in alerts:
        assert alert["labels"]["severity"] in ("page", "ticket"), alert["alert"]
        runbook = RUNBOOKS / f"{runbook_slug(alert['alert'])}.md"
        assert runbook.is_file(), f"{alert['alert']}: no runbook {runbook}"
        assert alert["annotations"]["runbook_url"].endswith(f"/docs/runbooks/{runbook.name}")
        assert {"summary", "description"} <= set(alert["annotations"])


def test_every_runbook_belongs_to_an_alert():
    pages = {p.stem for p in RUNBOOKS.glob("*.md")} - {"README", "incident-response"}
    assert pages == {runbook_slug(a.name) for a in rules.alerts()}


def test_runbook_base_url_is_configurable():
    groups = rules.rule_groups(
        runbook_base_url="https://git.example.com/ml/mlship/-/blob/main/docs/runbooks/"
    )
    urls = [r["annotations"]["runbook_url"] for g in groups for r in g["rules"] if "alert" in r]
    assert urls and all(
        u.startswith("https://git.example.com/ml/mlship/-/blob/main/docs/runbooks/") for u in urls
    )
    assert all("runbooks//" not in u for u in urls)


def test_burn_rate_alerts_follow_the_sre_workbook():
    availability = next(s for s in slo.model_api_slos(SLOConfig()) if s.name == "model-api-availability")
    fast = slo.slo_group(availability).alerts[0]
    assert fast.severity == "page"
    for long, short, factor in (("1h", "5m", 14.4), ("6h", "30m", 6)):
        limit = f"{factor * 0.005:.10g}"
        assert f'{slo.ERROR_RATIO}{long}{{slo="model-api-availability"}} > {limit}' in fast.expr
        assert f'{slo.ERROR_RATIO}{short}{{slo="model-api-availability"}} > {limit}' in fast.expr
    slow = slo.slo_group(availability).alerts[1]
    assert slow.severity == "ticket"
    assert "ratio_rate1d" in slow.expr and "ratio_rate2h" in slow.expr
    assert "ratio_rate3d" in slow.expr and "ratio_rate6h" in slow.expr


def test_a_latency_threshold_that_is_no_histogram_bucket_is_refused():
    with pytest.raises(ConfigError, match=r"slo.latency_threshold_seconds: 0.12 is not a bucket bound"):
        rules.rule_groups(Config(slo=SLOConfig(latency_threshold_seconds=0.12)))


def test_write_rule_files_replaces_files_and_leaves_others(tmp_path):
    (tmp_path / "slo.yml").write_text("stale")
    (tmp_path / "site.yml").write_text("groups: []\n")  # a user's own rules stay
    written = rules.write_rule_files(tmp_path)
    assert sorted(p.name for p in written) == sorted(rules.rule_files())
    assert (tmp_path / "site.yml").read_text() == "groups: []\n"
    assert yaml.safe_load((tmp_path / "slo.yml").read_text())["groups"][0]["name"].startswith("mlship-slo-")
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_rule_groups_match_the_files():
    from_files = [g for text in rules.rule_files().values() for g in yaml.safe_load(text)["groups"]]
    assert sorted(from_files, key=lambda g: g["name"]) == sorted(rules.rule_groups(), key=lambda g: g["name"])


def test_chi_square_critical_values_are_scipy_s_and_the_approximation_is_close():
    text = rules.rule_files()["model-data.yml"]
    for bins in (2, 10, 21):
        assert f"== {bins}) + {float(stats.chi2.isf(0.01, bins - 1)):.10g})" in text
    # beyond the table: Wilson-Hilferty, as written in the rule, within 0.5% of the exact value
    z = stats.norm.isf(0.01)
    for df in range(21, 200):
        approx = df * (1 - 2 / (9 * df) + z * (2 / (9 * df)) ** 0.5) ** 3
        assert abs(approx / stats.chi2.isf(0.01, df) - 1) < 0.005


def test_duration_buckets_include_common_slo_thresholds():
    assert {0.05, 0.1, 0.25, 0.5, 1.0} <= set(slo.DURATION_BUCKETS)
    assert list(slo.DURATION_BUCKETS) == sorted(set(slo.DURATION_BUCKETS))

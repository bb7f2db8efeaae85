"""Monitoring as code: Prometheus rules generated from mlship.yaml, Grafana dashboards, runbooks.

One source serves both environments: the local Prometheus loads the rule files written by
``rules.write_rule_files`` and the Pulumi program turns ``rules.rule_groups()`` into PrometheusRules
and ``dashboards.dashboards()`` into Grafana ConfigMaps.
"""

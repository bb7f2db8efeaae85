"""`mlship score`: the ML Test Score (Breck et al., 2017) of a project, from the evidence it declares.

``rubric.yaml`` (shipped) holds the paper's 28 tests; the project's evidence map (``mlship-score.yaml``,
``evidence_map``) says which of its tests, figures, benchmarks, live checks and procedures evidence each;
``evidence`` checks them against the commit (``provenance``, ``pytest_plugin``, ``artifacts``), a full
test run and the live Prometheus; ``scoring`` applies the paper's rules with proxies at 0.5; ``report``
renders a table, JSON or HTML. Reference: docs/score.md.
"""

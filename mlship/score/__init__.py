"""`mlship score`: the ML Test Score (Breck et al., 2017) of this system, computed from real evidence.

``rubric.yaml`` maps each of the paper's 28 tests to the automated checks and documented procedures that
cover it; ``evidence`` reads the latest test run (JUnit XML), figure and benchmark files and the live
Prometheus; ``scoring`` applies the paper's rules; ``report`` renders a table, JSON or HTML.
"""

"""The repository's own self-checks: benchmarks, the reliability campaign, scans, the dependency review.

Run by ``make`` targets (``make bench``, ``make reliability``, ``make mutation``); never imported by the
``mlship`` package, which holds only what users run on their own models and clusters.
"""

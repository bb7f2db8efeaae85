"""Checks behind the ML Test Score rubric that the quality gate or a test suite runs on real models.

Each module measures one thing on the real model and the real data and returns its figures; the tests
under ``tests/mltest/`` assert on them and record them next to the JUnit report (``figures``), and
``mlship score`` reads both.
"""

"""Canary releases: state, traffic backends, analysis from Prometheus, the automatic runner."""

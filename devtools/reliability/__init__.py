"""Reliability and security campaign: load, faults, bad input and scans, summed up in one table.

`make reliability` brings up its own local environment (free loopback ports, its own state folder),
drives it to saturation, injects faults while a canary rollout runs, sends bad input to every
interface, runs the security scans, and writes the table of cases (expected, observed, pass/fail) to
a JSON and a Markdown report.
"""

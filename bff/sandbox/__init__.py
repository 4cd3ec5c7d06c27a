"""Simulated upstream providers for the embedded default, the tests and the benchmarks.

Real HTTP apps that speak the contracts in DESIGN.md, with fictional people whose data is
laid out relative to today, and an admin API to add latency, errors, timeouts and
malformed bodies.
"""

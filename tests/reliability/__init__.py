"""Reliability suites (issue 7): faults, concurrency, hostile input and soak; bench/reliability.py
runs them with the extended variants and prints the report."""

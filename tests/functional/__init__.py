"""Functional tests: vnet against the real kernel, as root (issue 3)."""

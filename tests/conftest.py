"""Shared pytest configuration for vnet's tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Tiers that create namespaces, devices, OVS daemons or guests: as root they run only on the
# private host of tools/sandbox.py (tools/test.sh uses it), never beside the host's own labs.
HOST_TIERS = ("functional", "ovs", "reliability", "vm", "kernel", "netlink", "sriov")


def pytest_runtest_setup(item: pytest.Item) -> None:
    tier = item.path.relative_to(REPO / "tests").parts[0]
    # a guest kernel (the guest tier) is a private host too
    private = "1" in (os.environ.get("VNET_TEST_SANDBOX"), os.environ.get("VNET_IN_GUEST"))
    if tier in HOST_TIERS and os.geteuid() == 0 and not private:
        pytest.fail(f"tests/{tier} changes the host's network: run it through ./tools/test.sh or "
                    f"`.venv/bin/python tools/sandbox.py .venv/bin/pytest ...` (private namespaces)",
                    pytrace=False)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true",
                     help="Rewrite golden files from the current output instead of comparing.")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture
def repo() -> Path:
    return REPO

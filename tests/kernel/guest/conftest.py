"""Tests that run only inside the guest kernel that tests/kernel/test_guest_tier.py boots.

The host side sets VNET_IN_GUEST=1 in the guest; anywhere else (the normal host run) every test
in this directory is skipped at collection, before any fixture runs.

Fixtures: `kernel_modules` loads openvswitch and 8021q (and fails clearly when it cannot);
`ovs` starts one private ovsdb-server + ovs-vswitchd (kernel datapath) for the whole session.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from vnet.host import ovs_daemon
from vnet.host.ovs_daemon import OvsPaths

HERE = Path(__file__).resolve().parent
IN_GUEST = os.environ.get("VNET_IN_GUEST") == "1"
# Short: unix socket paths are limited to 107 bytes. /run is a fresh tmpfs in the guest.
OVS_RUN_DIR = "/run/vnet-guest-ovs"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IN_GUEST:
        return
    skip = pytest.mark.skip(reason="runs only inside the guest kernel (VNET_IN_GUEST=1); "
                                   "tests/kernel/test_guest_tier.py boots it and runs these there")
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def kernel_modules() -> None:
    """The kernel datapath and 802.1Q: modules of the guest kernel, loaded now."""
    done = subprocess.run(["modprobe", "-a", "openvswitch", "8021q"], capture_output=True, text=True,
                          check=False, timeout=120)
    if done.returncode != 0:
        pytest.fail(f"`modprobe -a openvswitch 8021q` failed with {done.returncode} in guest kernel "
                    f"{os.uname().release}: {(done.stderr or done.stdout).strip()}\n"
                    f"(the modules come from Debian's linux-image-amd64 under /lib/modules; "
                    f"tools/bootstrap.sh installs it)", pytrace=False)


@pytest.fixture(scope="session")
def ovs(kernel_modules: None) -> Iterator[OvsPaths]:
    """A private Open vSwitch for the session (its own run dir, database and socket)."""
    paths = OvsPaths.private(OVS_RUN_DIR)
    ovs_daemon.start(paths)
    try:
        yield paths
    finally:
        ovs_daemon.stop(paths)


def run(*argv: str, timeout: float = 60) -> str:
    """Run a program (no shell); its stdout, or an AssertionError with everything it said."""
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {done.returncode}\n"
                             f"stdout: {done.stdout}\nstderr: {done.stderr}")
    return done.stdout

"""Fixtures for the OVS tests: one private ovsdb-server + ovs-vswitchd for the session.

The private instance has its own run directory, database, OVSDB socket and unixctl sockets
(`vnet.host.ovs_daemon.start(OvsPaths.private(dir))`); every test passes its remote to vnet
(`ovsdb=` / `--ovsdb`). A system OVS is never used: VNET_OVSDB points at a socket that does not
exist, so anything that forgot the remote fails instead of falling back to the system socket.
The daemons are stopped by pid at the end of the session, also when a test failed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from ovslib import Labs, PrivateOvs, stop_private

from vnet.host import ovs_daemon

PROGRAMS = ("ovsdb-server", "ovs-vswitchd", "ovsdb-tool", "ovs-vsctl", "ovs-appctl")


def _found(program: str) -> bool:
    return shutil.which(program) is not None or any(
        os.access(f"{d}/{program}", os.X_OK) for d in ("/usr/sbin", "/usr/bin"))


def _cannot_run() -> str | None:
    if os.geteuid() != 0:
        return "OVS tests start their own ovs-vswitchd and change the host's network: they need root"
    missing = [p for p in PROGRAMS if not _found(p)]
    if missing:
        return f"Open vSwitch programs missing: {', '.join(missing)} ({ovs_daemon.INSTALL_HINT})"
    if not os.path.exists(ovs_daemon.SCHEMA):
        return f"the OVS database schema {ovs_daemon.SCHEMA} is missing ({ovs_daemon.INSTALL_HINT})"
    return None


@pytest.fixture(scope="session")
def ovs() -> Iterator[PrivateOvs]:
    why = _cannot_run()
    if why is not None:
        pytest.skip(why)
    run_dir = tempfile.mkdtemp(prefix="vnet-ovs-", dir="/tmp")  # short: unix socket paths
    paths = ovs_daemon.OvsPaths.private(run_dir)
    try:
        ovs_daemon.start(paths)
        private = PrivateOvs(paths)
        assert private.bridges() == [], "a fresh private OVS has no bridges"
        yield private
    finally:
        # Bridges left by a failed test would leave their (persistent) netdev TAP devices behind
        # when vswitchd stops; everything in the private database is the tests' own.
        bridges: list[str] = []
        if ovs_daemon.answering(paths.socket):
            leftover = PrivateOvs(paths)
            bridges = leftover.vsctl("list-br", check=False).stdout.split()
            for bridge in bridges:
                leftover.vsctl("--if-exists", "del-br", bridge, check=False)
        stop_private(paths)
        for bridge in bridges:  # if vswitchd could not remove a bridge's TAP in time
            if os.path.exists(f"/sys/class/net/{bridge}"):
                subprocess.run(["ip", "link", "del", bridge], check=False, capture_output=True)
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(autouse=True)
def _no_system_ovs(ovs: PrivateOvs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs against the private OVS only (and is skipped with it)."""
    monkeypatch.setenv("VNET_OVSDB", f"unix:{tmp_path}/not-the-private-ovs.sock")


@pytest.fixture
def labs(ovs: PrivateOvs, tmp_path: Path) -> Iterator[Labs]:
    made = Labs(ovs, tmp_path)
    try:
        yield made
    finally:
        problems = made.cleanup()
        assert not problems, problems


@pytest.fixture
def hand_bridges(ovs: PrivateOvs) -> Iterator[list[str]]:
    """OVS bridges a test makes by hand (as an administrator would); deleted at its end."""
    made: list[str] = []
    try:
        yield made
    finally:
        for name in made:
            ovs.vsctl("--if-exists", "del-br", name, check=False)

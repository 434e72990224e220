"""Fixtures for the OVS tests: one private ovsdb-server + ovs-vswitchd for the session.

The private instance has its own run directory, database, OVSDB socket and unixctl sockets
(`vnet.host.ovs_daemon.start(OvsPaths.private(dir))`); every test passes its remote to vnet
(`ovsdb=` / `--ovsdb`). A system OVS is never used: VNET_OVSDB points at a socket that does not
exist, so anything that forgot the remote fails instead of falling back to the system socket.
The daemons are stopped by pid at the end of the session, also when a test failed. The
instance is lived in: another lab and a bridge made by hand stay up in it for the whole session
and must be untouched at its end (`resident`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from ovslib import LabFiles, Labs, PrivateOvs, stop_private, unique

from vnet import api
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
        with resident(private, Path(run_dir)):
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


RESIDENT = """
name: $lab
switches:
  $b1: {type: ovs}
nodes:
  h1: {kind: netns}
  h2: {kind: netns}
links:
  - {endpoints: [h1:eth0, $b1], vlan: 10, ip: 198.18.99.1/24}
  - {endpoints: [h2:eth0, $b1], vlan: 10, ip: 198.18.99.2/24}
"""


@contextlib.contextmanager
def resident(private: PrivateOvs, directory: Path) -> Iterator[None]:
    """The private OVS is lived in: another vnet lab stays up and a bridge made by hand (no vnet
    mark) stays in it while every test runs. Afterwards both must be as they were: nothing a test
    did (apply, destroy, drift repairs of its own lab) may reach them."""
    files = LabFiles(unique("res"), directory)
    lab = files.load(files.write(RESIDENT))
    hand_made = unique("hand")
    private.vsctl("add-br", hand_made, "--", "set", "Bridge", hand_made, "datapath_type=netdev")
    api.apply(lab, ovsdb=private.remote)
    rows = sorted(private.lab_rows(files.name))
    try:
        yield
        assert hand_made in private.bridges(), "a test removed a bridge vnet does not own"
        assert sorted(private.lab_rows(files.name)) == rows, "a test changed another lab's OVS rows"
        assert api.plan(lab, ovsdb=private.remote).empty, "a test disturbed another lab"
        assert api.verify(lab, ovsdb=private.remote).ok, "another lab no longer carries traffic"
    finally:
        api.destroy(files.name, wait=True, ovsdb=private.remote)
        private.vsctl("--if-exists", "del-br", hand_made, check=False)


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

"""Fixtures for the reliability suites: root, a private Open vSwitch, labs that are always destroyed.

The private OVS: two ovs-vswitchd with the userspace datapath on one host fight over the
`ovs-netdev` device (the second one's ports get no OpenFlow port). tests/ovs keeps its private
instance for the whole pytest session, so when it already runs in this session it is reused;
otherwise each module starts its own (own run directory, database and sockets) and stops it by
pid at the module's end, so that a later tests/ovs can start its own. The suite runs in
tools/sandbox.py's namespaces, so the host's own ovs-vswitchd is out of sight; another one in
the same sandbox is waited for (VNET_OVS_WAIT seconds, default 900), never touched. VNET_OVSDB
points at a socket that does not exist, so nothing can fall back to a system OVS.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vnet.host import ovs_daemon

from .rellib import PrivateOvs, RelLabs

PROGRAMS = ("ovsdb-server", "ovs-vswitchd", "ovsdb-tool", "ovs-vsctl", "ovs-appctl")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "extended: slow variant, run by bench/reliability.py "
                                       "(VNET_RELIABILITY_FULL=1)")


@pytest.fixture
def as_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("reliability tests change the host's network: they need root")


def _fixture_definitions(request: pytest.FixtureRequest, name: str) -> list[Any]:
    """Every definition of fixture `name` in this session, wherever its conftest is (pytest keeps
    them in private maps whose names changed across versions: 7/8 `_arg2fixturedefs`, 9 keyed
    by node id)."""
    manager = getattr(request, "_fixturemanager", None)
    found: list[Any] = []
    for attribute in ("_arg2fixturedefs", "_arg2nodeid2fixturedefs", "_arg2node2fixturedefs"):
        entry = getattr(manager, attribute, {}).get(name)
        for value in (entry.values() if isinstance(entry, dict) else [entry] if entry else []):
            found += value if isinstance(value, list | tuple) else [value]
    return found


def _shared_ovs(request: pytest.FixtureRequest) -> PrivateOvs | None:
    """tests/ovs's session-wide private OVS, when it runs in this pytest session."""
    for definition in _fixture_definitions(request, "ovs"):
        cached = getattr(definition, "cached_result", None)
        if cached and isinstance(cached[0], PrivateOvs) and ovs_daemon.answering(cached[0].paths.socket):
            return cached[0]
    return None


def _other_vswitchd(ignore: str | None = None) -> list[str]:
    found = []
    for entry in os.scandir("/proc"):
        try:
            if entry.name.isdigit() and Path(entry.path, "comm").read_text().strip() == "ovs-vswitchd":
                cmdline = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode()
                if ignore is None or ignore not in cmdline:
                    found.append(f"{entry.name}: {cmdline}")
        except OSError:
            continue
    return found


def _wait_for_the_datapath() -> None:
    deadline = time.monotonic() + float(os.environ.get("VNET_OVS_WAIT", "900"))
    while others := _other_vswitchd():
        if time.monotonic() > deadline:
            pytest.fail(f"another ovs-vswitchd runs on this host ({others}): two userspace datapaths "
                        "cannot share it; run these tests when it has stopped")
        time.sleep(5)


def _cannot_run() -> str | None:
    if os.geteuid() != 0:
        return "the reliability tests start Open vSwitch and change the host's network: they need root"
    missing = [p for p in PROGRAMS if shutil.which(p) is None and not os.path.exists(f"/usr/sbin/{p}")]
    if missing or not os.path.exists(ovs_daemon.SCHEMA):
        return f"Open vSwitch is not installed ({ovs_daemon.INSTALL_HINT})"
    return None


@pytest.fixture(scope="module")
def ovs(request: pytest.FixtureRequest) -> Iterator[PrivateOvs]:
    why = _cannot_run()
    if why is not None:
        pytest.skip(why)
    shared = _shared_ovs(request)
    if shared is not None:
        yield shared
        return
    _wait_for_the_datapath()
    run_dir = tempfile.mkdtemp(prefix="vnet-rel-", dir="/tmp")  # short: unix socket paths
    paths = ovs_daemon.OvsPaths.private(run_dir)
    try:
        ovs_daemon.start(paths)
        yield PrivateOvs(paths)
    finally:
        _stop(paths)
        shutil.rmtree(run_dir, ignore_errors=True)


def _stop(paths: ovs_daemon.OvsPaths) -> None:
    from ovslib import stop_private  # noqa: PLC0415 (rellib put tests/ovs on sys.path)

    if ovs_daemon.answering(paths.socket):
        private = PrivateOvs(paths)
        for bridge in private.vsctl("list-br", check=False).stdout.split():
            private.vsctl("--if-exists", "del-br", bridge, check=False)
    stop_private(paths)


@pytest.fixture(autouse=True)
def _no_system_ovs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VNET_OVSDB", f"unix:{tmp_path}/not-the-private-ovs.sock")
    monkeypatch.delenv("VNET_TEST_FAULT", raising=False)


@pytest.fixture
def labs(as_root: None, ovs: PrivateOvs, tmp_path: Path) -> Iterator[RelLabs]:
    made = RelLabs(ovs, tmp_path)
    try:
        yield made
    finally:
        problems = made.cleanup()
        assert not problems, problems

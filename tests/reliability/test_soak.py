"""Soak: apply, verify, destroy a 20-node lab with guests, over and over, in this process.

The lab: 18 namespaces and 2 tiny guests on two OVS bridges (a trunk between them) and two Linux
bridges, 27 links, 7 expectations (2 must stay isolated). After every cycle nothing of the lab may
be left (devices, namespaces, OVS rows, QEMU, run directory, lock file, retired bridges) and the
process must not grow: open file descriptors, threads and zombie children are compared with their
count after cycle 1 (they must not be higher), and RSS may grow by at most RSS_GROWTH_MIB between
cycle 1 and the last (CPython keeps freed arenas; a leak of one netlink socket buffer or one
OVSDB replica per cycle would exceed it within 50 cycles: both are MiBs).

CI: VNET_SOAK_CYCLES (default 3); bench/reliability.py: 50.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from vnet import api
from vnet.mechanisms.kernel.teardown import reapers_running

from .rellib import SOAK_CYCLES, PrivateOvs, RelLabs, record, settled_leftovers, wait_for

pytestmark = pytest.mark.usefixtures("as_root")
RSS_GROWTH_MIB = 24


def _soak_lab() -> str:
    hosts = [f"h{k:02d}" for k in range(1, 19)]
    placement = ["$b1"] * 6 + ["$b2"] * 4 + ["$b3"] * 4 + ["$b4"] * 2
    links = [f"  - {{endpoints: [{h}:eth0, {sw}], ip: 198.18.{24 if sw != '$b4' else 25}.{k + 1}/24"
             + (", vlan: 10" if sw in ("$b1", "$b2") else "") + "}"
             for k, (h, sw) in enumerate(zip(hosts, placement, strict=False))]
    return "\n".join([
        "name: $lab", "switches:", "  $b1: {type: ovs}", "  $b2: {type: ovs}", "  $b3: {type: linux}",
        "  $b4: {type: linux}", "nodes:", *(f"  {h}: {{kind: netns}}" for h in hosts),
        "  vm1: {kind: vm, image: tiny, memory: 128}", "  vm2: {kind: vm, image: tiny, memory: 128}",
        "links:", *links,
        "  - {endpoints: [h17:eth0, h18:eth0], ip: [198.18.26.1/30, 198.18.26.2/30]}",
        "  - {endpoints: [$b1, $b2], trunk: [10]}", "  - {endpoints: [$b2, $b3], vlan: 10}",
        "  - {endpoints: [vm1:eth0, $b3], ip: 198.18.24.100/24}",
        "  - {endpoints: [vm2:eth0, $b4], ip: 198.18.25.100/24}",
        "expect:", "  - {from: h01, to: h07}", "  - {from: h01, to: h11}", "  - {from: vm1, to: h01}",
        "  - {from: h15, to: vm2}", "  - {from: h17, to: h18}", "  - {from: h01, to: h15, reach: false}",
        "  - {from: vm2, to: h01, reach: false}", ""])


def _sample() -> dict[str, int]:
    """This process: open fds, threads, zombie children, resident memory (KiB)."""
    me = str(os.getpid())
    zombies = 0
    for entry in os.scandir("/proc"):
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        zombies += fields[0] == "Z" and fields[1] == me
    status = Path("/proc/self/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return {"fds": len(os.listdir("/proc/self/fd")), "threads": threading.active_count(),
            "zombies": zombies, "rss_kib": rss}


def _open_files() -> dict[str, str]:
    """fd -> what it is, to name a leak in the failure message."""
    found = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            found[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
    return found


def _cycle(labs: RelLabs, ovs: PrivateOvs, k: int) -> dict[str, int]:
    files = labs.made[0]
    lab = files.load()
    api.apply(lab, ovsdb=ovs.remote)
    report = api.verify(lab, ovsdb=ovs.remote)
    assert report.ok and len(report.outcomes) == 8, report.to_json()  # 7 listed, 1 control
    api.destroy(files.name, ovsdb=ovs.remote)
    left = settled_leftovers(ovs, files)
    wait_for(lambda: files.name not in reapers_running(), 20, "the bridge reaper")
    wait_for(lambda: not [t for t in threading.enumerate() if t.name.startswith("vnet-reaper-")], 10,
             "the threads that wait for reapers")
    record("leak", f"soak cycle {k}: {len(left)} leftovers", not left, leaks=len(left))
    assert not left, f"cycle {k}: {left}"
    return _sample()


def test_soak(labs: RelLabs, ovs: PrivateOvs) -> None:
    labs.new("sk").write(_soak_lab())
    first = _cycle(labs, ovs, 1)
    files_first = _open_files()
    last = first
    for k in range(2, SOAK_CYCLES + 1):
        last = _cycle(labs, ovs, k)
    growth = {key: last[key] - first[key] for key in first}
    ok = (growth["fds"] <= 0 and growth["threads"] <= 0 and growth["zombies"] <= 0
          and growth["rss_kib"] <= RSS_GROWTH_MIB * 1024)
    record("leak", f"soak: {SOAK_CYCLES} cycles, growth after cycle 1: {growth}", ok,
           leaks=int(not ok), cycles=SOAK_CYCLES, **{f"{k}_growth": v for k, v in growth.items()},
           rss_first_kib=first["rss_kib"], rss_last_kib=last["rss_kib"])
    opened = {fd: what for fd, what in _open_files().items() if files_first.get(fd) != what}
    assert ok, (first, last, f"opened since cycle 1: {opened}")

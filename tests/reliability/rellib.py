"""Helpers for the reliability suites: knobs, the results file bench/reliability.py reads, labs
on the private OVS with a complete leftover check, crashes, and the recovery every fault must allow.

Knobs (environment):
- VNET_RELIABILITY_FULL=1: also run the extended variants (marked `extended`; bench/reliability.py
  sets it). Without it CI runs the sampled variants only (see each module's docstring).
- VNET_RELIABILITY_RESULTS=FILE: append one JSON line per fault, concurrent run, hostile input or
  soak cycle (category, case, ok and counts) for the report. Unset: nothing is written.
- VNET_SOAK_CYCLES=N: cycles of the soak test (default 3).

Leftovers are read with `ip -j` and `ovs-vsctl` (ovslib), and QEMU processes from /proc, not with
vnet's observe, so that a bug there cannot hide itself.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

OVS_TESTS = Path(__file__).resolve().parents[1] / "ovs"
if str(OVS_TESTS) not in sys.path:
    sys.path.insert(0, str(OVS_TESTS))

from hostbox import Sandbox, sandbox  # noqa: E402 (the host stand-in, shared with tests/functional)
from ovslib import (  # noqa: E402
    VNET,
    LabFiles,
    Labs,
    PrivateOvs,
    ip_json,
    kernel_leftovers,
    unique,
    wait_for,
)

from vnet import api  # noqa: E402
from vnet.mechanisms.qemu import process as qemu  # noqa: E402
from vnet.pipeline.lock import RUN_DIR  # noqa: E402
from vnet.topology import Lab, load  # noqa: E402

FULL = os.environ.get("VNET_RELIABILITY_FULL") == "1"
RESULTS = os.environ.get("VNET_RELIABILITY_RESULTS", "")
SOAK_CYCLES = int(os.environ.get("VNET_SOAK_CYCLES", "3"))

F = TypeVar("F", bound=Callable[..., Any])


def extended(test: F) -> F:
    """A slow variant that only bench/reliability.py runs (VNET_RELIABILITY_FULL=1)."""
    skip = pytest.mark.skipif(not FULL, reason="extended variant: run by bench/reliability.py")
    marked: F = pytest.mark.extended(skip(test))
    return marked


# --- the results file -------------------------------------------------------------------------

def record(category: str, case: str, ok: bool, **counts: int) -> None:
    """One line for the report: category is fault, concurrency, hostile or leak."""
    if not RESULTS:
        return
    line = json.dumps({"category": category, "case": case, "ok": ok, **counts}) + "\n"
    with open(RESULTS, "a", encoding="utf-8") as handle:  # O_APPEND: whole lines, any process
        handle.write(line)


@contextlib.contextmanager
def case(category: str, name: str, **counts: int) -> Iterator[None]:
    """Record `name` as handled when the block finishes, as not handled when it raises."""
    try:
        yield
    except BaseException:
        record(category, name, False, **counts)
        raise
    record(category, name, True, **counts)


# --- leftovers --------------------------------------------------------------------------------

def retired_bridges(lab: str) -> list[str]:
    """Bridges destroy took out of `lab` (alias vnet-reap:<lab>:) that are not deleted yet."""
    return [link["ifname"] for link in ip_json("link", "show")
            if str(link.get("ifalias", "")).startswith(f"vnet-reap:{lab}:")]


def owned_leftovers(ovs: PrivateOvs, lab: LabFiles) -> list[str]:
    """Everything of `lab` on the host: devices (by mark or name), namespaces, OVS rows, QEMU
    processes, retired bridges, its run directory and lock file."""
    left = kernel_leftovers(lab)
    left += [f"OVS row {row}" for row in ovs.lab_rows(lab.name)]
    left += [f"QEMU pid {vm.pid} ({vm.node})" for vm in qemu.running_vms(lab.name)]
    left += [f"retired bridge {name}" for name in retired_bridges(lab.name)]
    if os.path.exists(os.path.join(RUN_DIR, f"{lab.name}.lock")):
        left.append(f"lock file {RUN_DIR}/{lab.name}.lock")
    return left


def settled_leftovers(ovs: PrivateOvs, lab: LabFiles, timeout: float = 20.0,
                      ignore: tuple[str, ...] = ()) -> list[str]:
    """owned_leftovers once the kernel and the reaper had `timeout` s to finish (namespaces and
    retired bridges go asynchronously), except those starting with one of `ignore`."""
    deadline = time.monotonic() + timeout
    while True:
        left = [what for what in owned_leftovers(ovs, lab) if not what.startswith(ignore or ("\0",))]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


class RelLabs(Labs):
    """ovslib's Labs, whose cleanup also requires no QEMU, retired bridge or lock file left."""

    def cleanup(self) -> list[str]:
        problems = super().cleanup()
        for lab in self.made:
            problems += [f"lab {lab.name}: {what} left" for what in settled_leftovers(self.ovs, lab)
                         if not what.startswith(("device", "namespace", "directory"))]
        return problems


# --- the crash lab ----------------------------------------------------------------------------

# 33 kernel and OVS changes in 4 waves (6 namespaces, a Linux bridge, 7 veth pairs, a TAP, 2 OVS
# bridges in the netdev datapath with 4 access/trunk ports and 2 patch ports, 8 addresses, 2
# routes), then, with `vm`, the guest in a 5th wave: vnet starts guests last.
CRASH_LAB = """
name: $lab
switches:
  $b1: {type: ovs}
  $b2: {type: ovs}
  $b3: {type: linux}
nodes:
  h1: {kind: netns}
  h2: {kind: netns}
  h3: {kind: netns}
  h4: {kind: netns, routes: [{to: 198.18.21.0/24, via: 198.18.20.254}]}
  r1: {kind: netns, forwarding: true}
  h5: {kind: netns, routes: [{to: default, via: 198.18.21.1}]}
  g1: $guest
links:
  - {endpoints: [h1:eth0, $b1], vlan: 10, ip: 198.18.20.1/24}
  - {endpoints: [h2:eth0, $b1], vlan: 20, ip: 198.18.20.2/24}
  - {endpoints: [$b1, $b2], trunk: [10, 20]}
  - {endpoints: [h3:eth0, $b2], vlan: 10, ip: 198.18.20.3/24}
  - {endpoints: [$b2, $b3], vlan: 10}
  - {endpoints: [h4:eth0, $b3], ip: [198.18.20.4/24, "fd00:20::4/64"]}
  - {endpoints: [r1:eth0, $b3], ip: 198.18.20.254/24}
  - {endpoints: [r1:eth1, h5:eth0], ip: [198.18.21.1/24, 198.18.21.2/24]}
  - {endpoints: [g1:eth0, $b3], ip: 198.18.20.9/24}
expect:
  - {from: h1, to: h3}
  - {from: h4, to: h5}
  - {from: h3, to: h4}
  - {from: h1, to: h2, reach: false}$guest_expect
"""
GUEST_VM = "{kind: vm, image: tiny, memory: 128}"
GUEST_TAP = "{kind: tap}"  # the same TAP, without the guest: the kernel and OVS part alone
GUEST_EXPECT = "\n  - {from: g1, to: h1}\n  - {from: h4, to: g1}"


def crash_lab(labs: Labs, prefix: str, vm: bool) -> tuple[LabFiles, Lab]:
    files = labs.new(prefix)
    path = files.write(CRASH_LAB, guest=GUEST_VM if vm else GUEST_TAP,
                       guest_expect=GUEST_EXPECT if vm else "")
    return files, files.load(path)


# --- crashes and recovery ---------------------------------------------------------------------

def apply_in_child(path: str, remote: str, fault: str, timeout: float = 180) -> int | None:
    """`api.apply` in a forked child with VNET_TEST_FAULT=`fault`; the child's exit code."""
    def child() -> None:
        os.environ["VNET_TEST_FAULT"] = fault
        api.apply(load(path), ovsdb=remote)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(timeout)
    if process.exitcode is None:
        process.kill()
        process.join(10)
    return process.exitcode


def cli(*args: str, remote: str, fault: str = "") -> subprocess.Popen[str]:
    """A `vnet` CLI process on the private OVS (VNET_TEST_FAULT=`fault` when given)."""
    env = {**os.environ, "VNET_OVSDB": remote}
    env.pop("VNET_TEST_FAULT", None)
    if fault:
        env["VNET_TEST_FAULT"] = fault
    return subprocess.Popen([VNET, *args], env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def kill_when(process: subprocess.Popen[str], trigger: Callable[[], bool], timeout: float = 120) -> bool:
    """SIGKILL `process` as soon as `trigger()` holds; whether it died of it (False: it ended first)."""
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        if trigger():
            process.send_signal(signal.SIGKILL)
            break
        if time.monotonic() > deadline:  # neither: a hung vnet is a failure of its own
            process.kill()
            raise AssertionError(f"{process.args!r} did not finish within {timeout} s")
        time.sleep(0.005)
    process.communicate(timeout=30)
    return process.returncode == -signal.SIGKILL


def _lock_holder(lab: str) -> str:
    try:
        return Path(RUN_DIR, f"{lab}.lock").read_text().strip()
    except OSError:
        return ""


def after_lock(process: subprocess.Popen[str], lab: str, delay: float) -> Callable[[], bool]:
    """A kill_when trigger: `delay` s after `process` took the lab's lock (it writes its pid in
    the lock file), i.e. a moment inside its work rather than in its start-up."""
    took: list[float] = []

    def due() -> bool:
        if not took and _lock_holder(lab) == str(process.pid):
            took.append(time.monotonic())
        return bool(took) and time.monotonic() - took[0] >= delay
    return due


def work_seconds(process: subprocess.Popen[str], lab: str, timeout: float = 300) -> float:
    """How long `process` worked with the lab's lock held (start-up excluded); it must succeed."""
    deadline, took = time.monotonic() + timeout, 0.0
    while process.poll() is None and time.monotonic() < deadline:
        if not took and _lock_holder(lab) == str(process.pid):
            took = time.monotonic()
        time.sleep(0.002)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0 and took, (process.args, out, err)
    return time.monotonic() - took


def recover(ovs: PrivateOvs, lab: Lab, what: str) -> None:
    """After a fault: one apply converges (plan empty) and verify passes."""
    api.apply(lab, ovsdb=ovs.remote)
    left = api.plan(lab, ovsdb=ovs.remote).changes
    assert not left, f"{what}: apply did not converge: {[c.to_json() for c in left]}"
    report = api.verify(lab, ovsdb=ovs.remote)
    assert report.ok, f"{what}: verify failed after recovery: {report.to_json()}"


def destroy_clean(ovs: PrivateOvs, files: LabFiles, what: str) -> None:
    """destroy leaves nothing the lab owns (kernel, OVS rows, QEMU, run directory)."""
    api.destroy(files.name, ovsdb=ovs.remote)
    left = settled_leftovers(ovs, files)
    assert not left, f"{what}: destroy left {left}"


def wait_for_qemu(lab: str, node: str) -> Callable[[], bool]:
    return lambda: any(vm.node == node for vm in qemu.running_vms(lab))


def qemu_gone(pid: int) -> Callable[[], bool]:
    """The process has exited: gone, or a zombie (no command line) that init has not reaped yet."""
    def gone() -> bool:
        try:
            return not Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return True
    return gone




# --- a private host -----------------------------------------------------------------------------

__all__ = ["VNET", "LabFiles", "PrivateOvs", "RelLabs", "Sandbox", "ip_json", "sandbox", "unique", "wait_for"]

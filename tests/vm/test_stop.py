"""Stopping a guest stops every process of it, and waits until they have let go of their files.

An apply killed while QEMU daemonizes leaves two processes with the guest's command line (the
parent waiting for the child); the next apply restarts the guest, and a child still running
holds its TAP device (the new QEMU then fails with EBUSY). The stand-ins here are Python
processes whose command line is a vnet guest's (`qemu-system-x86_64 ... -name guest=vnet:LAB:NODE`);
no QMP socket answers, so each is killed by pid.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vnet.mechanisms.qemu import process as qemu
from vnet.mechanisms.qemu.driver import stop_all
from vnet.mechanisms.qemu.resources import Vm

StandIns = tuple[str, list[subprocess.Popen[bytes]]]


@pytest.fixture
def stand_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StandIns]:
    monkeypatch.setattr(qemu, "RUN_ROOT", tmp_path / "run")
    lab = f"st{secrets.token_hex(3)}"
    argv = [qemu.QEMU, "-c", "import time; time.sleep(120)", "-name", f"{qemu.NAME_PREFIX}{lab}:g1"]
    processes = [subprocess.Popen(argv, executable=sys.executable) for _ in range(2)]
    try:
        for process in processes:
            _wait_exec_done(process.pid)
        yield lab, processes
    finally:
        for process in processes:
            process.kill()
            process.wait(10)


def _wait_exec_done(pid: int) -> None:
    """Popen returns once exec has closed its error pipe, which the kernel does before it sets up
    the new command line: until then /proc/PID/cmdline reads empty (seen in CI)."""
    for _ in range(500):
        if Path(f"/proc/{pid}/cmdline").read_bytes():
            return
        time.sleep(0.01)
    pytest.fail(f"process {pid} has no command line after 5 s")


def test_stop_all_ends_both_processes_of_a_guest(stand_ins: StandIns) -> None:
    lab, processes = stand_ins
    found = {vm.pid for vm in qemu.running_vms(lab)}
    assert found == {p.pid for p in processes}, "both stand-ins are seen as the guest g1"
    stop_all(Vm(lab, "g1", (), (), False))
    assert qemu.running_vms(lab) == []
    for process in processes:  # killed, and a zombie until reaped here: its files are released
        assert process.wait(5) == -9


FORKS_LATER = "import os, time; time.sleep(0.5); os.fork(); time.sleep(120)"


def test_stop_all_finds_a_child_forked_while_the_parent_was_stopped(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """QEMU daemonizing: the parent forks the child (same command line) while vnet stops it. The
    stand-in answers no QMP, so stop waits before it kills: meanwhile it forks, and only a second
    scan sees the child (in CI the child kept the TAP and the next QEMU failed with EBUSY)."""
    monkeypatch.setattr(qemu, "RUN_ROOT", tmp_path / "run")
    lab = f"sf{secrets.token_hex(3)}"
    argv = [qemu.QEMU, "-c", FORKS_LATER, "-name", f"{qemu.NAME_PREFIX}{lab}:g1"]
    parent = subprocess.Popen(argv, executable=sys.executable)
    try:
        _wait_exec_done(parent.pid)
        assert [vm.pid for vm in qemu.running_vms(lab)] == [parent.pid]  # no child yet
        stop_all(Vm(lab, "g1", (), (), False))
        assert qemu.running_vms(lab) == [], "the forked child is still running"
    finally:
        for vm in qemu.running_vms(lab):
            os.kill(vm.pid, signal.SIGKILL)
        parent.kill()
        parent.wait(10)

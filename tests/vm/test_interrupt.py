"""`vnet apply` of namespaces and a tiny guest at a terminal: the guest's boot is shown, and
Ctrl-C while it boots rolls the apply back; Ctrl-C again during the rollback stops it and lists
what is left, which is what the host has. Run through a pseudo terminal (tests/ptylib.py), Ctrl-C
typed at it (the whole foreground process group gets SIGINT, as at a real terminal)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from functional.conftest import Labs
from functional.hostlib import VNET, LabUnderTest, leftovers, vnet
from ptylib import Terminal

from vnet import api
from vnet.errors import EX_INTERRUPTED, UnavailableError
from vnet.mechanisms.qemu import process as qemu
from vnet.pipeline import stages
from vnet.pipeline.session import Session
from vnet.vm import tiny

pytestmark = pytest.mark.root

LAB = """
name: $lab
switches:
  $b1: {type: linux}
nodes:
  h1: {kind: netns}
  h2: {kind: netns}
  v1: {kind: vm, memory: 128}
links:
  - {endpoints: [h1:eth0, $b1], ip: 198.18.92.1/24}
  - {endpoints: [h2:eth0, $b1], ip: 198.18.92.2/24}
  - {endpoints: [v1:eth0, $b1], ip: 198.18.92.5/24}
"""


@pytest.fixture
def labs(tmp_path: Path) -> Iterator[Labs]:
    if os.geteuid() != 0:
        pytest.skip("vnet apply needs root")
    if shutil.which(qemu.QEMU) is None:
        pytest.skip(f"{qemu.QEMU} is not installed")
    try:
        tiny.find_inputs()
    except UnavailableError as exc:
        pytest.skip(f"no tiny image: {exc.message}")
    made = Labs(tmp_path)
    yield made
    problems = made.cleanup()
    assert not problems, problems


def observed(lab: LabUnderTest) -> set[str]:
    """What the host has of the lab, by kind and name (keyed as the file wants them)."""
    with Session() as session:
        desired = stages.desired_state(lab.load(), session)
        found = stages.observed_state(lab.name, desired, session)
    return {f"{kind} {name}" for kind, name in found.resources}


def nothing_left(lab: LabUnderTest) -> None:
    assert observed(lab) == set()
    assert leftovers(lab.name) == []
    assert qemu.running_vms(lab.name) == []
    assert lab.name not in api.labs()


def converges(lab: LabUnderTest, path: str) -> None:
    applied = vnet("apply", path, "--verify")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert json.loads(vnet("plan", path, "--json", check=True).stdout)["changes"] == []


def booting(lab: LabUnderTest, path: str) -> Terminal:
    """`vnet apply` at a terminal, once it says the guest is booting."""
    terminal = Terminal([VNET, "apply", path])
    terminal.wait_for(r"v1 booting…", "the guest's boot row")
    return terminal


def test_a_guest_boot_is_shown(labs: Labs) -> None:
    lab = labs.new("pv")
    path = str(lab.write(LAB))
    terminal = Terminal([VNET, "apply", path])
    try:
        terminal.wait_for(r"v1 booting…", "the guest's boot row")
        assert terminal.wait() == 0, terminal.text()
        shown = terminal.text()
    finally:
        terminal.close()
    assert re.search(r"v1 ready \d+\.\d s", shown), shown
    assert re.search(r"wave (\d+)/\1 · (\d+)/\2 changes", shown), shown
    assert json.loads(vnet("plan", path, "--json", check=True).stdout)["changes"] == []


def test_ctrl_c_while_a_guest_boots_rolls_the_apply_back(labs: Labs) -> None:
    lab = labs.new("pi")
    path = str(lab.write(LAB))
    terminal = booting(lab, path)
    try:
        terminal.interrupt()
        code = terminal.wait()
        shown = terminal.text()
    finally:
        terminal.close()
    assert code == EX_INTERRUPTED, shown
    said = re.search(rf"lab {lab.name}: apply interrupted; rolled back this apply's \d+ changes: (.*)",
                     shown)
    assert said, shown
    assert "1 vm (v1)" in said.group(1) and "2 netns" in said.group(1), said.group(0)
    assert "v1 boot abandoned (interrupted)" in shown
    nothing_left(lab)
    converges(lab, path)


def test_ctrl_c_again_stops_the_rollback_and_says_what_is_left(labs: Labs) -> None:
    lab = labs.new("pj")
    path = str(lab.write(LAB))
    terminal = booting(lab, path)
    try:
        # A stopped QEMU answers no QMP `quit`: stopping it (the rollback's first undo) takes
        # until vnet kills it, long enough for the second Ctrl-C to come during the rollback.
        (guest,) = qemu.running_vms(lab.name)
        os.kill(guest.pid, signal.SIGSTOP)
        terminal.interrupt()
        terminal.wait_for(r"rolling back 0/\d+ changes", "the rollback's row")
        terminal.interrupt()
        code = terminal.wait()
        shown = terminal.text()
    finally:
        terminal.close()
    assert code == EX_INTERRUPTED, shown
    said = re.search(r"the rollback was interrupted too: rolled back 1 change: 1 vm \(v1\); "
                     r"left on the host by this apply \((\d+) objects\):\n((?:    (?!hint:).*\n)+)", shown)
    assert said, shown
    listed = {line.strip() for line in said.group(2).splitlines()}
    assert len(listed) == int(said.group(1))
    assert listed == observed(lab), "what vnet says is left is what the host has"
    assert qemu.running_vms(lab.name) == []
    assert f"`vnet apply {path}` converges from here" in shown
    assert f"`vnet destroy --lab {lab.name}` removes the lab" in shown

    converges(lab, path)
    destroyed = vnet("destroy", path)
    assert destroyed.returncode == 0, destroyed.stderr
    nothing_left(lab)

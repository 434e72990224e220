"""Ctrl-C of an apply that has made no change yet (it waits for the lab's lock): it ends at
once, says so, exits 130 and leaves nothing. (Interrupts during changes, with a booting guest
to interrupt: tests/vm/test_interrupt.py.)"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest
from ptylib import Terminal

from vnet.errors import EX_INTERRUPTED
from vnet.pipeline.lock import RUN_DIR

from .conftest import Labs
from .hostlib import VNET, leftovers

pytestmark = pytest.mark.root

LAB = """
name: $lab
switches:
  $b1: {type: linux}
nodes:
  h1: {kind: netns}
links:
  - {endpoints: [h1:eth0, $b1], ip: 198.18.93.1/24}
"""


def test_ctrl_c_before_any_change_ends_the_apply(labs: Labs) -> None:
    lab = labs.new("pw")
    path = str(lab.write(LAB))
    os.makedirs(RUN_DIR, exist_ok=True)
    lock = os.path.join(RUN_DIR, f"{lab.name}.lock")
    held = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)  # as another vnet changing the lab
        terminal = Terminal([VNET, "apply", path, "--wait"])
        try:
            terminal.wait_for(rf"waiting for another vnet to finish with lab {lab.name}…", "the lock's row")
            terminal.interrupt()
            code = terminal.wait()
            shown = terminal.text()
        finally:
            terminal.close()
    finally:
        os.close(held)
    assert code == EX_INTERRUPTED, shown
    assert f"error: lab {lab.name}: apply interrupted; it had made no change" in shown
    assert leftovers(lab.name) == []
    assert not Path(RUN_DIR, lab.name).exists()

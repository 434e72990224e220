"""The per-lab lock: a second vnet changing the same lab exits 75, or waits with --wait."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from vnet import api
from vnet.errors import EX_TEMPFAIL, LockedError

from .conftest import Labs
from .hostlib import PYTHON, VNET, ifindexes, vnet

pytestmark = pytest.mark.root

LAB = """
name: $lab
switches:
  $b1: {type: linux}
nodes:
  h1: {kind: netns}
  h2: {kind: netns}
links:
  - endpoints: [h1:eth0, $b1]
    ip: 198.18.50.1/24
  - endpoints: [h2:eth0, $b1]
    ip: 198.18.50.2/24
"""

# Holds the lab's lock until its stdin is closed.
HOLDER = """
import sys
from vnet.pipeline.lock import lab_lock
with lab_lock(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.read()
"""


@contextmanager
def held(lab: str) -> Iterator[subprocess.Popen[str]]:
    holder = subprocess.Popen([PYTHON, "-c", HOLDER, lab], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait(10)


def release(holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None
    holder.stdin.close()
    holder.wait(10)


def test_locked_lab_exits_75_and_wait_proceeds(labs: Labs) -> None:
    lab = labs.new("lck")
    path = str(lab.write(LAB))
    with held(lab.name) as holder:
        refused = vnet("apply", path)
        assert refused.returncode == EX_TEMPFAIL, (refused.stdout, refused.stderr)
        assert "another vnet process is changing lab" in refused.stderr and "--wait" in refused.stderr
        assert vnet("destroy", "--lab", lab.name).returncode == EX_TEMPFAIL
        assert not ifindexes(lab)
        waiting = subprocess.Popen([VNET, "apply", "--wait", path], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(2.0)
            assert waiting.poll() is None, waiting.communicate()
            assert not ifindexes(lab), "apply --wait went ahead while the lock was held"
            release(holder)
            out, err = waiting.communicate(timeout=120)
        finally:
            if waiting.poll() is None:
                waiting.kill()
                waiting.wait(10)
        assert waiting.returncode == 0, (out, err)
    assert api.plan(lab.load()).empty


def test_api_waits_for_the_lock(labs: Labs) -> None:
    lab = labs.new("lck")
    lab.write(LAB)
    loaded = lab.load()
    outcome: list[object] = []

    def apply_waiting() -> None:
        try:
            outcome.append(api.apply(loaded, wait=True))
        except Exception as exc:
            outcome.append(exc)

    with held(lab.name) as holder:
        with pytest.raises(LockedError):
            api.apply(loaded)
        with pytest.raises(LockedError):
            api.destroy(lab.name)
        worker = threading.Thread(target=apply_waiting)
        worker.start()
        time.sleep(0.5)
        assert worker.is_alive() and not ifindexes(lab)
        release(holder)
        worker.join(60)
    assert len(outcome) == 1 and isinstance(outcome[0], api.ApplyReport), outcome
    assert ifindexes(lab) and api.plan(loaded).empty
    assert api.verify(loaded).ok

"""Progress of `apply`, `verify` and `destroy --wait`: drawn on a terminal (standard error),
none through a pipe, and `--json` output stays JSON either way. Run through a pseudo terminal
(tests/ptylib.py)."""

from __future__ import annotations

import fcntl
import json
import os
import re

import pytest
from ptylib import Terminal

from vnet.pipeline.lock import RUN_DIR

from .conftest import Labs
from .hostlib import VNET, leftovers, vnet

pytestmark = pytest.mark.root

LAB = """
name: $lab
switches:
  $b1: {type: linux}
nodes:
  h1: {kind: netns}
  h2: {kind: netns}
  h3: {kind: netns}
links:
  - {endpoints: [h1:eth0, $b1], ip: 198.18.91.1/24}
  - {endpoints: [h2:eth0, $b1], ip: 198.18.91.2/24}
  - {endpoints: [h3:eth0, $b1], ip: 198.18.91.3/24}
"""
CONTROL = re.compile(r"\x1b\[")
# what the progress rows say (vnet/cli/progress.py), and nothing else vnet prints says
PROGRESS = re.compile(r"wave \d+/\d+|probes answered|booting")


def on_terminal(*args: str) -> tuple[int, str]:
    terminal = Terminal([VNET, *args])
    try:
        return terminal.wait(), terminal.text()
    finally:
        terminal.close()


def test_apply_and_verify_show_progress_on_a_terminal(labs: Labs) -> None:
    lab = labs.new("pg")
    path = str(lab.write(LAB))
    code, shown = on_terminal("apply", path)
    assert code == 0, shown
    plan = json.loads(vnet("plan", path, "--json", check=True).stdout)
    assert plan["changes"] == [], "applied"
    # the last state of the apply row: every wave run and every change done
    waves = re.findall(r"wave (\d+)/(\d+) · (\d+)/(\d+) changes", shown)
    assert waves, shown
    assert waves[-1][0] == waves[-1][1] and waves[-1][2] == waves[-1][3] != "0", waves[-1]
    assert f"lab {lab.name}: " in shown and " created in " in shown

    code, shown = on_terminal("verify", path)
    assert code == 0, shown
    answered = re.findall(r"(\d+)/(\d+) probes answered", shown)
    assert answered, shown
    assert answered[-1][0] == answered[-1][1] != "0", answered[-1]


def test_no_progress_through_a_pipe_and_json_stays_json(labs: Labs) -> None:
    lab = labs.new("pg")
    path = str(lab.write(LAB))
    applied = vnet("apply", path, "--json")
    assert applied.returncode == 0, applied.stderr
    assert json.loads(applied.stdout)["lab"] == lab.name
    assert not PROGRESS.search(applied.stdout + applied.stderr), applied.stderr
    assert not CONTROL.search(applied.stdout + applied.stderr)

    again = vnet("apply", path)  # not a terminal, not JSON: the summary line only
    assert again.returncode == 0, again.stderr
    assert not PROGRESS.search(again.stdout + again.stderr), again.stdout + again.stderr
    assert again.stdout.startswith(f"lab {lab.name}: no changes in ") and again.stdout.count("\n") == 1

    verified = vnet("verify", path, "--json")
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["ok"] is True
    assert not PROGRESS.search(verified.stdout + verified.stderr), verified.stderr


def test_json_on_stdout_with_progress_on_a_terminal(labs: Labs) -> None:
    """`vnet apply --json | jq` at a terminal: the progress goes to the terminal (standard
    error), the pipe gets the JSON alone."""
    lab = labs.new("pg")
    path = str(lab.write(LAB))
    terminal = Terminal(["sh", "-c", 'exec "$0" apply "$1" --verify --json > "$2"', VNET, path,
                         str(lab.directory / "out.json")])
    try:
        code = terminal.wait()
        shown = terminal.text()
    finally:
        terminal.close()
    assert code == 0, shown
    assert re.search(r"wave \d+/\d+", shown) and "probes answered" in shown, shown
    result = json.loads((lab.directory / "out.json").read_text())
    assert result["verify"]["ok"] is True


def test_destroy_shows_its_wait_for_the_lock(labs: Labs) -> None:
    lab = labs.new("pg")
    path = str(lab.write(LAB))
    assert vnet("apply", path).returncode == 0
    held = os.open(os.path.join(RUN_DIR, f"{lab.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)  # as another vnet changing the lab
        terminal = Terminal([VNET, "destroy", "--lab", lab.name, "--wait"])
        try:
            terminal.wait_for(rf"waiting for another vnet to finish with lab {lab.name}…", "the lock's row")
            assert leftovers(lab.name) != [], "destroyed while another vnet held the lock"
            fcntl.flock(held, fcntl.LOCK_UN)
            code = terminal.wait()
            shown = terminal.text()
        finally:
            terminal.close()
    finally:
        os.close(held)
    assert code == 0, shown
    assert f"lab {lab.name}: removed 3 namespaces" in shown
    assert leftovers(lab.name) == []

"""`vnet exec` in namespace nodes: standard input, terminals, --json, signals; and what `console`
and `logs` answer for nodes that are no VM or VMs that do not run (no guest boots here).

A namespace command runs on this host as under `ip netns exec`: it inherits vnet's standard
input, output and terminal, and Ctrl-C is its own (vnet waits for its status). Terminals are
pseudo terminals. Nothing is timed: `returns` proves that a call ends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest
from hanglib import returns
from ptylib import pty_pair, read_until

from vnet.errors import EX_DATAERR, EX_UNAVAILABLE

from .conftest import Labs
from .hostlib import VNET

pytestmark = pytest.mark.root

LAB = """
name: $lab
switches:
  $b1: {type: linux}
nodes:
  h1: {kind: netns}
  t1: {kind: tap}
links:
  - {endpoints: [h1:eth0, $b1], ip: 198.18.86.1/24}
  - {endpoints: [t1:eth0, $b1]}
"""
VM_LAB = """
name: $lab
switches:
  $b1: {type: linux}
nodes:
  v1: {kind: vm}
links:
  - {endpoints: [v1:eth0, $b1], ip: 198.18.86.5/24}
"""
USAGE = 2


def vnet(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """The installed CLI; standard input `data`, else /dev/null (never the test's own)."""
    return subprocess.run([VNET, *args], input=data, stdin=None if data is not None else subprocess.DEVNULL,
                          capture_output=True, timeout=120, check=False)


def shown(done: subprocess.CompletedProcess[bytes]) -> str:
    return f"exit {done.returncode}\nstdout: {done.stdout!r}\nstderr: {done.stderr!r}"


@pytest.fixture
def applied(labs: Labs) -> str:
    lab = labs.new("io")
    path = lab.write(LAB)
    done = vnet("apply", str(path))
    assert done.returncode == 0, shown(done)
    return str(path)


# --- exec in a namespace -----------------------------------------------------------------------


def test_exec_passes_standard_input_to_a_namespace_command(applied: str) -> None:
    data = b"first\n" + bytes(range(256)) * 1000
    done = vnet("exec", applied, "h1", "--", "cat", data=data)
    assert (done.returncode, done.stdout) == (0, data), shown(done)
    counted = vnet("exec", applied, "h1", "--", "sh", "-c", "ls /sys/class/net; wc -c", data=b"12345")
    assert counted.stdout.split() == [b"eth0", b"lo", b"5"], shown(counted)  # in h1's namespace


def test_exec_json_in_a_namespace(applied: str) -> None:
    done = vnet("exec", "--json", applied, "h1", "--", "sh", "-c", "cat; echo oops >&2; exit 3", data=b"in")
    assert done.returncode == 3, shown(done)
    assert json.loads(done.stdout) == {"node": "h1", "returncode": 3, "stdout": "in", "stderr": "oops\n"}


def test_exec_status_of_a_command_a_signal_ended(applied: str) -> None:
    done = vnet("exec", applied, "h1", "--", "sh", "-c", "kill -TERM $$")
    assert done.returncode == 128 + signal.SIGTERM, shown(done)  # as a shell says it


def test_exec_options_stand_before_the_command(applied: str) -> None:
    """After FILE and NODE every word is the command's, `--` or not."""
    done = vnet("exec", applied, "h1", "echo", "-i", "-t", "--json")
    assert (done.returncode, done.stdout) == (0, b"-i -t --json\n"), shown(done)
    valued = vnet("exec", "--timeout", "5", applied, "h1", "echo", "--timeout", "7")
    assert (valued.returncode, valued.stdout) == (0, b"--timeout 7\n"), shown(valued)
    binary = vnet("exec", applied, "h1", "cat", data=bytes(range(256)))
    assert binary.stdout == bytes(range(256)), shown(binary)
    bad = vnet("exec", "--nosuch", applied, "h1", "--", "true")
    assert bad.returncode == USAGE, shown(bad)


def test_exec_t_needs_a_terminal(applied: str) -> None:
    done = vnet("exec", "-t", applied, "h1", "--", "true")  # standard input: /dev/null
    assert done.returncode == USAGE and b"-t needs a terminal" in done.stderr, shown(done)
    both = vnet("exec", "-t", "--json", applied, "h1", "--", "true")
    assert both.returncode == USAGE and b"exclude each other" in both.stderr, shown(both)


@pytest.mark.parametrize("flags", [(), ("-t",), ("-it",)])
def test_exec_on_a_terminal_gives_the_command_the_terminal(applied: str, flags: tuple[str, ...]) -> None:
    with pty_pair() as (master, slave):
        process = subprocess.Popen([VNET, "exec", *flags, applied, "h1", "--", "sh", "-c",
                                    "test -t 0 && test -t 1 && echo on-a-terminal"],
                                   stdin=slave, stdout=slave, stderr=slave)
        returns(lambda: read_until(master, b"on-a-terminal"), "the command's answer")
        assert returns(process.wait, "exec on a terminal") == 0


def test_ctrl_c_is_the_commands_and_exec_waits_for_its_status(applied: str) -> None:
    """Ctrl-C at the terminal reaches vnet and the command alike (one process group): vnet lets
    the command decide and exits with its status, instead of ending (130) and leaving it."""
    script = "trap 'echo got-int; exit 5' INT; echo ready; while :; do sleep 0.05; done"
    process = subprocess.Popen([VNET, "exec", applied, "h1", "--", "sh", "-c", script],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)  # its own group: what a terminal's Ctrl-C reaches
    try:
        assert process.stdout is not None
        assert returns(process.stdout.readline, "the command's start") == b"ready\n"
        os.killpg(process.pid, signal.SIGINT)
        out, err = returns(process.communicate, "exec after Ctrl-C")
        assert (process.returncode, out) == (5, b"got-int\n"), (out, err)
        assert b"aborted" not in err
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)


# --- console and logs: not a VM, not running ---------------------------------------------------


@pytest.mark.parametrize("command", ["console", "logs"])
def test_console_and_logs_refuse_nodes_that_are_no_running_vm(labs: Labs, command: str) -> None:
    lab = labs.new("nv")
    vm_file = str(lab.write(VM_LAB, "vm.yaml"))
    path = str(lab.write(LAB))  # written last: what labs.cleanup destroys (nothing is applied)
    rows = [
        (path, "nosuch", EX_DATAERR, "`nosuch` is not a node of lab"),
        (path, "h1", EX_DATAERR, "`h1` is a netns node, not a VM"),
        (path, "t1", EX_DATAERR, "`t1` is a tap node, not a VM"),
        (vm_file, "v1", EX_UNAVAILABLE, f"VM v1 of lab {lab.name} is not running"),
    ]
    for file, node, code, says in rows:
        done = vnet(command, file, node)
        assert done.returncode == code, shown(done)
        assert done.stderr.startswith(b"error: "), shown(done)  # an error, not a log's note
        assert says.encode() in done.stderr and b"hint: " in done.stderr, shown(done)


def test_exec_t_in_a_vm_is_refused_before_anything_else(labs: Labs) -> None:
    lab = labs.new("nv")
    vm_file = str(lab.write(VM_LAB))
    done = vnet("exec", "-t", vm_file, "v1", "--", "sh")  # not even running: -t is the mistake
    assert done.returncode == EX_DATAERR, shown(done)
    assert b"cannot give a command a terminal" in done.stderr and b"vnet console" in done.stderr
    plain = vnet("exec", vm_file, "v1", "--", "cat", data=b"never read")
    assert plain.returncode == EX_UNAVAILABLE and b"is not running" in plain.stderr, shown(plain)

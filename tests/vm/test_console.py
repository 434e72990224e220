"""`vnet console`, `vnet logs` and `vnet exec` with standard input, through the CLI, on a real VM.

One lab serves the module: a tiny guest (vm1) and a namespace on a Linux bridge, applied with
`vnet apply` (the guest's QEMU is vnet's own, with its serial console socket and log). Tests run
in file order; the last ones stop vm1 and look at what a stopped VM leaves. Terminals are pseudo
terminals (pty): what a person at a terminal gets, raw mode and its restoration included.
Nothing is timed: `returns` proves that a call ends (a hang fails, slowness does not).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hanglib import returns
from ptylib import pty_pair, read_until

from vnet import api
from vnet.errors import EX_DATAERR, EX_TEMPFAIL, EX_UNAVAILABLE
from vnet.mechanisms.qemu import process as qemu
from vnet.topology import load
from vnet.vm.agent import MAX_INPUT, GuestAgent
from vnet.vm.tiny import TinyImage

pytestmark = pytest.mark.root

VNET = str(Path(sys.executable).with_name("vnet"))
LAB = """
name: $lab
switches:
  ${lab}b1: {type: linux}
nodes:
  vm1: {kind: vm, image: tiny, memory: 128}
  h1: {kind: netns}
links:
  - {endpoints: [vm1:eth0, ${lab}b1], ip: 198.18.83.1/24}
  - {endpoints: [h1:eth0, ${lab}b1], ip: 198.18.83.2/24}
"""
MARK = "echo vnet-$((40+2))-ok"  # the output, `vnet-42-ok`, is not in the echo of the input
SAID = b"vnet-42-ok"


@dataclass(frozen=True)
class Applied:
    name: str
    file: str


def vnet(*args: str, data: bytes | None = None, timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
    """The installed CLI; standard input `data`, else /dev/null (never the test's own)."""
    return subprocess.run([VNET, *args], input=data, stdin=None if data is not None else subprocess.DEVNULL,
                          capture_output=True, timeout=timeout, check=False)


def shown(done: subprocess.CompletedProcess[bytes]) -> str:
    return f"exit {done.returncode}\nstdout: {done.stdout!r}\nstderr: {done.stderr!r}"


@pytest.fixture(scope="module")
def lab(tiny_image: TinyImage, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Applied]:
    # tiny_image: skipped like every tiny-guest test without root, QEMU or the image's inputs
    name = "cn" + secrets.token_hex(2)
    path = tmp_path_factory.mktemp("console") / "lab.yaml"
    path.write_text(string.Template(LAB).substitute(lab=name))
    try:
        done = vnet("apply", str(path))
        assert done.returncode == 0, shown(done)
        yield Applied(name, str(path))
    finally:
        api.destroy(name, wait=True)
        assert not qemu.running_vms(name), "destroy leaves no guest"


def _vm(lab: Applied) -> qemu.RunningVm:
    return next(vm for vm in qemu.running_vms(lab.name) if vm.node == "vm1")


# --- exec: standard input ----------------------------------------------------------------------


def test_exec_passes_standard_input_to_a_vm(lab: Applied) -> None:
    data = b"hello from the host\n" + bytes(range(256)) * 800  # binary, several of dd's blocks
    script = "cat > /tmp/in; wc -c < /tmp/in; sha256sum < /tmp/in"
    done = vnet("exec", lab.file, "vm1", "--", "sh", "-c", script, data=data)
    assert done.returncode == 0, shown(done)
    count, digest = done.stdout.split()[:2]
    assert int(count) == len(data) and digest.decode() == hashlib.sha256(data).hexdigest(), shown(done)
    echoed = vnet("exec", lab.file, "vm1", "--", "cat", data=b"line one\nline two\n")
    assert echoed.stdout == b"line one\nline two\n", shown(echoed)
    raw = vnet("exec", lab.file, "vm1", "--", "cat", data=data)  # binary output passes whole
    assert raw.returncode == 0 and raw.stdout == data, shown(raw)[:400]


def test_exec_in_a_vm_ends_at_its_timeout(lab: Applied) -> None:
    done = vnet("exec", lab.file, "vm1", "--timeout", "2", "--", "sleep", "600")
    assert done.returncode == 128 + signal.SIGKILL, shown(done)  # the guest killed it, as `timeout`
    quick = vnet("exec", lab.file, "vm1", "--timeout", "2", "--", "echo", "in time")
    assert (quick.returncode, quick.stdout) == (0, b"in time\n"), shown(quick)


def test_exec_in_a_vm_without_input_gets_none(lab: Applied) -> None:
    done = vnet("exec", lab.file, "vm1", "--", "wc", "-c")  # stdin /dev/null: empty, short request
    assert (done.returncode, done.stdout.split()) == (0, [b"0"]), shown(done)


def test_exec_json_in_a_vm(lab: Applied) -> None:
    done = vnet("exec", "--json", lab.file, "vm1", "--", "sh", "-c", "cat; echo oops >&2; exit 3",
                data=b"in")
    assert done.returncode == 3, shown(done)
    assert json.loads(done.stdout) == {"node": "vm1", "returncode": 3, "stdout": "in", "stderr": "oops\n"}


def test_exec_refuses_input_larger_than_the_agent_takes(lab: Applied) -> None:
    done = vnet("exec", lab.file, "vm1", "--", "wc", "-c", data=b"x" * (MAX_INPUT + 1))
    assert done.returncode == EX_DATAERR, shown(done)
    assert b"larger than the guest agent takes" in done.stderr and b"hint:" in done.stderr


def test_exec_from_a_terminal_reads_input_only_with_i(lab: Applied) -> None:
    """On a terminal, exec does not wait for keys (the command gets no input) unless -i: then
    it reads up to Ctrl-D and the command gets all of it."""
    with pty_pair() as (master, slave):
        plain = subprocess.Popen([VNET, "exec", lab.file, "vm1", "--", "wc", "-c"], stdin=slave,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = returns(plain.communicate, "exec from a terminal without -i")
        assert (plain.returncode, out.split()) == (0, [b"0"]), (out, err)
        interactive = subprocess.Popen([VNET, "exec", "-i", lab.file, "vm1", "--", "cat"], stdin=slave,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        os.write(master, b"typed\n\x04")  # a line, then Ctrl-D: end of input (canonical mode)
        out, err = returns(interactive.communicate, "exec -i from a terminal")
        assert (interactive.returncode, out) == (0, b"typed\n"), (out, err)
        assert b"up to Ctrl-D" in err


def test_exec_t_in_a_vm_points_to_the_console(lab: Applied) -> None:
    done = vnet("exec", "-t", lab.file, "vm1", "--", "sh")
    assert done.returncode == EX_DATAERR, shown(done)
    assert b"cannot give a command a terminal" in done.stderr and b"vnet console" in done.stderr


def test_a_cut_input_is_never_run(lab: Applied) -> None:
    """A client that goes away in the middle of the input: the guest drops the request (its
    input is short of the announced length), and the next client is served."""
    socket_path = qemu.vm_paths(lab.name, "vm1").agent
    flag = f"/tmp/cut-{secrets.token_hex(4)}"
    request = GuestAgent._request("cut-1", f"touch {flag}", 10, b"y" * 3000)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(socket_path))
        sock.sendall(request[: len(request) // 2])
    with GuestAgent(socket_path) as agent:
        # wait_ready repeats its ping: one the guest reads as the rest of the cut input is lost
        returns(lambda: agent.wait_ready(60), "the agent after a cut request")
        result = returns(lambda: agent.run_script(f"test -e {flag}; echo $?", 60), "the next request")
    assert result.stdout.strip() == "1", "the command of the cut request ran"


# --- logs --------------------------------------------------------------------------------------


def test_logs_print_the_boot_log(lab: Applied) -> None:
    done = vnet("logs", lab.file, "vm1")
    assert done.returncode == 0, shown(done)
    assert b"vnet-tiny: ready" in done.stdout, shown(done)
    assert done.stdout == qemu.vm_paths(lab.name, "vm1").serial.read_bytes()[: len(done.stdout)]


def test_logs_last_lines(lab: Applied) -> None:
    whole = vnet("logs", lab.file, "vm1").stdout  # the guest is quiet by now: the log stays
    last = vnet("logs", "-n", "2", lab.file, "vm1")
    assert last.returncode == 0, shown(last)
    lines = whole.split(b"\n")
    assert len(lines) > 3
    # tail(1)'s lines: the last two, the trailing newline kept (the last may lack one)
    expected = b"\n".join(lines[-3:]) if whole.endswith(b"\n") else b"\n".join(lines[-2:])
    assert last.stdout == expected, (last.stdout, whole[-300:])
    assert vnet("logs", "-n", "0", lab.file, "vm1").stdout == b""


# --- console -----------------------------------------------------------------------------------


def test_console_as_a_pipe(lab: Applied) -> None:
    """Bytes in, bytes out: a command line into the guest's serial shell, its output back; the
    end of the input ends the console."""
    console = subprocess.Popen([VNET, "console", "--linger", "0", lab.file, "vm1"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert console.stdin is not None and console.stdout is not None
        console.stdin.write(f"\n{MARK}\n".encode())
        console.stdin.flush()
        seen = returns(lambda: read_until(console.stdout.fileno(), SAID), "the guest's answer")
        assert SAID in seen
        console.stdin.close()  # end of input: the console ends
        assert returns(console.wait, "console at the end of its input") == 0, console.stderr
    finally:
        _end(console)
    assert SAID in vnet("logs", lab.file, "vm1").stdout, "the log has the session too"


def test_a_second_console_is_refused_while_one_is_attached(lab: Applied) -> None:
    first = subprocess.Popen([VNET, "console", lab.file, "vm1"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert first.stdin is not None and first.stdout is not None
        first.stdin.write(f"{MARK}\n".encode())
        first.stdin.flush()
        returns(lambda: read_until(first.stdout.fileno(), SAID), "the first console's answer")
        second = returns(lambda: vnet("console", lab.file, "vm1", data=b""), "a second console")
        assert second.returncode == EX_TEMPFAIL, shown(second)
        assert b"in use by another client" in second.stderr, shown(second)
    finally:
        _end(first)


def test_console_on_a_terminal_raw_detach_and_restore(lab: Applied) -> None:
    """On a terminal: raw mode (the guest echoes; Ctrl-C is the guest's), Ctrl-] detaches, and
    the terminal's settings are as before."""
    with pty_pair() as (master, slave):
        before = termios.tcgetattr(slave)
        console = subprocess.Popen([VNET, "console", lab.file, "vm1"], stdin=slave, stdout=slave,
                                   stderr=slave)
        try:
            returns(lambda: read_until(master, b"detach with Ctrl-]"), "the console's banner")
            returns(lambda: _wait_raw(slave), "raw mode")  # input before it would be flushed
            os.write(master, b"sleep 601\r")
            returns(lambda: _wait_in_guest(lab, "ps | grep -q '[s]leep 601'"), "the guest's sleep")
            os.write(master, f"\x03{MARK}\r".encode())  # Ctrl-C ends the sleep: the guest's key
            returns(lambda: read_until(master, SAID), "the guest's answer")
            os.write(master, b"\x1d")
            assert returns(console.wait, "console after Ctrl-]") == 0
        finally:
            _end(console)
        assert termios.tcgetattr(slave) == before, "the terminal is restored"
        returns(lambda: read_until(master, b"detached: console of vm1"), "the console's last words")


def test_console_on_a_terminal_restores_it_on_sigterm(lab: Applied) -> None:
    with pty_pair() as (master, slave):
        before = termios.tcgetattr(slave)
        console = subprocess.Popen([VNET, "console", lab.file, "vm1"], stdin=slave, stdout=slave,
                                   stderr=slave)
        try:
            returns(lambda: read_until(master, b"detach with Ctrl-]"), "the console's banner")
            returns(lambda: _wait_raw(slave), "raw mode")
            assert termios.tcgetattr(slave) != before
            console.send_signal(signal.SIGTERM)
            assert returns(console.wait, "console after SIGTERM") == 128 + signal.SIGTERM
        finally:
            _end(console)
        assert termios.tcgetattr(slave) == before, "the terminal is restored"


# --- a VM that stops ---------------------------------------------------------------------------


def test_logs_follow_ends_when_the_vm_stops_and_the_log_stays(lab: Applied) -> None:
    vm = _vm(lab)
    follow = subprocess.Popen([VNET, "logs", "-f", lab.file, "vm1"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert follow.stdout is not None
        returns(lambda: read_until(follow.stdout.fileno(), b"vnet-tiny: ready"), "the log so far")
        with GuestAgent(qemu.vm_paths(lab.name, "vm1").agent) as agent:
            agent.run_script("echo vnet-last-words > /dev/ttyS0", 30)
        returns(lambda: read_until(follow.stdout.fileno(), b"vnet-last-words"), "what follows")
        os.kill(vm.pid, signal.SIGKILL)  # a crash: QEMU leaves its run directory
        _out, err = returns(follow.communicate, "logs -f after the VM stopped")
        assert follow.returncode == 0, err
    finally:
        _end(follow)
    returns(lambda: _gone(vm), "the killed QEMU to go")
    left = vnet("logs", "-n", "3", lab.file, "vm1")
    assert left.returncode == 0 and b"vnet-last-words" in left.stdout, shown(left)
    assert b"is not running" in left.stderr


def test_a_stopped_vm_has_no_console_nor_exec(lab: Applied) -> None:
    assert not any(vm.node == "vm1" for vm in qemu.running_vms(lab.name))
    for argv in (("console", lab.file, "vm1"), ("exec", lab.file, "vm1", "--", "true")):
        done = vnet(*argv)
        assert done.returncode == EX_UNAVAILABLE, shown(done)
        assert b"VM vm1 of lab" in done.stderr and b"is not running" in done.stderr, shown(done)
    shutil.rmtree(qemu.vm_paths(lab.name, "vm1").dir)  # what destroy removes: then no log either
    gone = vnet("logs", lab.file, "vm1")
    assert gone.returncode == EX_UNAVAILABLE and b"is not running" in gone.stderr, shown(gone)
    assert load(lab.file).name == lab.name


# --- helpers -----------------------------------------------------------------------------------


def _wait_raw(fd: int) -> None:
    while termios.tcgetattr(fd)[3] & termios.ICANON:
        time.sleep(0.01)


def _wait_in_guest(lab: Applied, script: str) -> None:
    with GuestAgent(qemu.vm_paths(lab.name, "vm1").agent) as agent:
        while agent.run_script(script, 30).returncode != 0:
            time.sleep(0.1)


def _gone(vm: qemu.RunningVm) -> None:
    while qemu.still_running(vm):
        time.sleep(0.01)


def _end(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()

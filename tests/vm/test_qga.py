"""The qemu-guest-agent client, against a real qemu-ga.

No guest image is needed: Debian's `qemu-guest-agent` package runs `qemu-ga --method
unix-listen --path SOCK` on this host as a stand-in peer. It speaks exactly the protocol the
agent in a guest speaks over virtio-serial (same binary, another transport), and the commands
it runs are run on this host, so the tests only run harmless ones (echo, false, sh -c).
Each test starts its own qemu-ga as a subprocess and kills it by pid afterwards.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hanglib import HANG, returns

from vnet.vm.agent import MAX_INPUT, AgentError, GuestAgent, GuestResult
from vnet.vm.qga import QGA_PORT_NAME, QgaAgent, qga_qemu_args

QEMU_GA = shutil.which("qemu-ga") or "/usr/sbin/qemu-ga"
needs_qemu_ga = pytest.mark.skipif(not Path(QEMU_GA).exists(),
                                   reason="qemu-ga is not installed (apt-get install qemu-guest-agent)")


def _wait_for_socket(path: Path, process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"qemu-ga did not start: {process.stderr.read() if process.stderr else ''!r}")
        time.sleep(0.02)


@pytest.fixture
def qga_socket(tmp_path: Path) -> Iterator[Path]:
    """A qemu-ga of this test's own, listening on a UNIX socket; killed by pid at the end."""
    state = tmp_path / "state"
    state.mkdir()
    path = tmp_path / "qga.sock"
    process = subprocess.Popen([QEMU_GA, "--method", "unix-listen", "--path", str(path),
                                "--statedir", str(state), "--pidfile", str(state / "qemu-ga.pid")],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        _wait_for_socket(path, process)
        yield path
    finally:
        process.kill()
        process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


@pytest.fixture
def agent(qga_socket: Path) -> Iterator[QgaAgent]:
    with QgaAgent(qga_socket) as client:
        client.wait_ready(10)
        yield client


# --- QEMU arguments and the interface ------------------------------------------------------------


def test_qemu_args_wire_the_standard_port() -> None:
    args = qga_qemu_args("/run/vnet/lab,x/vm1/qga.sock")
    assert args == [
        "-chardev", "socket,id=vnetqga,path=/run/vnet/lab,,x/vm1/qga.sock,server=on,wait=off",
        "-device", "virtio-serial-pci,id=vnetqgabus",
        "-device", f"virtserialport,bus=vnetqgabus.0,chardev=vnetqga,name={QGA_PORT_NAME}",
    ]
    assert QGA_PORT_NAME == "org.qemu.guest_agent.0"  # what qemu-ga opens in a guest by default


def test_a_socket_path_too_long_for_sun_path() -> None:
    with pytest.raises(AgentError, match="longer than 107 bytes"):
        qga_qemu_args("/" + "x" * 120)
    with pytest.raises(AgentError):
        QgaAgent("/" + "x" * 120)


def test_same_interface_as_the_tiny_agent() -> None:
    for name in ("wait_ready", "run", "close"):
        ours = inspect.signature(getattr(QgaAgent, name))
        theirs = inspect.signature(getattr(GuestAgent, name))
        assert list(ours.parameters) == list(theirs.parameters), name


# --- against qemu-ga -----------------------------------------------------------------------------


@needs_qemu_ga
def test_echo(agent: QgaAgent) -> None:
    assert agent.run(["echo", "hello", "world"]) == GuestResult(0, b"hello world\n", b"")


@needs_qemu_ga
def test_a_failing_command(agent: QgaAgent) -> None:
    result = agent.run(["false"])
    assert result.returncode == 1
    assert (result.stdout, result.stderr) == ("", "")


@needs_qemu_ga
def test_stdout_stderr_and_status(agent: QgaAgent) -> None:
    result = agent.run(["sh", "-c", "printf 'out\\n'; printf 'héllo err\\n' >&2; exit 3"])
    assert result == GuestResult(3, b"out\n", "héllo err\n".encode())


@needs_qemu_ga
def test_killed_by_a_signal(agent: QgaAgent) -> None:
    assert agent.run(["sh", "-c", "kill -9 $$"]).returncode == -9


@needs_qemu_ga
def test_arguments_are_not_split_by_a_shell(agent: QgaAgent) -> None:
    assert agent.run(["printf", "%s|", "a b", "$HOME", "*"]).stdout == "a b|$HOME|*|"


@needs_qemu_ga
def test_an_unknown_program_is_an_agent_error(agent: QgaAgent) -> None:
    with pytest.raises(AgentError, match="refused guest-exec"):
        agent.run(["/nonexistent/vnet-no-such-program"])
    assert agent.run(["true"]).returncode == 0  # the connection is still usable


def _open_gate(gate: Path) -> None:
    """Let the `cat` reading FIFO `gate` end: a writer opens and closes it, and cat reads EOF.
    O_NONBLOCK fails (ENXIO) until cat has it open, so retry until it has (or give up)."""
    deadline = time.monotonic() + HANG
    while True:
        try:
            os.close(os.open(gate, os.O_WRONLY | os.O_NONBLOCK))
            return
        except OSError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)


@needs_qemu_ga
def test_timeout_then_the_next_command_still_works(agent: QgaAgent, tmp_path: Path) -> None:
    # The command reads a FIFO that only this test opens for writing: it cannot end on its own.
    # So the AgentError proves that run() gave up on its timeout rather than waiting for the
    # command, whatever the machine's speed; a run() that waited would hang (caught by `returns`).
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    try:
        with pytest.raises(AgentError, match=r"within 0\.5 s"):
            returns(lambda: agent.run(["cat", str(gate)], timeout=0.5), "run() of a command that never ends")
    finally:
        _open_gate(gate)  # qemu-ga's `cat` ends instead of outliving the test
    assert agent.run(["echo", "after"]).stdout == "after\n"


@needs_qemu_ga
def test_resync_after_garbage_and_a_stale_reply(qga_socket: Path) -> None:
    # Another client leaves a half-written request behind, then goes away. (It reads its reply
    # first: closing a UNIX socket with unread data resets it, and qemu-ga in unix-listen mode
    # exits on that; in a guest, behind QEMU's chardev, the agent never sees the host's client.)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
        other.connect(str(qga_socket))
        other.settimeout(5)
        other.sendall(b'{"execute": "guest-ping", "id": 1}\n{"execute": "guest-')
        assert other.recv(4096) == b'{"return": {}, "id": 1}\n'
    with QgaAgent(qga_socket) as client:
        client.wait_ready(10)
        assert client.run(["echo", "clean"]).stdout == "clean\n"
        # Replies to abandoned requests are skipped, not taken for the next one's.
        client._send(b'{"execute": "guest-info", "id": "stale"}\n', time.monotonic() + 5)
        client._send(b'{"execute": "guest-exec-status", "arguments": {"pid": 1}}\n', time.monotonic() + 5)
        assert client.run(["echo", "next"]).stdout == "next\n"
        # A half-sent request of our own (a timeout in the middle of a write) is dropped by the resync.
        client._send(b'{"execute": "guest-exec", "arguments": {"pa', time.monotonic() + 5)
        client._synced = False
        assert client.run(["echo", "resynced"]).stdout == "resynced\n"


@needs_qemu_ga
def test_many_commands_on_one_connection_and_reconnects(qga_socket: Path) -> None:
    for round_ in range(2):
        with QgaAgent(qga_socket) as client:  # a new connection each round
            for k in range(5):
                assert client.run(["echo", f"{round_}.{k}"]).stdout == f"{round_}.{k}\n"


@needs_qemu_ga
def test_large_output(agent: QgaAgent) -> None:
    result = agent.run(["head", "-c", "300000", "/dev/zero"], timeout=30)
    assert result.returncode == 0 and len(result.stdout) == 300000


@needs_qemu_ga
def test_standard_input(agent: QgaAgent) -> None:
    data = b"line one\n" + bytes(range(256)) * 400  # binary: base64 in input-data
    assert agent.run(["sha256sum"], stdin=data).stdout.split()[0] == hashlib.sha256(data).hexdigest()
    assert agent.run(["cat"], stdin=b"echoed\n").stdout == "echoed\n"
    assert agent.run(["wc", "-c"]).stdout.split() == ["0"]  # no input given: none
    with pytest.raises(ValueError, match="at most"):
        agent.run(["cat"], stdin=b"x" * (MAX_INPUT + 1))


def test_wait_ready_times_out_without_an_agent(tmp_path: Path) -> None:
    # It gives up with an error naming its timeout instead of retrying forever (`returns`).
    nobody = QgaAgent(tmp_path / "nobody.sock")
    with pytest.raises(AgentError, match=r"did not answer within 0\.3 s") as caught:
        returns(lambda: nobody.wait_ready(0.3), "wait_ready(0.3) without an agent")
    assert "qemu-guest-agent" in caught.value.hint


def test_wait_ready_times_out_on_a_silent_peer(tmp_path: Path) -> None:
    # A socket that accepts and never answers: QEMU's chardev before the guest's agent starts.
    path = tmp_path / "silent.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen(4)
        with pytest.raises(AgentError, match="did not answer"):
            QgaAgent(path).wait_ready(0.5)

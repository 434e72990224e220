"""Host side of a VM's serial console: attach a terminal or a pipe to it (`vnet console`), and
print what the guest wrote to it (`vnet logs`).

QEMU serves the serial port on a UNIX socket and copies everything the guest writes to the
serial log, attached or not (vnet/mechanisms/qemu/process.py, serial_args). It serves one client
at a time: a second client's connect() succeeds but waits, unanswered, in the listen backlog
until the first leaves. So `connect` first looks in /proc/net/unix for a client QEMU has accepted
(an accepted socket carries the listener's path) and refuses with ConsoleBusyError instead of
seeming attached to a silent console.

On a terminal, it is put in raw mode (every key, Ctrl-C and Ctrl-Z too, goes to the guest, which
echoes) and restored however attach ends: detach, the VM going away, an error, SIGTERM or SIGHUP.
DETACH (Ctrl-], as in telnet and virsh) detaches. From a pipe, bytes are copied both ways and no
byte is special; at the end of the input the output is still copied for `linger` seconds (as
socat's -t), so `echo CMD | vnet console` prints what CMD wrote. Input waits while the guest does
not take it, but output is always read meanwhile: a guest blocked writing cannot block its input.
"""

from __future__ import annotations

import contextlib
import enum
import os
import selectors
import signal
import socket
import termios
import time
import tty
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

from vnet.errors import EX_TEMPFAIL, NotOnHostError, VnetError
from vnet.host.signals import handling

DETACH = 0x1D  # Ctrl-]
DETACH_KEY = "Ctrl-]"
CHUNK = 1 << 16
FOLLOW_POLL = 0.2  # s between looks at a followed log that has nothing new
_CONNECTED = "03"  # SS_CONNECTED in /proc/net/unix's St column


class ConsoleBusyError(VnetError):
    """Another client is attached to the VM's console (QEMU serves one at a time)."""

    exit_code = EX_TEMPFAIL


class Ended(enum.Enum):
    DETACHED = "detached"
    CLOSED = "the console closed (the VM stopped)"
    END_OF_INPUT = "end of input"


def attached_clients(socket_path: Path) -> int:
    """How many clients QEMU has accepted on `socket_path` (0 when /proc/net/unix cannot tell)."""
    try:
        table = Path("/proc/net/unix").read_text(errors="replace")
    except OSError:
        return 0
    path = os.fspath(socket_path)
    count = 0
    for line in table.splitlines()[1:]:  # Num RefCount Protocol Flags Type St Inode Path
        fields = line.split(None, 7)
        if len(fields) == 8 and fields[7] == path and fields[5] == _CONNECTED:
            count += 1
    return count


def connect(socket_path: Path, node: str) -> socket.socket:
    """A connection to the console of VM `node`; ConsoleBusyError while another client has it."""
    if attached_clients(socket_path):
        raise ConsoleBusyError(f"the serial console of {node} is in use by another client",
                               "QEMU serves one console client at a time: detach the other one "
                               f"({DETACH_KEY}) or end it, then attach again")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(os.fspath(socket_path))
    except FileNotFoundError:
        sock.close()
        raise NotOnHostError(f"VM {node} has no console socket ({socket_path})",
                             "it was started by an older vnet, whose serial port is only a log: "
                             "`vnet apply` restarts it with a console (`vnet logs` reads the log)") from None
    except OSError as exc:
        sock.close()
        raise NotOnHostError(f"cannot connect to the serial console of {node}: {exc.strerror}",
                             "its QEMU has probably just exited: see `vnet status`") from None
    return sock


def attach(sock: socket.socket, in_fd: int, out_fd: int, *, terminal: bool, linger: float) -> Ended:
    """Copy `in_fd` to the console and the console to `out_fd` until detached (DETACH, on a
    terminal only, which is put in raw mode meanwhile), the console closes, or `linger` seconds
    after the end of the input."""
    if not terminal:
        return _pump(sock, in_fd, out_fd, detach=False, linger=linger)
    saved = termios.tcgetattr(in_fd)
    try:
        with _signals_end_attach():
            tty.setraw(in_fd)
            return _pump(sock, in_fd, out_fd, detach=True, linger=linger)
    finally:
        termios.tcsetattr(in_fd, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def _signals_end_attach() -> Iterator[None]:
    """SIGTERM and SIGHUP end attach through its `finally` (the terminal is restored), with the
    status a shell gives a command the signal ended."""
    def stop(number: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + number)

    with handling(stop, signal.SIGTERM, signal.SIGHUP):
        yield


def _pump(sock: socket.socket, in_fd: int, out_fd: int, *, detach: bool, linger: float) -> Ended:
    sock.setblocking(False)
    selector = selectors.PollSelector()  # epoll refuses regular files and /dev/null as input
    selector.register(sock, selectors.EVENT_READ)
    pending = b""  # input the console has not taken yet; no more is read meanwhile
    input_open, reading = True, False  # in_fd: not at its end yet; registered in the selector
    stop_at: float | None = None  # `linger` s after all of the input was sent
    try:
        while True:
            if input_open and not pending and not reading:
                selector.register(in_fd, selectors.EVENT_READ)
            elif reading and (pending or not input_open):
                selector.unregister(in_fd)
            reading = input_open and not pending
            selector.modify(sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if pending else 0))
            if not input_open and not pending and stop_at is None:
                stop_at = time.monotonic() + linger
            timeout = None if stop_at is None else stop_at - time.monotonic()
            if timeout is not None and timeout <= 0:
                return Ended.END_OF_INPUT
            for key, mask in selector.select(timeout):
                if key.fileobj is not sock:
                    data = _read_input(in_fd)
                    if detach and (DETACH in data or not data):  # a terminal's end: it hung up
                        _send_all(sock, pending + data.partition(bytes([DETACH]))[0])
                        return Ended.DETACHED
                    input_open = bool(data)
                    pending += data
                    continue
                try:
                    if mask & selectors.EVENT_WRITE:
                        pending = pending[sock.send(pending):]
                    if mask & selectors.EVENT_READ:
                        data = sock.recv(CHUNK)
                        if not data:
                            return Ended.CLOSED
                        write_all(out_fd, data)
                except BlockingIOError:
                    continue
                except ConnectionError:
                    return Ended.CLOSED
    finally:
        selector.close()


def _read_input(fd: int) -> bytes:
    try:
        return os.read(fd, CHUNK)
    except OSError:  # EIO: the terminal went away
        return b""


def _send_all(sock: socket.socket, data: bytes) -> None:
    """What is left of the input before a detach, sent within a moment (or dropped)."""
    sock.settimeout(1.0)
    with contextlib.suppress(OSError):
        sock.sendall(data)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# --- the serial log ------------------------------------------------------------------------

def last_lines(path: Path, lines: int | None) -> tuple[bytes, int]:
    """The log (or its last `lines` lines) and the offset where it ends, for `follow`."""
    with open(path, "rb") as log:
        size = log.seek(0, os.SEEK_END)
        if lines is None:
            log.seek(0)
            return log.read(size), size
        # Backwards by chunks until the last `lines` lines are whole: a long log is not read whole.
        # Lines end at \n only, as for tail(1): a guest's \r (progress bars) stays in its line.
        start, tail = size, b""
        while start > 0 and tail.count(b"\n", 0, max(0, len(tail) - 1)) < lines:
            step = min(CHUNK, start)
            start -= step
            log.seek(start)
            tail = log.read(step) + tail
        ends = tail.endswith(b"\n")
        kept = (tail[:-1] if ends else tail).split(b"\n")[-lines:] if lines and tail else []
        return b"\n".join(kept) + (b"\n" if kept and ends else b""), size


def follow(path: Path, offset: int, out_fd: int, running: Callable[[], bool]) -> None:
    """Copy what is written to the log after `offset` to `out_fd` until `running()` says the VM
    has stopped (then what it wrote last is copied too)."""
    with open(path, "rb") as log:  # this file: a restarted VM writes a new one, its own
        log.seek(offset)
        while True:
            alive = running()  # asked before the last read: nothing written before it ended is lost
            data = log.read(CHUNK)
            if data:
                write_all(out_fd, data)
                continue
            if not alive:
                return
            time.sleep(FOLLOW_POLL)

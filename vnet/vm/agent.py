"""Host side of the tiny guest's agent: run shell commands inside a guest over virtio-serial.

Channel: QEMU exposes a UNIX socket (chardev `socket,server=on,wait=off`) wired to the virtio-serial
port `org.vnet.agent`; the guest's /init (vnet/vm/guest/init) serves it. Line protocol:

    host -> guest   <id> <base64 command line> <timeout s>\\n
                    or, with standard input, <id> <base64 command line> <timeout s> <n> <sha256>\\n
                    then the input in base64 (n characters, their sha256 in hex) and \\n
    guest -> host   <id> <returncode> <base64 stdout> <base64 stderr>\\n   ("-" for empty output)

The guest runs the command with `sh -c`, stdin the input (else /dev/null), and kills it after
<timeout> seconds (so a hung command cannot block the single-threaded agent for the next client).
The timeout field is required: a request cut short by a disconnect loses it and the guest ignores
the line instead of running a truncated command; input runs only with the announced length and
hash, and as one base64 word it can never parse as a request. It is sent whole before the command
starts (not a stream), at most MAX_INPUT bytes. Empty lines are keep-alives and are skipped.

Reconnects (measured with QEMU 7.2 and Debian's 6.1 kernel): QEMU's chardev server serves one client
at a time; a second client's connect() succeeds at once but waits in the listen backlog, unanswered,
until the first disconnects. While no client is connected the guest's read() returns EOF and its
write() blocks (wait_port_writable), so the agent waits for the next client in a write, without
polling. A reply that was being written when its client went away is partly dropped by QEMU and the
rest goes to the next client. Hence every GuestAgent uses ids with a random token and skips every
line that is not the reply it waits for; stale replies and fragments are discarded. A new GuestAgent
per command (`vnet exec`, then `vnet verify`) therefore works; one object is not thread-safe.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import os
import secrets
import shlex
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from vnet.errors import UnavailableError

AGENT_PORT_NAME = "org.vnet.agent"
CHARDEV_ID = "vnetagent"
SERIAL_BUS_ID = "vnetagentbus"
SUN_PATH_MAX = 107  # bytes of a UNIX socket path, without the NUL
REFUSED_GRACE = 5.0  # s of ECONNREFUSED on an existing socket before deciding that QEMU is gone
PING_INTERVAL = 2.0  # wait_ready repeats its probe: one sent while the agent restarts may be lost
CANCEL_POLL = 0.1  # s: how often wait_ready asks whether to stop waiting (an interrupted apply)
READ_CHUNK = 1 << 20
# Standard input of one command: the guest holds it in RAM (twice while decoding it), so a bound
# a small guest takes; qemu-guest-agent gets the same (one JSON string on one line).
MAX_INPUT = 8 << 20


@dataclass(frozen=True)
class GuestResult:
    """A command's exit status and output as the guest gave them: bytes (a binary's output
    passes whole); `stdout`/`stderr` are the text."""

    returncode: int
    out: bytes
    err: bytes

    @property
    def stdout(self) -> str:
        return self.out.decode("utf-8", "replace")

    @property
    def stderr(self) -> str:
        return self.err.decode("utf-8", "replace")


class AgentError(UnavailableError):
    """The guest agent cannot be reached, did not answer in time, or answered nonsense."""


def _check_socket_path(socket_path: Path) -> None:
    if len(os.fsencode(socket_path)) > SUN_PATH_MAX:
        raise AgentError(f"agent socket path is longer than {SUN_PATH_MAX} bytes: {socket_path}",
                         hint="use a shorter run directory")


def agent_qemu_args(socket_path: Path) -> list[str]:
    """QEMU arguments that serve the guest agent's port on the UNIX socket `socket_path`."""
    _check_socket_path(socket_path)
    path = str(socket_path).replace(",", ",,")  # QEMU option syntax escapes commas by doubling
    return [
        "-chardev", f"socket,id={CHARDEV_ID},path={path},server=on,wait=off",
        "-device", f"virtio-serial-pci,id={SERIAL_BUS_ID}",
        "-device", f"virtserialport,bus={SERIAL_BUS_ID}.0,chardev={CHARDEV_ID},name={AGENT_PORT_NAME}",
    ]


def _decode_field(field: bytes) -> bytes:
    if field == b"-":
        return b""
    return base64.b64decode(field, validate=True)


def _summary(script: str) -> str:
    line = " ".join(script.split())
    return line if len(line) <= 60 else line[:57] + "..."


class GuestAgent:
    """A connection to one guest's agent; opened on first use, reopened after QEMU drops it."""

    def __init__(self, socket_path: Path) -> None:
        _check_socket_path(socket_path)
        self.socket_path = Path(socket_path)
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self._scanned = 0  # bytes of _buffer known to hold no newline
        self._token = secrets.token_hex(6)  # ids of other clients and sessions never match ours
        self._seq = 0

    def __enter__(self) -> GuestAgent:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buffer.clear()
        self._scanned = 0

    # -- public operations

    def wait_ready(self, timeout: float) -> None:
        """Return once the guest agent answers; AgentError after `timeout` seconds."""
        self.wait_ready_unless(timeout, None)

    def wait_ready_unless(self, timeout: float, cancelled: Callable[[], bool] | None) -> bool:
        """wait_ready, asking `cancelled` every CANCEL_POLL s: True once the agent answers,
        False as soon as `cancelled()` is true (an interrupted apply stops waiting)."""
        deadline = time.monotonic() + timeout
        pending: set[str] = set()
        next_ping = 0.0
        poll = PING_INTERVAL if cancelled is None else CANCEL_POLL
        while True:
            if cancelled is not None and cancelled():
                return False
            now = time.monotonic()
            if now >= deadline:
                raise AgentError(f"the guest agent on {self.socket_path} did not answer within {timeout:g} s",
                                 hint="the guest may still be booting or have failed: read its console log")
            try:
                if now >= next_ping:
                    request_id = self._next_id()
                    pending.add(request_id)
                    self._send(self._request(request_id, "true", 10), deadline)
                    next_ping = now + PING_INTERVAL
                self._await_reply(pending, min(deadline, next_ping, now + poll))
                return True
            except TimeoutError:
                continue
            except OSError as exc:
                raise self._broken(exc) from exc

    def run(self, argv: Sequence[str], timeout: float = 30.0, stdin: bytes | None = None,
            grace: float = 0.0) -> GuestResult:
        """Run `argv` in the guest (quoted with shlex.join); AgentError if no reply in `timeout` s
        (+ `grace`)."""
        return self.run_script(shlex.join(argv), timeout, stdin, grace)

    def run_script(self, script: str, timeout: float = 30.0, stdin: bytes | None = None,
                   grace: float = 0.0) -> GuestResult:
        """Run a shell script with `sh -c` in the guest, with `stdin` (at most MAX_INPUT bytes) as
        its standard input, else /dev/null; the guest kills it after `timeout` s (status 137),
        and vnet waits `grace` s more for that answer."""
        if stdin is not None and len(stdin) > MAX_INPUT:
            raise ValueError(f"standard input of {len(stdin)} bytes; at most {MAX_INPUT}")
        deadline = time.monotonic() + timeout + grace
        request_id = self._next_id()
        try:
            self._send(self._request(request_id, script, max(1, math.ceil(timeout)), stdin), deadline)
            fields = self._await_reply({request_id}, deadline)
        except TimeoutError as exc:
            raise AgentError(
                f"no reply from the guest agent on {self.socket_path} within {timeout:g} s"
                f" to: {_summary(script)}",
                hint="the command may hang, or another client holds the agent (QEMU serves one at a time)",
            ) from exc
        except OSError as exc:
            raise self._broken(exc) from exc
        try:
            return GuestResult(int(fields[1]), _decode_field(fields[2]), _decode_field(fields[3]))
        except (ValueError, binascii.Error) as exc:
            raise AgentError(f"malformed reply from the guest agent on {self.socket_path}") from exc

    # -- the connection

    def _broken(self, exc: OSError) -> AgentError:
        self.close()
        return AgentError(f"the guest agent connection on {self.socket_path} failed: {exc}",
                          hint="QEMU has probably exited: read the guest's console log")

    def _next_id(self) -> str:
        self._seq += 1
        return f"{self._token}-{self._seq}"

    @staticmethod
    def _request(request_id: str, script: str, guest_timeout: int, stdin: bytes | None = None) -> bytes:
        line = f"{request_id} {base64.b64encode(script.encode()).decode()} {guest_timeout}"
        if not stdin:  # no input and empty input are the same to the command: the short form
            return f"{line}\n".encode()
        data = base64.b64encode(stdin)
        return f"{line} {len(data)} {hashlib.sha256(data).hexdigest()}\n".encode() + data + b"\n"

    def _connect(self, deadline: float) -> socket.socket:
        """The connection, opened now if needed; retries while QEMU is not (yet) listening."""
        refused_since: float | None = None
        while self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(max(0.05, deadline - time.monotonic()))
                sock.connect(str(self.socket_path))
                self._sock = sock
            except (FileNotFoundError, ConnectionRefusedError, BlockingIOError) as exc:
                sock.close()
                now = time.monotonic()
                if isinstance(exc, ConnectionRefusedError):  # the socket exists: is QEMU still there?
                    refused_since = now if refused_since is None else refused_since
                if now >= deadline or (refused_since is not None and now - refused_since > REFUSED_GRACE):
                    raise AgentError(f"cannot connect to the guest agent on {self.socket_path}: {exc}",
                                     hint="is the guest's QEMU running?") from exc
                time.sleep(0.05)
            except OSError:  # TimeoutError included: the caller reports it with context
                sock.close()
                raise
        return self._sock

    def _send(self, data: bytes, deadline: float) -> None:
        sock = self._connect(deadline)
        try:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            sock.sendall(data)
        except OSError:
            self.close()  # a partial line is left behind: the guest discards it when we disconnect
            raise

    def _await_reply(self, ids: set[str], deadline: float) -> list[bytes]:
        """The fields of the next reply to one of `ids`; other lines are stale and skipped."""
        while True:
            fields = self._readline(deadline).split(b" ")
            if len(fields) == 4 and fields[0].decode("ascii", "replace") in ids:
                return fields

    def _readline(self, deadline: float) -> bytes:
        sock = self._connect(deadline)
        while True:
            end = self._buffer.find(b"\n", self._scanned)
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                self._scanned = 0
                return line
            self._scanned = len(self._buffer)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            sock.settimeout(remaining)
            chunk = sock.recv(READ_CHUNK)
            if not chunk:
                self.close()
                raise AgentError(f"the guest agent connection on {self.socket_path} was closed",
                                 hint="QEMU has probably exited: read the guest's console log")
            self._buffer += chunk

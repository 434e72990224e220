"""Host side of qemu-guest-agent (QGA): run commands in guests booted from a user's disk image.

The interface is the tiny guest's agent's (`vnet.vm.agent.GuestAgent`): `wait_ready(timeout)`,
`run(argv, timeout) -> GuestResult`, `close()`, and the same `GuestResult` / `AgentError`, so
`vnet exec` and `vnet verify` do not care which agent a guest has.

Channel: QEMU serves a UNIX socket (chardev `socket,server=on,wait=off`) wired to the
virtio-serial port `org.qemu.guest_agent.0`, which qemu-ga in the guest opens (`qga_qemu_args`).
The image must already contain qemu-guest-agent: vnet installs nothing in a guest.

Protocol (QGA JSON, one object per line): vnet first resynchronises, because the stream may hold
a half-read reply or half-written request of an earlier client, and the agent may have just
started. It sends 0xFF (which makes the agent's JSON parser drop whatever it had) and
`guest-sync-delimited` with a fresh random id; the agent answers with 0xFF followed by
`{"return": id}`, and everything before that marker is discarded. Each later request carries an
`id`, which the agent echoes; replies with another id are stale and skipped. A command runs with
`guest-exec` (`capture-output`, and its standard input whole in `input-data`, else none), then
`guest-exec-status` is polled until it has exited; its output comes back base64-encoded. A
command killed by signal N has returncode -N, as in `subprocess`. QGA (7.2) cannot kill a
command: after `timeout` vnet stops waiting (AgentError) and the command may still be running in
the guest. Nor can it give a command a terminal (guest-exec has no pty): `vnet console` can.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from vnet.vm.agent import MAX_INPUT, AgentError, GuestResult

QGA_PORT_NAME = "org.qemu.guest_agent.0"
CHARDEV_ID = "vnetqga"
SERIAL_BUS_ID = "vnetqgabus"
SUN_PATH_MAX = 107  # bytes of a UNIX socket path, without the NUL
SYNC_ATTEMPT = 1.0  # s to wait for one guest-sync-delimited reply before sending another
POLL_FIRST, POLL_MAX = 0.01, 0.2  # s between guest-exec-status polls (doubling)
DELIMITER = b"\xff"
READ_CHUNK = 1 << 16


def qga_qemu_args(socket_path: str | Path) -> list[str]:
    """QEMU arguments that serve qemu-guest-agent's port on the UNIX socket `socket_path`."""
    _check_socket_path(socket_path)
    path = os.fspath(socket_path).replace(",", ",,")  # QEMU option syntax doubles commas
    return [
        "-chardev", f"socket,id={CHARDEV_ID},path={path},server=on,wait=off",
        "-device", f"virtio-serial-pci,id={SERIAL_BUS_ID}",
        "-device", f"virtserialport,bus={SERIAL_BUS_ID}.0,chardev={CHARDEV_ID},name={QGA_PORT_NAME}",
    ]


def _check_socket_path(socket_path: str | Path) -> None:
    if len(os.fsencode(socket_path)) > SUN_PATH_MAX:
        raise AgentError(f"guest agent socket path is longer than {SUN_PATH_MAX} bytes: {socket_path}",
                         hint="use a shorter run directory")


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


class QgaAgent:
    """A connection to one guest's qemu-guest-agent; opened on first use, reopened when dropped."""

    def __init__(self, socket_path: str | Path) -> None:
        _check_socket_path(socket_path)
        self.socket_path = Path(socket_path)
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self._token = secrets.token_hex(4)
        self._seq = 0
        self._synced = False

    def __enter__(self) -> QgaAgent:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buffer.clear()
        self._synced = False

    # -- public operations

    def wait_ready(self, timeout: float) -> None:
        """Return once the agent answers a sync; AgentError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._sync(min(deadline, time.monotonic() + SYNC_ATTEMPT))
                return
            except (TimeoutError, ConnectionError) as exc:
                if isinstance(exc, ConnectionError):
                    self.close()  # QEMU dropped us (or is not there yet): connect again
                # else keep the connection: replies to earlier syncs are skipped by their id
                if time.monotonic() >= deadline:
                    raise AgentError(
                        f"qemu-guest-agent on {self.socket_path} did not answer within {timeout:g} s",
                        hint="the guest may still be booting, or its image lacks qemu-guest-agent "
                             "(vnet installs nothing in a guest)") from None
                time.sleep(0.05)
            except OSError as exc:
                raise self._broken(exc) from exc

    def run(self, argv: Sequence[str], timeout: float = 30.0, stdin: bytes | None = None,
            grace: float = 0.0) -> GuestResult:
        """Run `argv` in the guest (no shell: argv[0] is looked up in the guest's PATH), with
        `stdin` (at most MAX_INPUT bytes) as its standard input, else none; AgentError after
        `timeout` (+ `grace`) s."""
        if not argv:
            raise ValueError("run needs a command")
        if stdin is not None and len(stdin) > MAX_INPUT:
            raise ValueError(f"standard input of {len(stdin)} bytes; at most {MAX_INPUT}")
        request: dict[str, Any] = {"path": argv[0], "arg": list(argv[1:]), "capture-output": True}
        if stdin:
            request["input-data"] = base64.b64encode(stdin).decode()
        deadline = time.monotonic() + timeout + grace
        try:
            if not self._synced:
                self._sync(deadline)
            started = self.execute("guest-exec", request, deadline)
            status = self._wait_exit(int(started["pid"]), deadline)
        except TimeoutError:
            # The connection stays: a late reply is skipped by its id, and a request cut short
            # is dropped by the next sync's 0xFF. (Closing with a reply unread would also make a
            # host-side `qemu-ga --method unix-listen` exit.)
            self._synced = False
            raise AgentError(f"no result from qemu-guest-agent on {self.socket_path} within "
                             f"{timeout:g} s for: {' '.join(argv)[:60]}",
                             hint="the command may still be running in the guest") from None
        except OSError as exc:
            raise self._broken(exc) from exc
        return _result(status)

    def execute(self, command: str, arguments: dict[str, Any] | None, deadline: float) -> Any:
        """One QGA command; its `return` value, or AgentError carrying the agent's error."""
        request_id = self._next_id()
        request: dict[str, Any] = {"execute": command, "id": request_id}
        if arguments is not None:
            request["arguments"] = arguments
        self._send(json.dumps(request).encode() + b"\n", deadline)
        while True:
            reply = self._read_object(deadline)
            if reply.get("id") != request_id:
                continue  # a stale reply of an earlier, abandoned request
            if "error" in reply:
                error = reply["error"]
                desc = error.get("desc", error) if isinstance(error, dict) else error
                raise AgentError(f"qemu-guest-agent refused {command}: {desc}")
            return reply.get("return")

    # -- protocol

    def _wait_exit(self, pid: int, deadline: float) -> dict[str, Any]:
        pause = POLL_FIRST
        while True:
            status = self.execute("guest-exec-status", {"pid": pid}, deadline)
            if status.get("exited"):
                return dict(status)
            time.sleep(min(pause, _remaining(deadline)))
            pause = min(pause * 2, POLL_MAX)

    def _sync(self, deadline: float) -> None:
        """0xFF + guest-sync-delimited; discard everything up to the agent's 0xFF and our id."""
        sync_id = secrets.randbelow(1 << 31)
        request = {"execute": "guest-sync-delimited", "arguments": {"id": sync_id}}
        self._send(DELIMITER + json.dumps(request).encode() + b"\n", deadline)
        while True:
            marker = self._buffer.find(DELIMITER)
            if marker < 0:
                self._buffer.clear()
                self._fill(deadline)
                continue
            del self._buffer[:marker + 1]
            reply = self._read_object(deadline)
            if reply.get("return") == sync_id:
                self._synced = True
                return

    def _read_object(self, deadline: float) -> dict[str, Any]:
        """The next JSON object on the stream (lines that are not one are skipped)."""
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                self._fill(deadline)
                continue
            line = bytes(self._buffer[:end]).strip().lstrip(DELIMITER)
            del self._buffer[:end + 1]
            try:
                value = json.loads(line) if line else None
            except ValueError:
                continue
            if isinstance(value, dict):
                return value

    def _fill(self, deadline: float) -> None:
        sock = self._connect(deadline)
        sock.settimeout(_remaining(deadline))
        data = sock.recv(READ_CHUNK)
        if not data:
            raise ConnectionResetError("qemu-guest-agent closed the connection")
        self._buffer += data

    def _send(self, data: bytes, deadline: float) -> None:
        sock = self._connect(deadline)
        sock.settimeout(_remaining(deadline))
        sock.sendall(data)

    def _connect(self, deadline: float) -> socket.socket:
        """The connection, opened now if needed; retries while nothing listens yet."""
        while self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(_remaining(deadline))
                sock.connect(os.fspath(self.socket_path))
                self._sock = sock
                self._synced = False
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                time.sleep(min(0.05, _remaining(deadline)))
            except OSError:
                sock.close()
                raise
        return self._sock

    def _next_id(self) -> str:
        self._seq += 1
        return f"vnet-{self._token}-{self._seq}"

    def _broken(self, exc: OSError) -> AgentError:
        self.close()
        return AgentError(f"the connection to qemu-guest-agent on {self.socket_path} failed: {exc}",
                          hint="QEMU has probably exited: read the guest's console log")


def _decode(status: dict[str, Any], key: str) -> bytes:
    data = status.get(key)
    return base64.b64decode(data) if data else b""


def _result(status: dict[str, Any]) -> GuestResult:
    """guest-exec-status -> GuestResult; killed by signal N -> returncode -N."""
    signal = status.get("signal")
    returncode = -int(signal) if signal else int(status.get("exitcode", 0))
    return GuestResult(returncode, _decode(status, "out-data"), _decode(status, "err-data"))

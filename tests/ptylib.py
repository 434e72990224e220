"""A command on a pseudo terminal, as a person at a terminal runs it.

The command's standard input, output and error are the terminal (its controlling one, in a
session of its own), so Ctrl-C is the byte the terminal turns into SIGINT for its foreground
process group, children included. What it writes is collected by a thread; `text()` is it
without the terminal's control sequences (rich redraws its progress rows in place).

Waits end when the text appears or the command exits; they fail only after hanglib's bound (a
hang), never on time. Importable as `ptylib` from every test directory, as hanglib.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import struct
import subprocess
import termios
import threading
from collections.abc import Iterator, Mapping, Sequence

from hanglib import returns

CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]")
CTRL_C = b"\x03"


class Terminal:
    def __init__(self, argv: Sequence[str], env: Mapping[str, str] | None = None,
                 columns: int = 160, rows: int = 50) -> None:
        self.argv = list(argv)
        master, child = pty.openpty()
        fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        full_env = {**os.environ, "TERM": "xterm-256color", **(env or {})}
        full_env.pop("NO_COLOR", None)
        # setsid(1) execs the command (Popen's child leads no process group: no fork) in a new
        # session whose controlling terminal is this one (no preexec_fn: pytest has threads)
        self.process = subprocess.Popen(["setsid", "--ctty", *self.argv], stdin=child, stdout=child,
                                        stderr=child, env=full_env, close_fds=True)
        os.close(child)
        self.master = master
        self._raw = bytearray()
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True, name="pty reader")
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: every holder of the terminal's other end has closed it
                chunk = b""
            with self._changed:
                self._raw += chunk
                self._changed.notify_all()
            if not chunk:
                return

    def raw(self) -> str:
        with self._changed:
            return self._raw.decode(errors="replace")

    def text(self) -> str:
        """What was written, control sequences removed, each redrawn line as last drawn."""
        lines = CONTROL.sub("", self.raw()).replace("\r\n", "\n").split("\n")
        return "\n".join(line.rsplit("\r", 1)[-1] for line in lines)

    def wait_for(self, pattern: str, what: str) -> re.Match[str]:
        """The first match of `pattern` in what the command wrote (regular expression); fails
        when the command ends without writing it."""
        def seen() -> re.Match[str] | None:
            with self._changed:
                while True:
                    found = re.search(pattern, CONTROL.sub("", self._raw.decode(errors="replace")))
                    if found or not self._reader.is_alive():
                        return found
                    self._changed.wait(1.0)
        found = returns(seen, f"{what} ({' '.join(self.argv)})")
        assert found is not None, f"{what}: not written before the command ended:\n{self.text()}"
        return found

    def interrupt(self) -> None:
        """Ctrl-C, typed at the terminal."""
        os.write(self.master, CTRL_C)

    def wait(self) -> int:
        """The command's exit status, once it and the terminal's reader are done."""
        code = returns(self.process.wait, f"{' '.join(self.argv)} exits")
        returns(self._reader.join, "the terminal's reader ends")
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self.master)


@contextlib.contextmanager
def pty_pair() -> Iterator[tuple[int, int]]:
    """A bare pseudo terminal (master, slave), for a command given the slave as its terminal."""
    master, slave = pty.openpty()
    try:
        yield master, slave
    finally:
        os.close(master)
        os.close(slave)


def read_until(fd: int, wanted: bytes) -> bytes:
    """Bytes from `fd` up to and including `wanted` (AssertionError at its end without it)."""
    seen = b""
    while wanted not in seen:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # a pty's master reads EIO once the other side is closed
            chunk = b""
        if not chunk:
            raise AssertionError(f"{wanted!r} never came; got {seen[-400:]!r}")
        seen += chunk
    return seen

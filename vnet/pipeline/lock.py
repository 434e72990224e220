"""Per-lab run directory and lock: one vnet process changes a lab at a time.

The lock is flock(2) on /run/vnet/<lab>.lock: released by the kernel when the process dies,
so a crashed vnet never leaves a lab locked. It sits beside the lab's run directory so that
destroy can remove the directory while holding the lock.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from vnet.errors import InputError, LockedError
from vnet.topology.names import LAB_NAME, LAB_NAME_HINT

RUN_DIR = os.environ.get("VNET_RUN_DIR", "/run/vnet")


class LabNameError(InputError):
    """Not a lab name: it would not stay a file name under RUN_DIR (`..`, `/`); exit 65."""


def check_lab_name(lab: str) -> str:
    # Names also come from the host (`destroy --all`, `--lab`), and destroy removes lab_dir.
    if not LAB_NAME.match(lab):
        raise LabNameError(f"`{lab}` is not a lab name", LAB_NAME_HINT)
    return lab


def lab_dir(lab: str) -> str:
    """The lab's run directory (created 0700: it may hold sockets and pidfiles)."""
    path = os.path.join(RUN_DIR, check_lab_name(lab))
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def _is_current(fd: int, path: str) -> bool:
    """Whether `fd` is still the file at `path` (a holder may have removed it: see `remove`)."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


@contextmanager
def lab_lock(lab: str, wait: bool = False, timeout: float = 600.0,
             remove: bool = False, waiting: Callable[[], None] = lambda: None) -> Iterator[None]:
    """Hold the lab's lock; without `wait`, LockedError (exit 75) if another vnet holds it
    (with it, `waiting()` once, when the wait begins: a caller may say so).

    `remove=True` (destroy) deletes the lock file on the way out, while still holding it, so a
    destroyed lab leaves nothing in RUN_DIR. Whoever then gets the lock on the removed file
    notices (the path no longer names it) and starts over on a fresh file."""
    os.makedirs(RUN_DIR, mode=0o755, exist_ok=True)
    path = os.path.join(RUN_DIR, f"{check_lab_name(lab)}.lock")
    deadline = time.monotonic() + timeout
    told = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if not wait or time.monotonic() > deadline:
                raise LockedError(f"another vnet process is changing lab {lab}",
                                  "wait for it to finish, or pass --wait") from None
            if not told:
                waiting()
                told = True
            time.sleep(0.05)
            continue
        if _is_current(fd, path):
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
        if remove:
            os.unlink(path)
    finally:
        os.close(fd)

"""The netlink package's exceptions: every failure of its public API is a NetlinkError.

The package is standard library only (the background bridge reaper imports it in a bare
interpreter), so its errors are OSErrors; vnet's kernel mechanism turns them into its own.
"""

from __future__ import annotations

import errno as errno_module
import os


class NetlinkError(OSError):
    """A netlink operation failed: `errno` is the kernel's (positive) error number, `message`
    its extended-ACK text when it gave one, else the strerror text."""

    def __init__(self, errno: int, message: str = "") -> None:
        self.message = message or (os.strerror(errno) if errno else "netlink error")
        super().__init__(errno, self.message)

    def __str__(self) -> str:
        name = errno_module.errorcode.get(self.errno or 0, str(self.errno))
        return f"[{name}] {self.message}"


class WireError(NetlinkError):
    """A buffer could not be decoded as netlink (truncated, inconsistent lengths, garbage)."""

    def __init__(self, message: str) -> None:
        super().__init__(errno_module.EBADMSG, message)

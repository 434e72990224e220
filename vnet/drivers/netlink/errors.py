"""The netlink package's exceptions: every failure of its public API is a NetlinkError."""

from __future__ import annotations

import errno as errno_module
import os

from vnet.errors import EX_NOPERM, VnetError


class NetlinkError(VnetError):
    """A netlink operation failed: `errno` is the kernel's (positive) error number, `message`
    its extended-ACK text when it gave one, else the strerror text."""

    def __init__(self, errno: int, message: str = "") -> None:
        text = message or (os.strerror(errno) if errno else "netlink error")
        super().__init__(text)
        self.errno = errno
        if errno in (errno_module.EPERM, errno_module.EACCES):
            self.exit_code = EX_NOPERM

    def __str__(self) -> str:
        name = errno_module.errorcode.get(self.errno, str(self.errno))
        return f"[{name}] {self.message}"


class WireError(NetlinkError):
    """A buffer could not be decoded as netlink (truncated, inconsistent lengths, garbage)."""

    def __init__(self, message: str) -> None:
        super().__init__(errno_module.EBADMSG, message)

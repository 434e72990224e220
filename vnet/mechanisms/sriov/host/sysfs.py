"""Sysfs access under a configurable root, and the clock used for bounded waits.

`Sysfs` is the only place the SR-IOV layer touches files. Tests inject a subclass over a fake
tree whose `write_file` (the write system call) also plays the kernel's part (creating VFs,
binding drivers); everything above it is the same code on a real host.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from vnet.mechanisms.sriov.host.errors import kernel_error


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass(frozen=True)
class Sysfs:
    """Paths are sysfs-relative (`class/net/eth0/device`); `root` is the sysfs mount (/sys)."""

    root: Path = Path("/sys")

    def path(self, relative: str) -> Path:
        return self.root / relative

    def read(self, relative: str) -> str | None:
        """The attribute's value without the trailing newline; None if it does not exist."""
        try:
            return self.path(relative).read_text().strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise kernel_error(f"reading {self.path(relative)}", exc) from None

    def read_int(self, relative: str) -> int | None:
        value = self.read(relative)
        return int(value) if value not in (None, "") else None

    def write(self, relative: str, value: str) -> None:
        """Write `value` as `echo value > file` does: sysfs acts on the write."""
        path = self.path(relative)
        try:
            self.write_file(path, value)
        except OSError as exc:
            raise kernel_error(f"writing {value.strip() or 'an empty line'!r} to {path}", exc) from None

    def write_file(self, path: Path, value: str) -> None:
        """The system call itself: one write(2). A test's fake kernel overrides this."""
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)

    def exists(self, relative: str) -> bool:
        return os.path.lexists(self.path(relative))

    def listdir(self, relative: str) -> list[str]:
        try:
            return sorted(os.listdir(self.path(relative)))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise kernel_error(f"listing {self.path(relative)}", exc) from None

    def link_name(self, relative: str) -> str | None:
        """The name a symlink resolves to: a driver, a PCI address, an IOMMU group; None if the
        path is not a symlink."""
        path = self.path(relative)
        if not path.is_symlink():
            return None
        return Path(os.path.realpath(path)).name

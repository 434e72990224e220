"""Persistent TAP devices through /dev/net/tun (rtnetlink cannot create tun/tap devices).

The device exists from TUNSETIFF on, but only survives this process once TUNSETPERSIST is
set. vnet marks it (alias, group, …, through netlink) *before* making it persistent, so a crash
at any moment leaves either nothing or a marked device: never an orphan without a mark.
"""

from __future__ import annotations

import fcntl
import os
import struct
from collections.abc import Callable

from vnet.errors import NotPermittedError, UnavailableError

TUN_DEVICE = "/dev/net/tun"
TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
TUNSETOWNER = 0x400454CC
TUNSETGROUP = 0x400454CE
IFF_TAP = 0x0002
IFF_MULTI_QUEUE = 0x0100
IFF_NO_PI = 0x1000


class TapError(OSError):
    """Creating a TAP failed; carries the errno and the device name."""


def create_tap(name: str, owner: int | None, group: int | None, multi_queue: bool,
               mark: Callable[[str], None]) -> None:
    """Create persistent TAP `name`; `mark(name)` runs while the device is still transient."""
    try:
        fd = os.open(TUN_DEVICE, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UnavailableError(f"{TUN_DEVICE} is missing: this kernel has no TUN/TAP support",
                               "load the tun module (modprobe tun) or use a kernel with CONFIG_TUN") from None
    except PermissionError:
        raise NotPermittedError(f"cannot open {TUN_DEVICE}", "run vnet as root") from None
    try:
        flags = IFF_TAP | IFF_NO_PI | (IFF_MULTI_QUEUE if multi_queue else 0)
        request = struct.pack("16sH22x", name.encode(), flags)
        try:
            fcntl.ioctl(fd, TUNSETIFF, request)
            if owner is not None:
                fcntl.ioctl(fd, TUNSETOWNER, owner)
            if group is not None:
                fcntl.ioctl(fd, TUNSETGROUP, group)
        except OSError as exc:
            raise TapError(exc.errno, f"create TAP {name}: {exc.strerror}") from None
        mark(name)
        fcntl.ioctl(fd, TUNSETPERSIST, 1)
    finally:
        os.close(fd)


def holders(names: set[str]) -> dict[str, list[int]]:
    """Which processes hold TAP devices `names` open (a guest on them): the tun driver shows
    the device of each /dev/net/tun descriptor in its fdinfo (`iff:\tNAME`)."""
    found: dict[str, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry.name}/fd")
        except OSError:  # gone, or not ours to read
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{entry.name}/fd/{fd}") != TUN_DEVICE:
                    continue
                with open(f"/proc/{entry.name}/fdinfo/{fd}") as info:
                    device = next((line.split(None, 1)[1].strip() for line in info
                                   if line.startswith("iff:")), None)
            except (OSError, IndexError):
                continue
            if device in names:
                found.setdefault(device, []).append(int(entry.name))
    return found

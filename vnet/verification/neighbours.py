"""Keeping verify's probes within the host's neighbour tables.

The kernel's ARP and ND tables are shared by every network namespace of the host and take at
most gc_thresh3 entries each (/proc/sys/net/ipv{4,6}/neigh/default/gc_thresh3, 1024 by
default); an entry younger than 5 s cannot be reclaimed, so a burst beyond the limit fails
with ENOBUFS. A probe to a neighbour makes two entries (the source's for the target, and the
target's for the source, learnt from the ARP request or neighbour solicitation): the derived
matrix of 100 hosts on one subnet needs ~9,900. So probes from namespaces go in waves that fit
in what the tables have left, and after each wave but the last the entries are deleted from
the lab's namespaces (vnet owns them; a neighbour entry is only a cache).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

from vnet.host import netns
from vnet.netlink import constants as c
from vnet.netlink.errors import NetlinkError
from vnet.netlink.parse import parse_attrs
from vnet.netlink.socket import NetlinkSocket
from vnet.netlink.wire import NDMSG, del_neighbour, dump_neighbours

T = TypeVar("T")

ENTRIES_PER_PROBE = 2
MARGIN = 128  # entries left for the rest of the host
MIN_WAVE = 32
DEFAULT_GC_THRESH3 = 1024
_TABLES = (("ipv4", "arp_cache"), ("ipv6", "ndisc_cache"))


def free_entries(proc: Path = Path("/proc")) -> int:
    """Entries the fuller of the host's ARP and ND tables can still take (huge if unknown)."""
    free = []
    for family, stat in _TABLES:
        try:
            used = int((proc / f"net/stat/{stat}").read_text().splitlines()[1].split()[0], 16)
        except (OSError, ValueError, IndexError):
            continue
        try:
            limit = int((proc / f"sys/net/{family}/neigh/default/gc_thresh3").read_text())
        except (OSError, ValueError):  # only the initial namespace has it: assume the default
            limit = DEFAULT_GC_THRESH3
        free.append(limit - used)
    return min(free, default=1 << 30)


def waves(items: Sequence[T], free: int, pair: Callable[[T], Hashable] = lambda item: item) -> list[list[T]]:
    """`items` (probes) cut into waves whose neighbour entries fit in `free`; probes of one
    (source, target) `pair` (ICMP, TCP, MTU to the same address) share entries and a wave."""
    size = max(MIN_WAVE, (free - MARGIN) // ENTRIES_PER_PROBE)
    by_pair: dict[Hashable, list[T]] = {}
    for item in items:
        by_pair.setdefault(pair(item), []).append(item)
    groups = list(by_pair.values())
    return [[item for group in groups[k:k + size] for item in group]
            for k in range(0, len(groups), size)] or [list(items)]


def flush(namespaces: Iterable[str]) -> None:
    """Delete every neighbour entry in these namespaces (best effort: they are only a cache)."""
    for name in namespaces:
        with contextlib.suppress(NetlinkError, OSError):
            with netns.entered(name):
                sock = NetlinkSocket()
            with sock:
                entries = [m.payload for m in sock.dump(dump_neighbours()) if m.type == c.RTM_NEWNEIGH]
                sock.transact([_delete(entry) for entry in entries if _learnt(entry)])


def _learnt(entry: bytes) -> bool:
    """An ARP/ND entry the kernel learnt: not a static one, nor a bridge FDB row (the AF_BRIDGE
    part of the dump lists a device's own unicast and multicast addresses)."""
    family, _index, state, _flags, _type = NDMSG.unpack_from(entry)
    return (family in (c.AF_INET, c.AF_INET6) and not state & c.NUD_PERMANENT
            and c.NDA_DST in parse_attrs(entry, NDMSG.size))


def _delete(entry: bytes) -> bytes:
    family, index, _state, _flags, _type = NDMSG.unpack_from(entry)
    return del_neighbour(family, index, parse_attrs(entry, NDMSG.size)[c.NDA_DST])

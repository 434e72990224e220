"""A minimal pcapng writer (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-03.html).

Blocks are written in the host's byte order, which the Section Header Block's byte-order magic
announces; every block and option is padded to 32 bits and carries its total length at both
ends. Only what `vnet capture` needs: one section, Ethernet interfaces with nanosecond
timestamps, Enhanced Packet Blocks with a direction flag, and Interface Statistics Blocks.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import BinaryIO

SHB, IDB, EPB, ISB = 0x0A0D0D0A, 0x00000001, 0x00000006, 0x00000005
BYTE_ORDER_MAGIC = 0x1A2B3C4D
LINKTYPE_ETHERNET = 1
OPT_ENDOFOPT = 0
OPT_SHB_USERAPPL = 4
OPT_IF_NAME, OPT_IF_TSRESOL = 2, 9
OPT_EPB_FLAGS = 2
OPT_ISB_STARTTIME, OPT_ISB_ENDTIME, OPT_ISB_IFRECV, OPT_ISB_IFDROP = 2, 3, 4, 5
TSRESOL_NS = 9  # 10^-9 s: timestamps are nanoseconds (the kernel's SO_TIMESTAMPNS)


class Direction(enum.IntEnum):
    """epb_flags bits 0-1."""

    UNKNOWN = 0
    INBOUND = 1
    OUTBOUND = 2

    def reversed(self) -> Direction:
        """The same packet seen from the other side of the wire."""
        flipped = {Direction.INBOUND: Direction.OUTBOUND, Direction.OUTBOUND: Direction.INBOUND}
        return flipped.get(self, self)


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _options(*options: tuple[int, bytes]) -> bytes:
    """Options, each padded, then opt_endofopt; nothing at all when there are none."""
    if not options:
        return b""
    body = b"".join(struct.pack("=HH", code, len(value)) + _pad(value) for code, value in options)
    return body + struct.pack("=HH", OPT_ENDOFOPT, 0)


def block(kind: int, body: bytes) -> bytes:
    """A block: type, total length, the body padded to 32 bits, the total length again."""
    body = _pad(body)
    total = 12 + len(body)
    return struct.pack("=II", kind, total) + body + struct.pack("=I", total)


def section_header(application: str = "vnet capture") -> bytes:
    # major 1, minor 0, section length -1: not given (the file is written as it goes)
    return block(SHB, struct.pack("=IHHq", BYTE_ORDER_MAGIC, 1, 0, -1)
                 + _options((OPT_SHB_USERAPPL, application.encode())))


def interface_description(name: str, snaplen: int) -> bytes:
    return block(IDB, struct.pack("=HHI", LINKTYPE_ETHERNET, 0, snaplen)
                 + _options((OPT_IF_NAME, name.encode()), (OPT_IF_TSRESOL, bytes([TSRESOL_NS]))))


def _timestamp(ns: int) -> bytes:
    return struct.pack("=II", ns >> 32, ns & 0xFFFFFFFF)


def enhanced_packet(interface: int, ns: int, data: bytes, original_length: int,
                    direction: Direction) -> bytes:
    flags = _options((OPT_EPB_FLAGS, struct.pack("=I", int(direction))))
    return block(EPB, struct.pack("=I", interface) + _timestamp(ns)
                 + struct.pack("=II", len(data), original_length) + _pad(data) + flags)


@dataclass(frozen=True)
class Statistics:
    """What the kernel counted on one interface's socket over the capture (PACKET_STATISTICS)."""

    received: int
    dropped: int


def interface_statistics(interface: int, started_ns: int, ended_ns: int, stats: Statistics) -> bytes:
    return block(ISB, struct.pack("=I", interface) + _timestamp(ended_ns) + _options(
        (OPT_ISB_STARTTIME, _timestamp(started_ns)), (OPT_ISB_ENDTIME, _timestamp(ended_ns)),
        (OPT_ISB_IFRECV, struct.pack("=Q", stats.received)),
        (OPT_ISB_IFDROP, struct.pack("=Q", stats.dropped))))


class Writer:
    """Writes a section to `stream`; `flush` after every block (a pipe's reader, e.g. Wireshark
    reading `-w -`, sees each packet as it comes instead of a buffer's worth later)."""

    def __init__(self, stream: BinaryIO, *, flush: bool = False) -> None:
        self.stream, self.flush, self.interfaces = stream, flush, 0
        self._write(section_header())

    def _write(self, data: bytes) -> None:
        self.stream.write(data)
        if self.flush:
            self.stream.flush()

    def interface(self, name: str, snaplen: int) -> int:
        """Describe an interface; its id, which packets and statistics refer to."""
        self._write(interface_description(name, snaplen))
        self.interfaces += 1
        return self.interfaces - 1

    def packet(self, interface: int, ns: int, data: bytes, original_length: int,
               direction: Direction) -> None:
        self._write(enhanced_packet(interface, ns, data, original_length, direction))

    def statistics(self, interface: int, started_ns: int, ended_ns: int, stats: Statistics) -> None:
        self._write(interface_statistics(interface, started_ns, ended_ns, stats))
        self.stream.flush()  # the last blocks: the file is complete whatever happens next

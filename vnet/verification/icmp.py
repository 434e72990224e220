"""ICMP and ICMPv6 echo messages for raw sockets: build requests, parse replies and the errors a
hop sends back about them (fragmentation needed, packet too big, unreachable).

IPv4 raw sockets deliver the IP header with the message; IPv6 raw sockets do not. The kernel
fills in the ICMPv6 checksum; the ICMPv4 one is computed here.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

ECHO_REQUEST = {4: 8, 6: 128}
ECHO_REPLY = {4: 0, 6: 129}
DEST_UNREACHABLE = {4: 3, 6: 1}
PACKET_TOO_BIG_V6 = 2
FRAG_NEEDED_V4 = 4  # code of "destination unreachable"
HEADERS = {4: 20 + 8, 6: 40 + 8}  # IP header + ICMP echo header: a probe's bytes beyond its payload
PAYLOAD = b"vnet-probe"
# A raw ICMP socket gets a copy of every ICMP packet its namespace receives: in a lab of N hosts
# probing each other, N*attempts echo requests besides the replies. The kernel's per-socket type
# filter (a set bit blocks that type) keeps only the types a socket reads.
SOL_RAW, ICMP_FILTER, ICMP6_FILTER = 255, 1, 1
_UNREACH_V4 = {0: "network unreachable", 1: "host unreachable", 3: "port unreachable",
               9: "network administratively prohibited", 10: "host administratively prohibited",
               13: "administratively prohibited"}
_UNREACH_V6 = {0: "no route", 1: "administratively prohibited", 3: "address unreachable",
               4: "port unreachable"}


@dataclass(frozen=True)
class Reply:
    """An echo reply (`error` empty) or an error about one of our echo requests."""

    ident: int
    seq: int
    error: str = ""


def filter_replies(sock: socket.socket, version: int, errors: bool = False) -> None:
    """Let only echo replies (and, with `errors`, unreachable/too big messages) reach `sock`."""
    wanted: Iterable[int] = (ECHO_REPLY[version], *((DEST_UNREACHABLE[version],) if errors else ()),
                             *((PACKET_TOO_BIG_V6,) if errors and version == 6 else ()))
    if version == 4:
        mask = 0xFFFFFFFF
        for kind in wanted:
            mask &= ~(1 << kind)
        sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("=I", mask))
        return
    words = [0xFFFFFFFF] * 8
    for kind in wanted:
        words[kind >> 5] &= ~(1 << (kind & 31))
    sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("=8I", *words))


def payload_for(version: int, size: int) -> bytes:
    """The echo payload of a probe of `size` bytes in all (0: the small default)."""
    if size <= 0:
        return PAYLOAD
    length = max(0, size - HEADERS[version])
    return (PAYLOAD * (length // len(PAYLOAD) + 1))[:length]


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(version: int, ident: int, seq: int, payload: bytes = PAYLOAD) -> bytes:
    header = struct.pack("!BBHHH", ECHO_REQUEST[version], 0, 0, ident, seq & 0xFFFF)
    if version == 6:  # the kernel fills in the ICMPv6 checksum
        return header + payload
    checksum = _checksum(header + payload)
    return struct.pack("!BBHHH", ECHO_REQUEST[version], 0, checksum, ident, seq & 0xFFFF) + payload


def parse(version: int, data: bytes) -> Reply | None:
    """An echo reply, or an error quoting one of our echo requests; None for anything else."""
    if version == 4:
        data = data[(data[0] & 0x0F) * 4:] if data else data
    if len(data) < 8:
        return None
    kind, code, _sum, ident, seq = struct.unpack("!BBHHH", data[:8])
    if kind == ECHO_REPLY[version]:
        return Reply(ident, seq)
    quoted = _quoted_echo(version, data[8:])
    if quoted is None:
        return None
    if version == 4 and kind == DEST_UNREACHABLE[4]:
        if code == FRAG_NEEDED_V4:
            return Reply(*quoted, f"fragmentation needed, next-hop MTU {seq}")
        return Reply(*quoted, _UNREACH_V4.get(code, f"unreachable (code {code})"))
    if version == 6 and kind == PACKET_TOO_BIG_V6:
        mtu = struct.unpack("!I", data[4:8])[0]
        return Reply(*quoted, f"packet too big, MTU {mtu}")
    if version == 6 and kind == DEST_UNREACHABLE[6]:
        return Reply(*quoted, _UNREACH_V6.get(code, f"unreachable (code {code})"))
    return None


def _quoted_echo(version: int, inner: bytes) -> tuple[int, int] | None:
    """(ident, seq) of the echo request an ICMP error quotes (its IP header, then 8 bytes)."""
    if version == 4:
        if len(inner) < 20 or inner[9] != socket.IPPROTO_ICMP:
            return None
        inner = inner[(inner[0] & 0x0F) * 4:]
    else:
        if len(inner) < 40 or inner[6] != socket.IPPROTO_ICMPV6:
            return None
        inner = inner[40:]
    if len(inner) < 8 or inner[0] != ECHO_REQUEST[version]:
        return None
    _kind, _code, _sum, ident, seq = struct.unpack("!BBHHH", inner[:8])
    return ident, seq

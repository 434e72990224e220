"""ICMP echo from inside network namespaces, all probes at once, without subprocesses.

For each source namespace vnet opens raw ICMP/ICMPv6 sockets *inside* it (a socket stays in
the namespace it was created in), sends echo requests to every target address, and waits
for the replies with one select loop. Requests are repeated a few times within the timeout
(the first may wait for ARP/ND). Each (source, address) pair has its own sequence number, so
replies are matched exactly.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

import netaddr

from vnet.drivers import netns

ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY = 8, 0
ICMP6_ECHO_REQUEST, ICMP6_ECHO_REPLY = 128, 129
# A raw ICMP socket gets a copy of every ICMP packet its namespace receives: in a lab of N hosts
# probing each other, N*attempts echo requests besides the replies. The kernel's per-socket type
# filter (a set bit blocks that type) keeps only echo replies, so the receive loop reads no others.
SOL_RAW, ICMP_FILTER, ICMP6_FILTER = 255, 1, 1
ICMP_ONLY_ECHO_REPLY = struct.pack("=I", 0xFFFFFFFF & ~(1 << ICMP_ECHO_REPLY))
ICMP6_ONLY_ECHO_REPLY = struct.pack("=8I", *(0xFFFFFFFF & ~(1 << (ICMP6_ECHO_REPLY & 31))
                                             if word == ICMP6_ECHO_REPLY >> 5 else 0xFFFFFFFF
                                             for word in range(8)))
_SEND_ERRORS = {errno.ENOBUFS: "the host's ARP/ND table is full (shared by every namespace, "
                               "net.ipv4.neigh.default.gc_thresh3 entries): other labs or "
                               "containers use it; retry, or raise that sysctl"}


@dataclass(frozen=True)
class Ping:
    """One echo target: from inside `namespace` to `address`."""

    namespace: str
    address: str


@dataclass(frozen=True)
class Echo:
    reached: bool
    rtt_ms: float | None
    send_error: str = ""  # why the kernel refused to send the request, when it did


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _request(version: int, ident: int, seq: int) -> bytes:
    kind = ICMP_ECHO_REQUEST if version == 4 else ICMP6_ECHO_REQUEST
    payload = b"vnet-probe"
    header = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
    if version == 6:  # the kernel fills in the ICMPv6 checksum
        return header + payload
    checksum = _checksum(header + payload)
    return struct.pack("!BBHHH", kind, 0, checksum, ident, seq) + payload


def _parse_reply(version: int, data: bytes) -> tuple[int, int] | None:
    """(ident, seq) of an echo reply, else None. IPv4 raw sockets include the IP header."""
    if version == 4:
        data = data[(data[0] & 0x0F) * 4:] if data else data
    if len(data) < 8:
        return None
    kind, _code, _sum, ident, seq = struct.unpack("!BBHHH", data[:8])
    expected = ICMP_ECHO_REPLY if version == 4 else ICMP6_ECHO_REPLY
    return (ident, seq) if kind == expected else None


class _Sockets:
    """Raw ICMP sockets per (namespace, IP version), opened inside each namespace."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, int], socket.socket] = {}

    def get(self, namespace: str, version: int) -> socket.socket:
        key = (namespace, version)
        if key not in self.by_key:
            family, proto = ((socket.AF_INET, socket.IPPROTO_ICMP) if version == 4
                             else (socket.AF_INET6, socket.IPPROTO_ICMPV6))
            with netns.entered(namespace):
                sock = socket.socket(family, socket.SOCK_RAW, proto)
            if version == 4:
                sock.setsockopt(SOL_RAW, ICMP_FILTER, ICMP_ONLY_ECHO_REPLY)
            else:
                sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, ICMP6_ONLY_ECHO_REPLY)
            sock.setblocking(False)
            self.by_key[key] = sock
        return self.by_key[key]

    def close(self) -> None:
        for sock in self.by_key.values():
            sock.close()


def ping_all(pings: Sequence[Ping], timeout: float = 1.5, attempts: int = 3) -> dict[Ping, Echo]:
    """Echo every target; a Ping is reached when its own reply came back within `timeout`."""
    ident = os.getpid() & 0xFFFF
    sockets = _Sockets()
    pending: dict[tuple[str, int, int], Ping] = {}  # (namespace, version, seq) -> ping
    sent_at: dict[Ping, float] = {}
    results: dict[Ping, Echo] = {p: Echo(False, None) for p in pings}
    try:
        targets = [(p, netaddr.IPAddress(p.address).version, seq + 1) for seq, p in enumerate(pings)]
        for ping, version, seq in targets:
            pending[(ping.namespace, version, seq & 0xFFFF)] = ping
        deadline = time.monotonic() + timeout
        for attempt in range(attempts):
            _send(sockets, targets, results, sent_at, ident)
            until = deadline if attempt == attempts - 1 else time.monotonic() + timeout / attempts
            _receive(sockets, pending, results, sent_at, ident, until)
            if all(r.reached for r in results.values()):
                break
    finally:
        sockets.close()
    return results


def _send(sockets: _Sockets, targets: list[tuple[Ping, int, int]], results: dict[Ping, Echo],
          sent_at: dict[Ping, float], ident: int) -> None:
    for ping, version, seq in targets:
        if results[ping].reached:
            continue
        sock = sockets.get(ping.namespace, version)
        sent_at.setdefault(ping, time.monotonic())
        try:
            sock.sendto(_request(version, ident, seq & 0xFFFF), (ping.address, 0))
        except OSError as exc:  # no route, unreachable: the hints explain; ENOBUFS: see neighbours.py
            results[ping] = Echo(False, None, _SEND_ERRORS.get(exc.errno or 0, ""))


def _receive(sockets: _Sockets, pending: dict[tuple[str, int, int], Ping], results: dict[Ping, Echo],
             sent_at: dict[Ping, float], ident: int, until: float) -> None:
    owners = {sock.fileno(): key for key, sock in sockets.by_key.items()}
    while (left := until - time.monotonic()) > 0:
        ready, _, _ = select.select(list(owners), [], [], left)
        if not ready:
            return
        for fd in ready:
            namespace, version = owners[fd]
            sock = sockets.by_key[(namespace, version)]
            _drain(sock, namespace, version, pending, results, sent_at, ident)
        if all(echo.reached for echo in results.values()):
            return  # every probe answered: nothing left to wait for


def _drain(sock: socket.socket, namespace: str, version: int, pending: dict[tuple[str, int, int], Ping],
           results: dict[Ping, Echo], sent_at: dict[Ping, float], ident: int) -> None:
    while True:
        try:
            data, sender = sock.recvfrom(2048)
        except BlockingIOError:
            return
        parsed = _parse_reply(version, data)
        if parsed is None or parsed[0] != ident:
            continue
        ping = pending.get((namespace, version, parsed[1]))
        if ping is not None and netaddr.IPAddress(sender[0]) == netaddr.IPAddress(ping.address):
            rtt = (time.monotonic() - sent_at[ping]) * 1000
            results[ping] = Echo(True, round(rtt, 2))

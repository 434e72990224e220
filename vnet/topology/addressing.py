"""Addresses and MAC addresses: parsing, deterministic pool assignment, MAC derivation.

Pool rule (documented in the README): links are visited in file order and, within a link, node
endpoints in endpoint order. Each node endpoint of a link with `network: P` gets the lowest host
address of P that is not the pool's gateway and not already used by an address written or
assigned *earlier in the file*. Hosts are network+1 .. broadcast-1 for IPv4 (/31 and /32: every
address) and network+1 .. last for IPv6. Because only earlier entries influence an assignment,
adding a node or link at the end of the file never changes an address already assigned; a later
static address that collides with an assigned one is reported as a duplicate instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Container
from dataclasses import dataclass, field
from typing import NoReturn

import netaddr


class AddressError(ValueError):
    """A value is not a usable address; the message says why."""


def _no_prefix(text: str, what: str) -> NoReturn:
    """Raise for `text` without `/`: a missing prefix if it is an address, else not `what`."""
    try:
        netaddr.IPAddress(text)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise AddressError(f"`{text}` is not {what}") from None
    raise AddressError(f"`{text}` has no prefix length")


def parse_interface_address(text: str) -> netaddr.IPNetwork:
    """`10.0.0.1/24` -> IPNetwork keeping the host part. The prefix length is required."""
    if "/" not in text:
        _no_prefix(text, "an address in CIDR form")
    try:
        address = netaddr.IPNetwork(text)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise AddressError(f"`{text}` is not an address in CIDR form") from None
    if address.version == 4 and address.prefixlen < 31 and address.ip in (address.network,
                                                                       address.broadcast):
        what = "network" if address.ip == address.network else "broadcast"
        raise AddressError(f"`{text}` is the {what} address of its subnet")
    return address


def parse_subnet(text: str) -> netaddr.IPNetwork:
    """`10.0.0.0/24` -> IPNetwork; host bits must be zero."""
    if "/" not in text:
        _no_prefix(text, "a subnet in CIDR form")
    try:
        subnet = netaddr.IPNetwork(text)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise AddressError(f"`{text}` is not a subnet in CIDR form") from None
    if subnet.ip != subnet.network:
        raise AddressError(f"`{text}` has host bits set; the subnet is {subnet.cidr}")
    return subnet


def parse_ip(text: str) -> netaddr.IPAddress:
    """A plain address (no prefix), e.g. a gateway."""
    try:
        return netaddr.IPAddress(text)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise AddressError(f"`{text}` is not an IP address") from None


@dataclass
class Pool:
    """Hands out host addresses of one subnet in order, skipping what is taken."""

    name: str
    subnet: netaddr.IPNetwork
    gateway: netaddr.IPAddress | None = None
    _next: int = field(init=False)
    _last: int = field(init=False)

    def __post_init__(self) -> None:
        small = self.subnet.version == 4 and self.subnet.prefixlen >= 31
        self._next = self.subnet.first if small else self.subnet.first + 1
        self._last = self.subnet.last if small or self.subnet.version == 6 else self.subnet.last - 1

    def take(self, used: Container[tuple[int, int]]) -> netaddr.IPNetwork | None:
        """The next free host address with the pool's prefix, or None when exhausted."""
        version = self.subnet.version
        skip = int(self.gateway) if self.gateway is not None else -1
        while self._next <= self._last:
            value = self._next
            self._next += 1
            if value != skip and (version, value) not in used:
                return netaddr.IPNetwork((value, self.subnet.prefixlen), version)
        return None


def mac_address(lab: str, node: str, iface: str) -> str:
    """Deterministic locally administered unicast MAC for (lab, node, interface)."""
    digest = bytearray(hashlib.blake2b(f"{lab}\0{node}\0{iface}".encode(), digest_size=6).digest())
    digest[0] = (digest[0] & 0xFC) | 0x02  # locally administered, unicast
    return ":".join(f"{byte:02x}" for byte in digest)

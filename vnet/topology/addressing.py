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


@dataclass(frozen=True)
class SpecialUse:
    """A range no interface can be given an address from: the kernel or the network already
    gives it a meaning (README, "Addresses: `ip` and `network`")."""

    code: str
    kind: str  # "IPv6 link-local": "pool ... holds only IPv6 link-local addresses"
    what: str  # "an IPv6 link-local": "fe80::1 is an IPv6 link-local address"
    ranges: tuple[netaddr.IPNetwork, ...]
    hint: str


def _nets(*texts: str) -> tuple[netaddr.IPNetwork, ...]:
    return tuple(netaddr.IPNetwork(text) for text in texts)


SPECIAL_USES: tuple[SpecialUse, ...] = (
    SpecialUse("address-unspecified", "unspecified", "the unspecified", _nets("0.0.0.0/32", "::/128"),
               "0.0.0.0 and :: mean \"no address\"; write the interface's own address, "
               "e.g. `198.18.0.1/24` or `fd00::1/64`"),
    SpecialUse("address-loopback", "loopback", "a loopback", _nets("127.0.0.0/8", "::1/128"),
               "127.0.0.0/8 and ::1 belong to `lo`, which every namespace and guest has already; "
               "a link needs an address other nodes can reach, e.g. `198.18.0.1/24`"),
    SpecialUse("address-link-local", "IPv6 link-local", "an IPv6 link-local", _nets("fe80::/10"),
               "the kernel gives every IPv6 interface its own fe80:: address, derived from its MAC; "
               "write a unique local or global address instead, e.g. `fd00:1::1/64`"),
    SpecialUse("address-multicast", "multicast", "a multicast", _nets("224.0.0.0/4", "ff00::/8"),
               "multicast groups are joined, not assigned: an interface address must be unicast, "
               "e.g. `198.18.0.1/24` or `fd00::1/64`"),
)


def special_use(address: netaddr.IPAddress) -> SpecialUse | None:
    """The special-use range `address` is in, if any."""
    return next((use for use in SPECIAL_USES
                 if any(address in r for r in use.ranges if r.version == address.version)), None)


def special_subnet(subnet: netaddr.IPNetwork) -> SpecialUse | None:
    """The special-use range that holds all of `subnet` (every address a pool would hand out)."""
    return next((use for use in SPECIAL_USES for r in use.ranges
                 if r.version == subnet.version and r.first <= subnet.first and subnet.last <= r.last),
                None)


def special_text(text: str) -> tuple[netaddr.IPAddress, SpecialUse] | None:
    """(address, range) when `text` (an address, with or without prefix) is special-use."""
    try:
        address = netaddr.IPNetwork(text).ip
    except (netaddr.AddrFormatError, ValueError, TypeError):
        return None
    use = special_use(address)
    return None if use is None else (address, use)


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

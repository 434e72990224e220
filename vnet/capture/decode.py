"""One line about a frame, for `vnet capture` without a file: what tcpdump's shortest line says
(ethertype, VLAN ids, IPv4/IPv6 addresses and protocol, ARP). Anything else is its ethertype;
a frame too short for a header says so instead of failing."""

from __future__ import annotations

import ipaddress
import struct

VLAN_TYPES = {0x8100, 0x88A8}
PROTOCOLS = {1: "ICMP", 2: "IGMP", 6: "TCP", 17: "UDP", 58: "ICMPv6", 132: "SCTP"}


def _mac(data: bytes) -> str:
    return ":".join(f"{b:02x}" for b in data)


def _ipv4(payload: bytes) -> str:
    if len(payload) < 20:
        return "IPv4 (truncated)"
    src, dst = ipaddress.IPv4Address(payload[12:16]), ipaddress.IPv4Address(payload[16:20])
    return f"IPv4 {src} > {dst} {PROTOCOLS.get(payload[9], f'proto {payload[9]}')}"


def _ipv6(payload: bytes) -> str:
    if len(payload) < 40:
        return "IPv6 (truncated)"
    src, dst = ipaddress.IPv6Address(payload[8:24]), ipaddress.IPv6Address(payload[24:40])
    return f"IPv6 {src} > {dst} {PROTOCOLS.get(payload[6], f'next header {payload[6]}')}"


def _arp(payload: bytes) -> str:
    if len(payload) < 28:
        return "ARP (truncated)"
    op = struct.unpack("!H", payload[6:8])[0]
    sender, target = ipaddress.IPv4Address(payload[14:18]), ipaddress.IPv4Address(payload[24:28])
    if op == 1:
        return f"ARP who-has {target} tell {sender}"
    if op == 2:
        return f"ARP reply {sender} is-at {_mac(payload[8:14])}"
    return f"ARP op {op}"


DECODERS = {0x0800: _ipv4, 0x86DD: _ipv6, 0x0806: _arp}


def summary(frame: bytes) -> str:
    if len(frame) < 14:
        return f"{len(frame)}-byte frame (truncated)"
    ethertype, offset, vlans = struct.unpack("!H", frame[12:14])[0], 14, []
    while ethertype in VLAN_TYPES and len(frame) >= offset + 4:  # QinQ: outer tag first
        tci, ethertype = struct.unpack("!HH", frame[offset:offset + 4])
        vlans.append(f"vlan {tci & 0x0FFF}")
        offset += 4
    decoder = DECODERS.get(ethertype)
    what = decoder(frame[offset:]) if decoder else f"ethertype 0x{ethertype:04x}"
    return ", ".join([*vlans, what])

"""VLAN membership of Linux bridge ports (VLAN-filtering bridges), as rtnetlink AF_BRIDGE messages.

What `bridge vlan add|del|show` does: RTM_SETLINK / RTM_DELLINK with family AF_BRIDGE and an
IFLA_AF_SPEC holding one IFLA_BRIDGE_VLAN_INFO (flags, vid) per VLAN; a dump of RTM_GETLINK
AF_BRIDGE with IFLA_EXT_MASK = RTEXT_FILTER_BRVLAN lists each port's VLANs.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from vnet.netlink import constants as c
from vnet.netlink.errors import WireError
from vnet.netlink.parse import Message
from vnet.netlink.wire import IFINFOMSG, NLA, attr, attr_u32, message

AF_BRIDGE = 7
IFLA_AF_SPEC = 26
IFLA_EXT_MASK = 29
RTEXT_FILTER_BRVLAN = 1 << 1
IFLA_BRIDGE_VLAN_INFO = 2
BRIDGE_VLAN_INFO_PVID = 1 << 1
BRIDGE_VLAN_INFO_UNTAGGED = 1 << 2
VLAN_INFO = struct.Struct("=HH")  # struct bridge_vlan_info: flags, vid

PortVlan = tuple[int, bool, bool]  # (vid, pvid, untagged)


def _spec(vlans: Iterable[PortVlan]) -> bytes:
    infos = b"".join(
        attr(IFLA_BRIDGE_VLAN_INFO, VLAN_INFO.pack(
            (BRIDGE_VLAN_INFO_PVID if pvid else 0) | (BRIDGE_VLAN_INFO_UNTAGGED if untagged else 0), vid))
        for vid, pvid, untagged in vlans)
    return attr(IFLA_AF_SPEC | c.NLA_F_NESTED, infos)


def set_port_vlans(index: int, vlans: Iterable[PortVlan]) -> bytes:
    """Add VLANs to bridge port `index` (a vid already present gets the new flags)."""
    body = IFINFOMSG.pack(AF_BRIDGE, 0, index, 0, 0) + _spec(vlans)
    return message(c.RTM_SETLINK, c.NLM_F_REQUEST | c.NLM_F_ACK, body)


def del_port_vlans(index: int, vlans: Iterable[PortVlan]) -> bytes:
    body = IFINFOMSG.pack(AF_BRIDGE, 0, index, 0, 0) + _spec(vlans)
    return message(c.RTM_DELLINK, c.NLM_F_REQUEST | c.NLM_F_ACK, body)


def dump_port_vlans() -> bytes:
    body = IFINFOMSG.pack(AF_BRIDGE, 0, 0, 0, 0) + attr_u32(IFLA_EXT_MASK, RTEXT_FILTER_BRVLAN)
    return message(c.RTM_GETLINK, c.NLM_F_REQUEST | c.NLM_F_DUMP, body)


def _attrs(data: bytes, offset: int) -> Iterable[tuple[int, bytes]]:
    while offset + NLA.size <= len(data):
        length, kind = NLA.unpack_from(data, offset)
        if length < NLA.size or offset + length > len(data):
            raise WireError(f"bad attribute length {length} at offset {offset}")
        yield kind & c.NLA_TYPE_MASK, data[offset + NLA.size:offset + length]
        offset += (length + 3) & ~3


def port_vlans(messages: Iterable[Message]) -> dict[int, tuple[PortVlan, ...]]:
    """ifindex -> its VLANs, from the messages of a dump_port_vlans() dump."""
    out: dict[int, tuple[PortVlan, ...]] = {}
    for msg in messages:
        if msg.type != c.RTM_NEWLINK or len(msg.payload) < IFINFOMSG.size:
            continue
        index = IFINFOMSG.unpack_from(msg.payload)[2]
        found: list[PortVlan] = []
        for kind, data in _attrs(msg.payload, IFINFOMSG.size):
            if kind != IFLA_AF_SPEC:
                continue
            for inner, value in _attrs(data, 0):
                if inner == IFLA_BRIDGE_VLAN_INFO and len(value) >= VLAN_INFO.size:
                    flags, vid = VLAN_INFO.unpack_from(value)
                    found.append((vid, bool(flags & BRIDGE_VLAN_INFO_PVID),
                                  bool(flags & BRIDGE_VLAN_INFO_UNTAGGED)))
        if found:
            out[index] = tuple(sorted(found))
    return out

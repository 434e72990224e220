"""Decoding rtnetlink replies into frozen dataclasses: pure, no I/O, no pyroute2.

`parse_messages` splits a buffer of concatenated netlink messages; `decode_ack`, `decode_link`,
`decode_addr` and `decode_route` turn one payload into a typed value. Only the attributes vnet
uses are decoded; the rest are skipped without copying. A truncated or inconsistent buffer
raises WireError (a NetlinkError with errno EBADMSG), never struct.error or IndexError.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import NamedTuple

from vnet.netlink import constants as c
from vnet.netlink.errors import NetlinkError, WireError
from vnet.netlink.wire import HEADER, IFADDRMSG, IFINFOMSG, NLA, RTMSG

_U32 = struct.Struct("=I")
_I32 = struct.Struct("=i")


class Message(NamedTuple):
    """One netlink message: header fields and the payload after the 16-byte header."""

    type: int
    flags: int
    seq: int
    payload: bytes


@dataclass(frozen=True)
class Ack:
    """The kernel's answer to one request: errno 0 on success, else the (positive) error
    number and the extended-ACK text (empty when the kernel gave none)."""

    errno: int
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.errno == 0

    def error(self) -> NetlinkError:
        return NetlinkError(self.errno, self.message)


@dataclass(frozen=True)
class BridgeInfo:
    """A bridge's IFLA_INFO_DATA; times in seconds (the kernel reports clock_t, USER_HZ=100)."""

    stp_state: int
    forward_delay: float
    ageing_time: float
    vlan_filtering: bool


@dataclass(frozen=True)
class LinkMsg:
    """One network device as RTM_NEWLINK describes it."""

    index: int
    name: str
    alias: str | None  # IFLA_IFALIAS; None when unset
    group: int
    master: int | None  # ifindex of the bridge (or other master)
    mtu: int
    mac: str | None  # "aa:bb:cc:dd:ee:ff"; None for devices without one (lo has zeros, tun none)
    up: bool  # IFF_UP: administratively up
    oper_state: str  # "up", "down", "lowerlayerdown", "unknown", ... (/sys/.../operstate)
    kind: str | None  # IFLA_INFO_KIND: "bridge", "veth", "tun", ... None for lo/physical
    slave_kind: str | None = None  # IFLA_INFO_SLAVE_KIND, e.g. "bridge" for a bridge port
    bridge: BridgeInfo | None = None  # when kind == "bridge"
    # A bridge port's flags (learning, flood, isolated, ...) when slave_kind == "bridge"
    port_flags: tuple[tuple[str, bool], ...] | None = None
    link: int | None = None  # IFLA_LINK: a veth's peer index, a macvlan's lower device
    link_netnsid: int | None = None  # IFLA_LINK_NETNSID: `link` lives in that namespace
    flags: int = 0  # ifi_flags as the kernel reports them

    @property
    def peer_index(self) -> int | None:
        """The veth peer's ifindex (in namespace `link_netnsid` when that is set)."""
        return self.link if self.kind == "veth" else None


@dataclass(frozen=True)
class AddrMsg:
    """One address (RTM_NEWADDR)."""

    index: int
    family: int
    prefixlen: int
    address: str  # IFA_LOCAL for IPv4, IFA_ADDRESS for IPv6
    scope: int
    flags: int  # IFA_FLAGS when present (32 bits), else ifa_flags


@dataclass(frozen=True)
class RouteMsg:
    """One route (RTM_NEWROUTE); multipath routes show only their header and first-level
    attributes (RTA_MULTIPATH is not decoded)."""

    family: int
    dst: str | None  # None for the default route
    dst_len: int
    gateway: str | None
    oif: int | None
    priority: int  # metric; 0 when absent
    table: int
    protocol: int
    scope: int
    type: int


def parse_messages(buf: bytes) -> list[Message]:
    """Split concatenated netlink messages (one recv, or several encoders' output)."""
    out: list[Message] = []
    offset, end = 0, len(buf)
    unpack = HEADER.unpack_from
    while offset < end:
        if end - offset < HEADER.size:
            raise WireError(f"truncated netlink header at offset {offset}")
        length, kind, flags, seq, _pid = unpack(buf, offset)
        if length < HEADER.size or offset + length > end:
            raise WireError(f"bad netlink message length {length} at offset {offset}")
        out.append(Message(kind, flags, seq, bytes(buf[offset + HEADER.size:offset + length])))
        offset += (length + 3) & ~3
    return out


def parse_attrs(data: bytes, offset: int = 0, wanted: frozenset[int] | None = None) -> dict[int, bytes]:
    """Attributes from `offset` to the end of `data`, by type (flags masked off); with
    `wanted`, only those types are kept. A later duplicate replaces an earlier one."""
    out: dict[int, bytes] = {}
    end = len(data)
    unpack = NLA.unpack_from
    mask = c.NLA_TYPE_MASK
    try:  # two copies of one loop: this is the hot path of every dump
        if wanted is None:
            while offset < end:
                length, kind = unpack(data, offset)
                if length < NLA.size or offset + length > end:
                    raise WireError(f"bad attribute length {length} at offset {offset}")
                out[kind & mask] = data[offset + NLA.size:offset + length]
                offset = (offset + length + 3) & ~3
        else:
            while offset < end:
                length, kind = unpack(data, offset)
                if length < NLA.size or offset + length > end:
                    raise WireError(f"bad attribute length {length} at offset {offset}")
                if kind & mask in wanted:
                    out[kind & mask] = data[offset + NLA.size:offset + length]
                offset = (offset + length + 3) & ~3
    except struct.error:
        raise WireError(f"{end - offset} stray bytes after the last attribute") from None
    return out


def _u32(data: bytes) -> int:
    if len(data) < 4:
        raise WireError("u32 attribute shorter than 4 bytes")
    return int(_U32.unpack_from(data)[0])


def _i32(data: bytes) -> int:
    if len(data) < 4:
        raise WireError("s32 attribute shorter than 4 bytes")
    return int(_I32.unpack_from(data)[0])


def _string(data: bytes) -> str:
    return data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _opt(attrs: dict[int, bytes], kind: int) -> int | None:
    value = attrs.get(kind)
    return None if value is None else _u32(value)


def _ip(family: int, data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        return socket.inet_ntop(family, data)
    except (ValueError, OSError):
        raise WireError(f"bad address of {len(data)} bytes for family {family}") from None


def _need(payload: bytes, size: int, what: str) -> None:
    if len(payload) < size:
        raise WireError(f"{what} payload of {len(payload)} bytes is truncated")


def decode_ack(msg: Message) -> Ack:
    """NLMSG_ERROR (an acknowledgement: errno 0 means success) or the NLMSG_DONE of a dump."""
    payload = msg.payload
    if msg.type == c.NLMSG_DONE and not payload:
        return Ack(0)
    _need(payload, 4, "error")
    error = -_i32(payload)
    tlv_at = 4
    if msg.type == c.NLMSG_ERROR:
        _need(payload, 4 + HEADER.size, "error")
        inner_length = HEADER.unpack_from(payload, 4)[0]
        tlv_at = 4 + (HEADER.size if msg.flags & c.NLM_F_CAPPED else (inner_length + 3) & ~3)
    text = ""
    if msg.flags & c.NLM_F_ACK_TLVS and len(payload) > tlv_at:
        attrs = parse_attrs(payload, tlv_at, frozenset((c.NLMSGERR_ATTR_MSG,)))
        text = _string(attrs.get(c.NLMSGERR_ATTR_MSG, b""))
    return Ack(error, text)


_LINK_ATTRS = frozenset((c.IFLA_IFNAME, c.IFLA_IFALIAS, c.IFLA_GROUP, c.IFLA_MASTER, c.IFLA_MTU,
                         c.IFLA_ADDRESS, c.IFLA_OPERSTATE, c.IFLA_LINKINFO, c.IFLA_LINK,
                         c.IFLA_LINK_NETNSID))
_INFO_ATTRS = frozenset((c.IFLA_INFO_KIND, c.IFLA_INFO_DATA, c.IFLA_INFO_SLAVE_KIND, c.IFLA_INFO_SLAVE_DATA))
_PORT_FLAG_ATTRS = frozenset(c.BRIDGE_PORT_FLAGS.values())
_BRIDGE_ATTRS = frozenset((c.IFLA_BR_FORWARD_DELAY, c.IFLA_BR_AGEING_TIME, c.IFLA_BR_STP_STATE,
                           c.IFLA_BR_VLAN_FILTERING))


def _bridge(data: bytes) -> BridgeInfo:
    attrs = parse_attrs(data, 0, _BRIDGE_ATTRS)
    vlan = attrs.get(c.IFLA_BR_VLAN_FILTERING)
    return BridgeInfo(stp_state=_opt(attrs, c.IFLA_BR_STP_STATE) or 0,
                      forward_delay=(_opt(attrs, c.IFLA_BR_FORWARD_DELAY) or 0) / c.USER_HZ,
                      ageing_time=(_opt(attrs, c.IFLA_BR_AGEING_TIME) or 0) / c.USER_HZ,
                      vlan_filtering=bool(vlan and vlan[0]))


def _port_flags(data: bytes) -> tuple[tuple[str, bool], ...]:
    attrs = parse_attrs(data, 0, _PORT_FLAG_ATTRS)
    return tuple(sorted((name, bool(attrs[kind][0])) for name, kind in c.BRIDGE_PORT_FLAGS.items()
                        if attrs.get(kind)))


def _linkinfo(data: bytes | None) -> tuple[str | None, str | None, BridgeInfo | None,
                                            tuple[tuple[str, bool], ...] | None]:
    if data is None:
        return None, None, None, None
    info = parse_attrs(data, 0, _INFO_ATTRS)
    kind = _string(info[c.IFLA_INFO_KIND]) if c.IFLA_INFO_KIND in info else None
    slave = _string(info[c.IFLA_INFO_SLAVE_KIND]) if c.IFLA_INFO_SLAVE_KIND in info else None
    data_attr = info.get(c.IFLA_INFO_DATA)
    bridge = _bridge(data_attr) if kind == "bridge" and data_attr is not None else None
    slave_data = info.get(c.IFLA_INFO_SLAVE_DATA)
    flags = _port_flags(slave_data) if slave == "bridge" and slave_data is not None else None
    return kind, slave, bridge, flags


def decode_link(payload: bytes) -> LinkMsg:
    """An RTM_NEWLINK payload (struct ifinfomsg + attributes)."""
    _need(payload, IFINFOMSG.size, "ifinfomsg")
    _family, _type, index, flags, _change = IFINFOMSG.unpack_from(payload)
    attrs = parse_attrs(payload, IFINFOMSG.size, _LINK_ATTRS)
    if c.IFLA_IFNAME not in attrs:
        raise WireError(f"link {index} without IFLA_IFNAME")
    kind, slave_kind, bridge, port_flags = _linkinfo(attrs.get(c.IFLA_LINKINFO))
    alias = attrs.get(c.IFLA_IFALIAS)
    mac = attrs.get(c.IFLA_ADDRESS)
    oper = attrs.get(c.IFLA_OPERSTATE, b"\0")[:1] or b"\0"
    netnsid = attrs.get(c.IFLA_LINK_NETNSID)
    return LinkMsg(
        index=index, name=_string(attrs[c.IFLA_IFNAME]),
        alias=_string(alias) if alias is not None else None,
        group=_opt(attrs, c.IFLA_GROUP) or 0, master=_opt(attrs, c.IFLA_MASTER),
        mtu=_opt(attrs, c.IFLA_MTU) or 0, mac=mac.hex(":") if mac else None,
        up=bool(flags & c.IFF_UP),
        oper_state=c.OPER_STATES[oper[0]] if oper[0] < len(c.OPER_STATES) else str(oper[0]),
        kind=kind, slave_kind=slave_kind, bridge=bridge, port_flags=port_flags, link=_opt(attrs, c.IFLA_LINK),
        link_netnsid=_i32(netnsid) if netnsid is not None else None, flags=flags)


_ADDR_ATTRS = frozenset((c.IFA_ADDRESS, c.IFA_LOCAL, c.IFA_FLAGS))


def decode_addr(payload: bytes) -> AddrMsg:
    """An RTM_NEWADDR payload (struct ifaddrmsg + attributes); IPv4 and IPv6 only."""
    _need(payload, IFADDRMSG.size, "ifaddrmsg")
    family, prefixlen, flags, scope, index = IFADDRMSG.unpack_from(payload)
    if family not in (c.AF_INET, c.AF_INET6):
        raise WireError(f"address of unsupported family {family}")
    attrs = parse_attrs(payload, IFADDRMSG.size, _ADDR_ATTRS)
    first, second = (c.IFA_LOCAL, c.IFA_ADDRESS) if family == c.AF_INET else (c.IFA_ADDRESS, c.IFA_LOCAL)
    address = _ip(family, attrs.get(first, attrs.get(second)))
    if address is None:
        raise WireError(f"address message for index {index} without an address")
    full_flags = _opt(attrs, c.IFA_FLAGS)
    return AddrMsg(index=index, family=family, prefixlen=prefixlen, address=address, scope=scope,
                   flags=flags if full_flags is None else full_flags)


_ROUTE_ATTRS = frozenset((c.RTA_DST, c.RTA_GATEWAY, c.RTA_OIF, c.RTA_PRIORITY, c.RTA_TABLE))


def decode_route(payload: bytes) -> RouteMsg:
    """An RTM_NEWROUTE payload (struct rtmsg + attributes); IPv4 and IPv6 only."""
    _need(payload, RTMSG.size, "rtmsg")
    family, dst_len, _src_len, _tos, table, protocol, scope, kind, _flags = RTMSG.unpack_from(payload)
    if family not in (c.AF_INET, c.AF_INET6):
        raise WireError(f"route of unsupported family {family}")
    attrs = parse_attrs(payload, RTMSG.size, _ROUTE_ATTRS)
    return RouteMsg(family=family, dst=_ip(family, attrs.get(c.RTA_DST)), dst_len=dst_len,
                    gateway=_ip(family, attrs.get(c.RTA_GATEWAY)), oif=_opt(attrs, c.RTA_OIF),
                    priority=_opt(attrs, c.RTA_PRIORITY) or 0,
                    table=_opt(attrs, c.RTA_TABLE) or table, protocol=protocol, scope=scope, type=kind)


_NETCONF_ATTRS = frozenset((c.NETCONFA_IFINDEX, c.NETCONFA_FORWARDING))


def decode_netconf(payload: bytes) -> tuple[int, bool | None]:
    """An RTM_NEWNETCONF payload: (ifindex, forwarding); ifindex -1 is the `all` entry."""
    _need(payload, 4, "netconfmsg")
    attrs = parse_attrs(payload, 4, _NETCONF_ATTRS)
    if c.NETCONFA_IFINDEX not in attrs:
        raise WireError("netconf message without NETCONFA_IFINDEX")
    forwarding = attrs.get(c.NETCONFA_FORWARDING)
    return _i32(attrs[c.NETCONFA_IFINDEX]), None if forwarding is None else bool(_i32(forwarding))

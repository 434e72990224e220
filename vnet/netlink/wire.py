"""rtnetlink requests as bytes: one encoder per request, no I/O, no pyroute2.

Every encoder returns one complete netlink message with sequence number 0 and port id 0;
`NetlinkSocket` numbers them when it sends. Every non-dump request carries NLM_F_ACK so that
each message of a batch gets exactly one acknowledgement. Invalid arguments (a name longer than
IFNAMSIZ-1, a malformed MAC or IP address, ...) raise ValueError before anything is sent.
Decoding lives in `vnet.netlink.parse`.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from vnet.netlink import constants as c

IFNAMSIZ = 16

HEADER = struct.Struct("=IHHII")  # struct nlmsghdr: len, type, flags, seq, pid
IFINFOMSG = struct.Struct("=BxHiII")  # family, pad, type, index, flags, change
IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
NLA = struct.Struct("=HH")  # struct nlattr: len, type
_U32 = struct.Struct("=I")
_I32 = struct.Struct("=i")

_ACK = c.NLM_F_REQUEST | c.NLM_F_ACK
_CREATE = c.NLM_F_CREATE | c.NLM_F_EXCL


@dataclass(frozen=True)
class BridgeOptions:
    """IFLA_INFO_DATA of a Linux bridge; None leaves the kernel's value (or default) alone."""

    stp_state: int | None = None  # 0 off, 1 kernel STP
    forward_delay: float | None = None  # seconds
    ageing_time: float | None = None  # seconds
    vlan_filtering: bool | None = None


@dataclass(frozen=True)
class VethPeer:
    """The peer end of a veth pair being created (VETH_INFO_PEER).

    What the kernel (6.18) applies to a peer at creation: name, group, mtu, mac, namespace
    (`netns_fd`: the peer is created right there) and, only when the first end is given an
    explicit index too, `index`. It silently ignores a master or an alias for the peer, and
    fails with ENOTCONN when asked to bring it up (the pair is not linked yet), so this class
    has no such fields: set them with a second `new_link` on the peer, in its namespace."""

    ifname: str
    index: int = 0
    netns_fd: int | None = None
    group: int | None = None
    mtu: int | None = None
    mac: str | None = None


# -- attribute building -----------------------------------------------------------------------

def attr(kind: int, data: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    size = NLA.size + len(data)
    return NLA.pack(size, kind) + data + b"\0" * (-size % 4)


def attr_u32(kind: int, value: int) -> bytes:
    return attr(kind, _U32.pack(value))


def attr_i32(kind: int, value: int) -> bytes:
    return attr(kind, _I32.pack(value))


def attr_u8(kind: int, value: int) -> bytes:
    return attr(kind, bytes((value,)))


def attr_str(kind: int, value: str) -> bytes:
    return attr(kind, value.encode("utf-8", "surrogateescape") + b"\0")


def message(kind: int, flags: int, body: bytes) -> bytes:
    """A netlink message of type `kind` whose payload is `body` (already 4-byte aligned)."""
    return HEADER.pack(HEADER.size + len(body), kind, flags, 0, 0) + body


def _ifname(value: str) -> str:
    size = len(value.encode("utf-8", "surrogateescape"))
    if not 0 < size < IFNAMSIZ or "/" in value or value.strip() != value or value in (".", ".."):
        raise ValueError(f"invalid interface name {value!r} (1-15 bytes, no '/' or blanks)")
    return value


def mac_bytes(mac: str) -> bytes:
    """'aa:bb:cc:dd:ee:ff' -> 6 bytes."""
    parts = mac.split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ValueError(f"invalid MAC address {mac!r}")
    try:
        return bytes.fromhex("".join(parts))
    except ValueError:
        raise ValueError(f"invalid MAC address {mac!r}") from None


def _u32_range(name: str, value: int) -> int:
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"{name} {value} is out of range")
    return value


def clock_t(seconds: float) -> int:
    """Seconds -> the bridge's clock_t ticks (USER_HZ)."""
    return _u32_range("time", round(seconds * c.USER_HZ))


# -- links -------------------------------------------------------------------------------------

def _ifinfomsg(index: int, up: bool | None) -> bytes:
    flags = c.IFF_UP if up else 0
    change = c.IFF_UP if up is not None else 0
    return IFINFOMSG.pack(c.AF_UNSPEC, 0, index, flags, change)


def _common_attrs(ifname: str | None, group: int | None, mtu: int | None, mac: str | None,
                  netns_fd: int | None) -> list[bytes]:
    attrs = []
    if ifname is not None:
        attrs.append(attr_str(c.IFLA_IFNAME, _ifname(ifname)))
    if group is not None:
        attrs.append(attr_u32(c.IFLA_GROUP, _u32_range("group", group)))
    if mtu is not None:
        attrs.append(attr_u32(c.IFLA_MTU, _u32_range("mtu", mtu)))
    if mac is not None:
        attrs.append(attr(c.IFLA_ADDRESS, mac_bytes(mac)))
    if netns_fd is not None:
        attrs.append(attr_u32(c.IFLA_NET_NS_FD, netns_fd))
    return attrs


def _bridge_data(options: BridgeOptions) -> bytes:
    attrs = []
    if options.forward_delay is not None:
        attrs.append(attr_u32(c.IFLA_BR_FORWARD_DELAY, clock_t(options.forward_delay)))
    if options.ageing_time is not None:
        attrs.append(attr_u32(c.IFLA_BR_AGEING_TIME, clock_t(options.ageing_time)))
    if options.stp_state is not None:
        attrs.append(attr_u32(c.IFLA_BR_STP_STATE, options.stp_state))
    if options.vlan_filtering is not None:
        attrs.append(attr_u8(c.IFLA_BR_VLAN_FILTERING, int(options.vlan_filtering)))
    return b"".join(attrs)


def _veth_data(peer: VethPeer) -> bytes:
    body = _ifinfomsg(peer.index, None) + b"".join(
        _common_attrs(peer.ifname, peer.group, peer.mtu, peer.mac, peer.netns_fd))
    return attr(c.VETH_INFO_PEER, body)


def _linkinfo(kind: str, bridge: BridgeOptions | None, peer: VethPeer | None,
              macvlan_mode: str | None = None) -> bytes:
    if bridge is not None and kind != "bridge":
        raise ValueError(f"bridge options given for a link of kind {kind!r}")
    if peer is not None and kind != "veth":
        raise ValueError(f"a veth peer given for a link of kind {kind!r}")
    if macvlan_mode is not None and kind != "macvlan":
        raise ValueError(f"a macvlan mode given for a link of kind {kind!r}")
    info = attr_str(c.IFLA_INFO_KIND, kind)
    if bridge is not None:
        info += attr(c.IFLA_INFO_DATA, _bridge_data(bridge))
    if peer is not None:
        info += attr(c.IFLA_INFO_DATA, _veth_data(peer))
    if macvlan_mode is not None:
        info += attr(c.IFLA_INFO_DATA, attr_u32(c.IFLA_MACVLAN_MODE, c.MACVLAN_MODES[macvlan_mode]))
    return attr(c.IFLA_LINKINFO, info)


def new_link(*, create: bool = False, index: int = 0, ifname: str | None = None,
             alias: str | None = None, group: int | None = None, master: int | None = None,
             mtu: int | None = None, mac: str | None = None, up: bool | None = None,
             netns_fd: int | None = None, kind: str | None = None,
             bridge: BridgeOptions | None = None, peer: VethPeer | None = None,
             lower: int | None = None, macvlan_mode: str | None = None) -> bytes:
    """RTM_NEWLINK: create a device (`create=True`: NLM_F_CREATE|NLM_F_EXCL) or modify one.

    Creating: `ifname` is the new name, a nonzero `index` asks for that ifindex, `kind` says
    what to create. Modifying: the target is `index`, or `ifname` when index is 0; with both,
    the device `index` is renamed to `ifname`. `master=0` detaches from the master, `alias=""`
    clears the alias, `netns_fd` moves the device (or creates it) in that namespace, `up`
    sets or clears IFF_UP (None leaves it). None everywhere else means "leave unchanged".
    `lower` is the device a macvlan is made on (IFLA_LINK, an index in the sending namespace).
    The kernel ignores IFLA_IFALIAS when it creates a device, so `alias` with `create=True`
    is refused: send a second (modifying) new_link in the same batch.
    """
    if create and alias is not None:
        raise ValueError("the kernel ignores an alias at creation: set it with a second new_link")
    if not create and not index and ifname is None:
        raise ValueError("new_link needs a target: index or ifname")
    if peer is not None and peer.index and not index:
        raise ValueError("the kernel honours a veth peer's index only when the first end has one too")
    attrs = _common_attrs(ifname, group, mtu, mac, netns_fd)
    if alias is not None:
        attrs.append(attr_str(c.IFLA_IFALIAS, alias))
    if master is not None:
        attrs.append(attr_u32(c.IFLA_MASTER, master))
    if lower is not None:
        attrs.append(attr_u32(c.IFLA_LINK, lower))
    if kind is not None:
        attrs.append(_linkinfo(kind, bridge, peer, macvlan_mode))
    elif bridge is not None or peer is not None or macvlan_mode is not None:
        raise ValueError("bridge options or a veth peer need kind='bridge' or kind='veth'")
    flags = _ACK | (_CREATE if create else 0)
    return message(c.RTM_NEWLINK, flags, _ifinfomsg(index, up) + b"".join(attrs))


def set_port_flags(*, ifname: str, flags: tuple[tuple[str, bool], ...]) -> bytes:
    """RTM_NEWLINK setting a bridge port's flags (`ip link set DEV type bridge_slave learning on`);
    the device must be a bridge port already (the kernel asks its current master)."""
    data = b"".join(attr_u8(c.BRIDGE_PORT_FLAGS[name], int(value)) for name, value in flags)
    info = attr_str(c.IFLA_INFO_SLAVE_KIND, "bridge") + attr(c.IFLA_INFO_SLAVE_DATA, data)
    return message(c.RTM_NEWLINK, _ACK, _ifinfomsg(0, None) + attr_str(c.IFLA_IFNAME, _ifname(ifname))
                   + attr(c.IFLA_LINKINFO, info))


def del_link(*, index: int = 0, ifname: str | None = None) -> bytes:
    """RTM_DELLINK of one device, by index or (when index is 0) by name."""
    if index:
        body = _ifinfomsg(index, None)
    elif ifname is not None:
        body = _ifinfomsg(0, None) + attr_str(c.IFLA_IFNAME, _ifname(ifname))
    else:
        raise ValueError("del_link needs index or ifname")
    return message(c.RTM_DELLINK, _ACK, body)


def del_link_group(group: int) -> bytes:
    """RTM_DELLINK of every device in `group` (in the socket's namespace), in one call.

    Group 0 is the default group of every device (lo included), so it is refused."""
    if not 0 < group <= 0xFFFFFFFF:
        raise ValueError(f"refusing to delete link group {group}: use a nonzero group")
    return message(c.RTM_DELLINK, _ACK, _ifinfomsg(0, None) + attr_u32(c.IFLA_GROUP, group))


def dump_links(*, skip_stats: bool = True) -> bytes:
    """RTM_GETLINK dump of every device of the namespace."""
    body = _ifinfomsg(0, None)
    if skip_stats:
        body += attr_u32(c.IFLA_EXT_MASK, c.RTEXT_FILTER_SKIP_STATS)
    return message(c.RTM_GETLINK, c.NLM_F_REQUEST | c.NLM_F_DUMP, body)


# -- addresses -----------------------------------------------------------------------------

def _ip(address: str) -> tuple[int, bytes]:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"invalid IP address {address!r}") from None
    return (c.AF_INET if ip.version == 4 else c.AF_INET6), ip.packed


def _prefixlen(family: int, prefixlen: int) -> int:
    if not 0 <= prefixlen <= (32 if family == c.AF_INET else 128):
        raise ValueError(f"invalid prefix length {prefixlen}")
    return prefixlen


def _addr_body(index: int, address: str, prefixlen: int) -> bytes:
    family, packed = _ip(address)
    head = IFADDRMSG.pack(family, _prefixlen(family, prefixlen), 0, c.RT_SCOPE_UNIVERSE, index)
    if family == c.AF_INET:
        return head + attr(c.IFA_LOCAL, packed) + attr(c.IFA_ADDRESS, packed)
    return head + attr(c.IFA_ADDRESS, packed) + attr_u32(c.IFA_FLAGS, c.IFA_F_NODAD)


def new_addr(index: int, address: str, prefixlen: int, *, replace: bool = False) -> bytes:
    """RTM_NEWADDR: add `address/prefixlen` to device `index` (the family follows the address).

    IPv6 addresses get IFA_F_NODAD (usable at once, no duplicate detection). `replace=True`
    (NLM_F_REPLACE) updates an existing address instead of failing with EEXIST."""
    flags = _ACK | c.NLM_F_CREATE | (c.NLM_F_REPLACE if replace else c.NLM_F_EXCL)
    return message(c.RTM_NEWADDR, flags, _addr_body(index, address, prefixlen))


def del_addr(index: int, address: str, prefixlen: int) -> bytes:
    """RTM_DELADDR of `address/prefixlen` on device `index`."""
    return message(c.RTM_DELADDR, _ACK, _addr_body(index, address, prefixlen))


def dump_addrs(*, family: int = c.AF_UNSPEC, index: int = 0) -> bytes:
    """RTM_GETADDR dump; `index` restricts it to one device (with strict checking)."""
    return message(c.RTM_GETADDR, c.NLM_F_REQUEST | c.NLM_F_DUMP, IFADDRMSG.pack(family, 0, 0, 0, index))


# -- routes ------------------------------------------------------------------------------------

def _route_family(family: int | None, dst: str | None, gateway: str | None) -> int:
    families = {_ip(a)[0] for a in (dst, gateway) if a is not None}
    if family is not None:
        families.add(family)
    if len(families) != 1:
        raise ValueError("route family: give family, or a dst/gateway of one family")
    return families.pop()


def _route_attrs(dst: str | None, gateway: str | None, oif: int | None, priority: int | None,
                 table: int) -> bytes:
    attrs = [attr_u32(c.RTA_TABLE, table)]
    if dst is not None:
        attrs.append(attr(c.RTA_DST, _ip(dst)[1]))
    if gateway is not None:
        attrs.append(attr(c.RTA_GATEWAY, _ip(gateway)[1]))
    if oif is not None:
        attrs.append(attr_u32(c.RTA_OIF, oif))
    if priority is not None:
        attrs.append(attr_u32(c.RTA_PRIORITY, priority))
    return b"".join(attrs)


def _route(kind: int, flags: int, *, family: int | None, dst: str | None, dst_len: int,
           gateway: str | None, oif: int | None, priority: int | None, table: int) -> bytes:
    fam = _route_family(family, dst, gateway)
    if dst is None and dst_len:
        raise ValueError("dst_len without dst")
    adding = kind == c.RTM_NEWROUTE
    head = RTMSG.pack(fam, _prefixlen(fam, dst_len), 0, 0, table if table < 256 else c.RT_TABLE_UNSPEC,
                      c.RTPROT_STATIC if adding else c.RTPROT_UNSPEC,
                      c.RT_SCOPE_UNIVERSE if adding else c.RT_SCOPE_NOWHERE,
                      c.RTN_UNICAST if adding else c.RTN_UNSPEC, 0)
    return message(kind, flags, head + _route_attrs(dst, gateway, oif, priority, table))


def new_route(*, family: int | None = None, dst: str | None = None, dst_len: int = 0,
              gateway: str | None = None, oif: int | None = None, priority: int | None = None,
              table: int = c.RT_TABLE_MAIN, replace: bool = False) -> bytes:
    """RTM_NEWROUTE: unicast route, protocol static, scope universe; dst None = default route.

    The family follows dst/gateway; give `family` for a default route through `oif` only."""
    flags = _ACK | c.NLM_F_CREATE | (c.NLM_F_REPLACE if replace else c.NLM_F_EXCL)
    return _route(c.RTM_NEWROUTE, flags, family=family, dst=dst, dst_len=dst_len, gateway=gateway,
                  oif=oif, priority=priority, table=table)


def del_route(*, family: int | None = None, dst: str | None = None, dst_len: int = 0,
              gateway: str | None = None, oif: int | None = None, priority: int | None = None,
              table: int = c.RT_TABLE_MAIN) -> bytes:
    """RTM_DELROUTE: the route matching dst/dst_len and, when given, gateway, oif, priority."""
    return _route(c.RTM_DELROUTE, _ACK, family=family, dst=dst, dst_len=dst_len, gateway=gateway,
                  oif=oif, priority=priority, table=table)


def dump_netconf(*, family: int = c.AF_INET) -> bytes:
    """RTM_GETNETCONF dump: the namespace's per-device and `all` IP settings of one family."""
    return message(c.RTM_GETNETCONF, c.NLM_F_REQUEST | c.NLM_F_DUMP, bytes((family, 0, 0, 0)))


# -- neighbours (ARP/ND) -----------------------------------------------------------------------

NDMSG = struct.Struct("=BxxxiHBB")  # family, ifindex, state, flags, type


def dump_neighbours() -> bytes:
    """RTM_GETNEIGH dump of every neighbour table of the namespace (AF_BRIDGE rows included)."""
    return message(c.RTM_GETNEIGH, c.NLM_F_REQUEST | c.NLM_F_DUMP, NDMSG.pack(0, 0, 0, 0, 0))


def del_neighbour(family: int, index: int, dst: bytes) -> bytes:
    """RTM_DELNEIGH of one entry, `dst` being its NDA_DST as the kernel reported it."""
    return message(c.RTM_DELNEIGH, c.NLM_F_REQUEST | c.NLM_F_ACK,
                   NDMSG.pack(family, index, 0, 0, 0) + attr(c.NDA_DST, dst))


def dump_routes(*, family: int = c.AF_UNSPEC, table: int = c.RT_TABLE_MAIN) -> bytes:
    """RTM_GETROUTE dump of one table (filtered by the kernel under strict checking)."""
    head = RTMSG.pack(family, 0, 0, 0, table if table < 256 else c.RT_TABLE_UNSPEC, 0, 0, 0, 0)
    return message(c.RTM_GETROUTE, c.NLM_F_REQUEST | c.NLM_F_DUMP, head + attr_u32(c.RTA_TABLE, table))

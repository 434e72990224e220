"""Differential tests of vnet's rtnetlink codec against pyroute2 (pure bytes, no kernel).

1. Requests encoded by `vnet.netlink.wire` / `bridge_vlan` are decoded by pyroute2's message
   classes and checked field by field (and, for a few, compared byte for byte with the same
   request built by pyroute2).
2. Dump answers built by pyroute2 (as the kernel sends them) are decoded by `vnet.netlink.parse`.

The expected values come from pyroute2's own constants and classes wherever pyroute2 has them,
so a wrong vnet constant or struct layout shows up as a mismatch rather than cancelling out.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
from pyroute2.netlink import (
    NLA_F_NESTED,
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_EXCL,
    NLM_F_MULTI,
    NLM_F_REPLACE,
    NLM_F_REQUEST,
    NLMSG_DONE,
    nlmsg,
    nlmsgerr,
)
from pyroute2.netlink.rtnl import (
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_DELNEIGH,
    RTM_DELROUTE,
    RTM_GETADDR,
    RTM_GETLINK,
    RTM_GETNEIGH,
    RTM_GETNETCONF,
    RTM_GETROUTE,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWROUTE,
    RTM_SETLINK,
    rt_proto,
    rt_scope,
    rt_type,
)
from pyroute2.netlink.rtnl.ifaddrmsg import IFA_F_NODAD, IFA_F_PERMANENT, ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import AF_BRIDGE, IFF_UP, ifinfmsg
from pyroute2.netlink.rtnl.ifinfmsg import states as OPER_STATES
from pyroute2.netlink.rtnl.ndmsg import ndmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from vnet.netlink import bridge_vlan, wire
from vnet.netlink.parse import (
    AddrMsg,
    BridgeInfo,
    LinkMsg,
    RouteMsg,
    decode_ack,
    decode_addr,
    decode_link,
    decode_route,
    parse_messages,
)
from vnet.netlink.wire import BridgeOptions, VethPeer

AF_INET = socket.AF_INET
AF_INET6 = socket.AF_INET6
ACK = NLM_F_REQUEST | NLM_F_ACK
CREATE = ACK | NLM_F_CREATE | NLM_F_EXCL
DUMP = NLM_F_REQUEST | NLM_F_DUMP
IFF_BROADCAST_RUNNING_MULTICAST_LOWER_UP = 0x2 | 0x40 | 0x1000 | 0x10000


# -- helpers -----------------------------------------------------------------------------------

def pr2(cls: Any, data: bytes) -> Any:
    """Decode one message with a pyroute2 class; it must account for every byte."""
    msg = cls(data)
    msg.decode()
    assert msg["header"]["length"] == len(data)
    assert msg["header"]["sequence_number"] == 0
    assert msg["header"]["pid"] == 0
    return msg


def attr_names(nla: Any) -> list[str]:
    """The attribute names of a decoded pyroute2 message or nested attribute, in wire order."""
    return [item[0] for item in nla["attrs"]]


def header(msg: Any) -> tuple[int, int]:
    return int(msg["header"]["type"]), int(msg["header"]["flags"])


def linkinfo(msg: Any) -> Any:
    info = msg.get_attr("IFLA_LINKINFO")
    assert info is not None
    return info


def pr2_bytes(msg: Any) -> bytes:
    msg.encode()
    return bytes(msg.data)


def kernel_link(index: int, attrs: list[Any], *, flags: int = 0, ifi_type: int = 1,
                family: int = 0, seq: int = 1) -> bytes:
    """An RTM_NEWLINK of a dump answer, encoded by pyroute2."""
    msg = ifinfmsg()
    msg["header"] = {"type": RTM_NEWLINK, "flags": NLM_F_MULTI, "sequence_number": seq, "pid": 4242}
    msg["family"] = family
    msg["ifi_type"] = ifi_type
    msg["index"] = index
    msg["flags"] = flags
    msg["change"] = 0
    msg["attrs"] = attrs
    return pr2_bytes(msg)


def vnet_link(data: bytes) -> LinkMsg:
    messages = parse_messages(data)
    assert len(messages) == 1
    assert messages[0].type == RTM_NEWLINK
    assert messages[0].flags == NLM_F_MULTI
    return decode_link(messages[0].payload)


# == 1. encoded by vnet, decoded by pyroute2 ===================================================

def test_new_veth_with_peer_in_a_namespace() -> None:
    data = wire.new_link(create=True, ifname="h1-eth0", index=1001, group=7, mtu=1400,
                         mac="02:00:00:00:00:01", master=1000, up=True, kind="veth",
                         peer=VethPeer("eth0", index=5, netns_fd=9, group=3, mtu=1300,
                                       mac="02:00:00:00:00:02"))
    msg = pr2(ifinfmsg, data)
    assert header(msg) == (RTM_NEWLINK, CREATE)
    assert (msg["family"], msg["index"], msg["flags"], msg["change"]) == (0, 1001, IFF_UP, IFF_UP)
    assert attr_names(msg) == ["IFLA_IFNAME", "IFLA_GROUP", "IFLA_MTU", "IFLA_ADDRESS", "IFLA_MASTER",
                               "IFLA_LINKINFO"]
    assert msg.get_attr("IFLA_IFNAME") == "h1-eth0"
    assert msg.get_attr("IFLA_GROUP") == 7
    assert msg.get_attr("IFLA_MTU") == 1400
    assert msg.get_attr("IFLA_ADDRESS") == "02:00:00:00:00:01"
    assert msg.get_attr("IFLA_MASTER") == 1000
    info = linkinfo(msg)
    assert attr_names(info) == ["IFLA_INFO_KIND", "IFLA_INFO_DATA"]
    assert info.get_attr("IFLA_INFO_KIND") == "veth"
    peer = info.get_attr("IFLA_INFO_DATA").get_attr("VETH_INFO_PEER")
    assert (peer["family"], peer["index"], peer["flags"], peer["change"]) == (0, 5, 0, 0)
    assert attr_names(peer) == ["IFLA_IFNAME", "IFLA_GROUP", "IFLA_MTU", "IFLA_ADDRESS", "IFLA_NET_NS_FD"]
    assert peer.get_attr("IFLA_IFNAME") == "eth0"
    assert peer.get_attr("IFLA_GROUP") == 3
    assert peer.get_attr("IFLA_MTU") == 1300
    assert peer.get_attr("IFLA_ADDRESS") == "02:00:00:00:00:02"
    assert peer.get_attr("IFLA_NET_NS_FD") == 9


def test_new_veth_with_a_bare_peer() -> None:
    msg = pr2(ifinfmsg, wire.new_link(create=True, ifname="a", kind="veth", peer=VethPeer("b")))
    assert (msg["index"], msg["flags"], msg["change"]) == (0, 0, 0)
    peer = linkinfo(msg).get_attr("IFLA_INFO_DATA").get_attr("VETH_INFO_PEER")
    assert peer["index"] == 0
    assert attr_names(peer) == ["IFLA_IFNAME"]
    assert peer.get_attr("IFLA_IFNAME") == "b"


@pytest.mark.parametrize(("options", "expected"), [
    (BridgeOptions(stp_state=1, forward_delay=4, ageing_time=30.5, vlan_filtering=True),
     [("IFLA_BR_FORWARD_DELAY", 400), ("IFLA_BR_AGEING_TIME", 3050), ("IFLA_BR_STP_STATE", 1),
      ("IFLA_BR_VLAN_FILTERING", 1)]),
    (BridgeOptions(stp_state=0, forward_delay=0, ageing_time=0, vlan_filtering=False),
     [("IFLA_BR_FORWARD_DELAY", 0), ("IFLA_BR_AGEING_TIME", 0), ("IFLA_BR_STP_STATE", 0),
      ("IFLA_BR_VLAN_FILTERING", 0)]),
    (BridgeOptions(forward_delay=15), [("IFLA_BR_FORWARD_DELAY", 1500)]),
    (BridgeOptions(ageing_time=300), [("IFLA_BR_AGEING_TIME", 30000)]),
    (BridgeOptions(vlan_filtering=True), [("IFLA_BR_VLAN_FILTERING", 1)]),
    (BridgeOptions(), []),
])
def test_new_bridge_with_its_info_data(options: BridgeOptions, expected: list[tuple[str, int]]) -> None:
    data = wire.new_link(create=True, ifname="vbr0", index=300, group=42, mtu=9000, up=False,
                         kind="bridge", bridge=options)
    msg = pr2(ifinfmsg, data)
    assert header(msg) == (RTM_NEWLINK, CREATE)
    assert (msg["index"], msg["flags"], msg["change"]) == (300, 0, IFF_UP)
    assert attr_names(msg) == ["IFLA_IFNAME", "IFLA_GROUP", "IFLA_MTU", "IFLA_LINKINFO"]
    assert (msg.get_attr("IFLA_IFNAME"), msg.get_attr("IFLA_GROUP"), msg.get_attr("IFLA_MTU")) == (
        "vbr0", 42, 9000)
    info = linkinfo(msg)
    assert info.get_attr("IFLA_INFO_KIND") == "bridge"
    assert [(name, value) for name, value, *_ in info.get_attr("IFLA_INFO_DATA")["attrs"]] == expected


@pytest.mark.parametrize("kind", ["bridge", "veth", "dummy", "tun", "macvlan", "vxlan"])
def test_new_link_of_a_bare_kind(kind: str) -> None:
    msg = pr2(ifinfmsg, wire.new_link(create=True, ifname="dev0", kind=kind))
    assert header(msg) == (RTM_NEWLINK, CREATE)
    assert attr_names(msg) == ["IFLA_IFNAME", "IFLA_LINKINFO"]
    info = linkinfo(msg)
    assert attr_names(info) == ["IFLA_INFO_KIND"]
    assert info.get_attr("IFLA_INFO_KIND") == kind


def test_new_link_created_in_a_namespace() -> None:
    msg = pr2(ifinfmsg, wire.new_link(create=True, ifname="d0", kind="dummy", netns_fd=12))
    assert attr_names(msg) == ["IFLA_IFNAME", "IFLA_NET_NS_FD", "IFLA_LINKINFO"]
    assert msg.get_attr("IFLA_NET_NS_FD") == 12


def test_the_longest_interface_name() -> None:
    msg = pr2(ifinfmsg, wire.new_link(create=True, ifname="x" * 15, kind="dummy"))
    assert msg.get_attr("IFLA_IFNAME") == "x" * 15


# Modifying an existing device (tun/tap devices made by ioctl included): kwargs -> ifi_index,
# ifi_flags, ifi_change and the attributes pyroute2 must read.
MODIFY_CASES: list[tuple[dict[str, Any], int, int, int, list[tuple[str, Any]]]] = [
    ({"index": 7, "mtu": 1280}, 7, 0, 0, [("IFLA_MTU", 1280)]),
    ({"index": 7, "mtu": 65535}, 7, 0, 0, [("IFLA_MTU", 65535)]),
    ({"index": 7, "alias": "vnet:lab:h1"}, 7, 0, 0, [("IFLA_IFALIAS", "vnet:lab:h1")]),
    ({"index": 7, "alias": ""}, 7, 0, 0, [("IFLA_IFALIAS", "")]),
    ({"index": 7, "master": 1000}, 7, 0, 0, [("IFLA_MASTER", 1000)]),
    ({"index": 7, "master": 0}, 7, 0, 0, [("IFLA_MASTER", 0)]),
    ({"index": 7, "up": True}, 7, IFF_UP, IFF_UP, []),
    ({"index": 7, "up": False}, 7, 0, IFF_UP, []),
    ({"index": 7, "group": 0xFFFFFFFF}, 7, 0, 0, [("IFLA_GROUP", 0xFFFFFFFF)]),
    ({"index": 7, "group": 0}, 7, 0, 0, [("IFLA_GROUP", 0)]),
    ({"index": 7, "mac": "0A:1b:2C:3d:4E:5f"}, 7, 0, 0, [("IFLA_ADDRESS", "0a:1b:2c:3d:4e:5f")]),
    ({"index": 7, "netns_fd": 5}, 7, 0, 0, [("IFLA_NET_NS_FD", 5)]),
    ({"index": 7, "ifname": "renamed"}, 7, 0, 0, [("IFLA_IFNAME", "renamed")]),
    ({"ifname": "tap0", "master": 3, "up": True}, 0, IFF_UP, IFF_UP,
     [("IFLA_IFNAME", "tap0"), ("IFLA_MASTER", 3)]),
    ({"index": 9, "ifname": "tap1", "group": 7, "mtu": 1500, "mac": "02:00:00:00:00:09", "netns_fd": 4,
      "alias": "a", "master": 2, "up": True}, 9, IFF_UP, IFF_UP,
     [("IFLA_IFNAME", "tap1"), ("IFLA_GROUP", 7), ("IFLA_MTU", 1500), ("IFLA_ADDRESS", "02:00:00:00:00:09"),
      ("IFLA_NET_NS_FD", 4), ("IFLA_IFALIAS", "a"), ("IFLA_MASTER", 2)]),
]


@pytest.mark.parametrize(("kwargs", "index", "flags", "change", "expected"), MODIFY_CASES)
def test_modify_link(kwargs: dict[str, Any], index: int, flags: int, change: int,
                     expected: list[tuple[str, Any]]) -> None:
    msg = pr2(ifinfmsg, wire.new_link(**kwargs))
    assert header(msg) == (RTM_NEWLINK, ACK)
    assert (msg["family"], msg["index"], msg["flags"], msg["change"]) == (0, index, flags, change)
    assert [(name, value) for name, value, *_ in msg["attrs"]] == expected


def test_set_bridge_port_flags() -> None:
    flags = (("learning", False), ("flood", True), ("mcast_flood", False), ("bcast_flood", True),
             ("isolated", True))
    msg = pr2(ifinfmsg, wire.set_port_flags(ifname="h1-eth0", flags=flags))
    assert header(msg) == (RTM_NEWLINK, ACK)
    assert (msg["index"], msg["flags"], msg["change"]) == (0, 0, 0)
    assert msg.get_attr("IFLA_IFNAME") == "h1-eth0"
    info = linkinfo(msg)
    assert attr_names(info) == ["IFLA_INFO_SLAVE_KIND", "IFLA_INFO_SLAVE_DATA"]
    assert info.get_attr("IFLA_INFO_SLAVE_KIND") == "bridge"
    port = info.get_attr("IFLA_INFO_SLAVE_DATA")
    assert [(name, value) for name, value, *_ in port["attrs"]] == [
        ("IFLA_BRPORT_LEARNING", 0), ("IFLA_BRPORT_UNICAST_FLOOD", 1), ("IFLA_BRPORT_MCAST_FLOOD", 0),
        ("IFLA_BRPORT_BCAST_FLOOD", 1), ("IFLA_BRPORT_ISOLATED", 1)]


@pytest.mark.parametrize(("data", "index", "expected"), [
    (wire.del_link(index=42), 42, []),
    (wire.del_link(ifname="vnet-h1"), 0, [("IFLA_IFNAME", "vnet-h1")]),
    (wire.del_link(index=42, ifname="ignored"), 42, []),
    (wire.del_link_group(7), 0, [("IFLA_GROUP", 7)]),
    (wire.del_link_group(0xFFFFFFFF), 0, [("IFLA_GROUP", 0xFFFFFFFF)]),
])
def test_del_link(data: bytes, index: int, expected: list[tuple[str, Any]]) -> None:
    msg = pr2(ifinfmsg, data)
    assert header(msg) == (RTM_DELLINK, ACK)
    assert (msg["family"], msg["index"], msg["flags"], msg["change"]) == (0, index, 0, 0)
    assert [(name, value) for name, value, *_ in msg["attrs"]] == expected


@pytest.mark.parametrize(("skip_stats", "expected"), [(True, [("IFLA_EXT_MASK", 1 << 3)]), (False, [])])
def test_dump_links(skip_stats: bool, expected: list[tuple[str, int]]) -> None:
    msg = pr2(ifinfmsg, wire.dump_links(skip_stats=skip_stats))
    assert header(msg) == (RTM_GETLINK, DUMP)
    assert (msg["family"], msg["index"]) == (0, 0)
    assert [(name, value) for name, value, *_ in msg["attrs"]] == expected


@pytest.mark.parametrize(("address", "prefixlen", "family", "expected"), [
    ("10.0.0.1", 24, AF_INET, [("IFA_LOCAL", "10.0.0.1"), ("IFA_ADDRESS", "10.0.0.1")]),
    ("192.168.255.254", 32, AF_INET, [("IFA_LOCAL", "192.168.255.254"), ("IFA_ADDRESS", "192.168.255.254")]),
    ("0.0.0.0", 0, AF_INET, [("IFA_LOCAL", "0.0.0.0"), ("IFA_ADDRESS", "0.0.0.0")]),
    ("2001:db8::1", 64, AF_INET6, [("IFA_ADDRESS", "2001:db8::1"), ("IFA_FLAGS", IFA_F_NODAD)]),
    ("fd00:1:2:3:4:5:6:7", 128, AF_INET6,
     [("IFA_ADDRESS", "fd00:1:2:3:4:5:6:7"), ("IFA_FLAGS", IFA_F_NODAD)]),
])
@pytest.mark.parametrize(("build", "kind", "flags"), [
    (wire.new_addr, RTM_NEWADDR, CREATE),
    (lambda i, a, p: wire.new_addr(i, a, p, replace=True), RTM_NEWADDR, ACK | NLM_F_CREATE | NLM_F_REPLACE),
    (wire.del_addr, RTM_DELADDR, ACK),
], ids=["new", "replace", "del"])
def test_addresses(address: str, prefixlen: int, family: int, expected: list[tuple[str, Any]],
                   build: Callable[[int, str, int], bytes], kind: int, flags: int) -> None:
    msg = pr2(ifaddrmsg, build(12, address, prefixlen))
    assert header(msg) == (kind, flags)
    assert (msg["family"], msg["prefixlen"], msg["flags"], msg["scope"], msg["index"]) == (
        family, prefixlen, 0, rt_scope["universe"], 12)
    assert [(name, value) for name, value, *_ in msg["attrs"]] == expected


@pytest.mark.parametrize(("family", "index"), [(0, 0), (AF_INET, 0), (AF_INET6, 3)])
def test_dump_addrs(family: int, index: int) -> None:
    msg = pr2(ifaddrmsg, wire.dump_addrs(family=family, index=index))
    assert header(msg) == (RTM_GETADDR, DUMP)
    assert (msg["family"], msg["prefixlen"], msg["index"]) == (family, 0, index)
    assert msg["attrs"] == []


NEW_ROUTE = ACK | NLM_F_CREATE | NLM_F_EXCL
STATIC_UNICAST = (rt_proto["static"], rt_scope["universe"], rt_type["unicast"])  # proto, scope, type

ROUTE_CASES: list[tuple[bytes, int, int, tuple[int, int, int, int, int, int], list[tuple[str, Any]]]] = [
    # data, message type, flags, (family, dst_len, table, proto, scope, type), attributes
    (wire.new_route(dst="10.1.0.0", dst_len=16, gateway="10.0.0.254", priority=100),
     RTM_NEWROUTE, NEW_ROUTE, (AF_INET, 16, 254, *STATIC_UNICAST),
     [("RTA_TABLE", 254), ("RTA_DST", "10.1.0.0"), ("RTA_GATEWAY", "10.0.0.254"), ("RTA_PRIORITY", 100)]),
    (wire.new_route(gateway="10.0.0.1"),
     RTM_NEWROUTE, NEW_ROUTE, (AF_INET, 0, 254, *STATIC_UNICAST),
     [("RTA_TABLE", 254), ("RTA_GATEWAY", "10.0.0.1")]),
    (wire.new_route(dst="2001:db8:1::", dst_len=48, gateway="fe80::1", oif=4, priority=1024, replace=True),
     RTM_NEWROUTE, ACK | NLM_F_CREATE | NLM_F_REPLACE,
     (AF_INET6, 48, 254, *STATIC_UNICAST),
     [("RTA_TABLE", 254), ("RTA_DST", "2001:db8:1::"), ("RTA_GATEWAY", "fe80::1"), ("RTA_OIF", 4),
      ("RTA_PRIORITY", 1024)]),
    (wire.new_route(family=AF_INET6, oif=4),
     RTM_NEWROUTE, NEW_ROUTE, (AF_INET6, 0, 254, *STATIC_UNICAST),
     [("RTA_TABLE", 254), ("RTA_OIF", 4)]),
    (wire.new_route(dst="192.0.2.7", dst_len=32, oif=9, table=100),
     RTM_NEWROUTE, NEW_ROUTE, (AF_INET, 32, 100, *STATIC_UNICAST),
     [("RTA_TABLE", 100), ("RTA_DST", "192.0.2.7"), ("RTA_OIF", 9)]),
    # A table above 255 only fits RTA_TABLE: rtm_table is RT_TABLE_UNSPEC, as iproute2 sends it.
    (wire.new_route(dst="10.9.0.0", dst_len=24, gateway="10.0.0.2", table=1000),
     RTM_NEWROUTE, NEW_ROUTE, (AF_INET, 24, 0, *STATIC_UNICAST),
     [("RTA_TABLE", 1000), ("RTA_DST", "10.9.0.0"), ("RTA_GATEWAY", "10.0.0.2")]),
    (wire.del_route(dst="10.1.0.0", dst_len=16),
     RTM_DELROUTE, ACK, (AF_INET, 16, 254, rt_proto["unspec"], rt_scope["nowhere"], rt_type["unspec"]),
     [("RTA_TABLE", 254), ("RTA_DST", "10.1.0.0")]),
    (wire.del_route(dst="2001:db8::", dst_len=32, gateway="2001:db8::1", oif=2, priority=5, table=300),
     RTM_DELROUTE, ACK, (AF_INET6, 32, 0, rt_proto["unspec"], rt_scope["nowhere"], rt_type["unspec"]),
     [("RTA_TABLE", 300), ("RTA_DST", "2001:db8::"), ("RTA_GATEWAY", "2001:db8::1"), ("RTA_OIF", 2),
      ("RTA_PRIORITY", 5)]),
]


@pytest.mark.parametrize(("data", "kind", "flags", "head", "expected"), ROUTE_CASES)
def test_routes(data: bytes, kind: int, flags: int, head: tuple[int, int, int, int, int, int],
                expected: list[tuple[str, Any]]) -> None:
    msg = pr2(rtmsg, data)
    assert header(msg) == (kind, flags)
    assert (msg["family"], msg["dst_len"], msg["table"], msg["proto"], msg["scope"], msg["type"]) == head
    assert (msg["src_len"], msg["tos"], msg["flags"]) == (0, 0, 0)
    assert [(name, value) for name, value, *_ in msg["attrs"]] == expected


@pytest.mark.parametrize(("family", "table", "head_table"), [(0, 254, 254), (AF_INET6, 255, 255),
                                                               (AF_INET, 1000, 0)])
def test_dump_routes(family: int, table: int, head_table: int) -> None:
    msg = pr2(rtmsg, wire.dump_routes(family=family, table=table))
    assert header(msg) == (RTM_GETROUTE, DUMP)
    assert (msg["family"], msg["table"], msg["dst_len"]) == (family, head_table, 0)
    assert [(name, value) for name, value, *_ in msg["attrs"]] == [("RTA_TABLE", table)]


@pytest.mark.parametrize(("family", "dst"), [(AF_INET, "10.0.0.9"), (AF_INET6, "fe80::9")])
def test_del_neighbour(family: int, dst: str) -> None:
    msg = pr2(ndmsg, wire.del_neighbour(family, 6, socket.inet_pton(family, dst)))
    assert header(msg) == (RTM_DELNEIGH, ACK)
    assert (msg["family"], msg["ifindex"], msg["state"], msg["flags"], msg["ndm_type"]) == (
        family, 6, 0, 0, 0)
    assert [(name, value) for name, value, *_ in msg["attrs"]] == [("NDA_DST", dst)]


def test_dump_neighbours() -> None:
    msg = pr2(ndmsg, wire.dump_neighbours())
    assert header(msg) == (RTM_GETNEIGH, DUMP)
    assert (msg["family"], msg["ifindex"], msg["attrs"]) == (0, 0, [])


@pytest.mark.parametrize("family", [AF_INET, AF_INET6])
def test_dump_netconf(family: int) -> None:
    # pyroute2 has no netconfmsg class: check the header and the family byte of struct netconfmsg.
    data = wire.dump_netconf(family=family)
    msg = pr2(nlmsg, data)
    assert header(msg) == (RTM_GETNETCONF, DUMP)
    assert data[16:] == bytes((family, 0, 0, 0))


@pytest.mark.parametrize(("build", "kind"), [(bridge_vlan.set_port_vlans, RTM_SETLINK),
                                             (bridge_vlan.del_port_vlans, RTM_DELLINK)])
def test_bridge_port_vlans(build: Callable[[int, list[tuple[int, bool, bool]]], bytes], kind: int) -> None:
    msg = pr2(ifinfmsg, build(4, [(10, True, True), (20, False, False), (4094, False, True)]))
    assert header(msg) == (kind, ACK)
    assert (msg["family"], msg["index"]) == (AF_BRIDGE, 4)
    assert [(item.name, item.get_flags()) for item in msg["attrs"]] == [("IFLA_AF_SPEC", NLA_F_NESTED)]
    infos = msg.get_attr("IFLA_AF_SPEC").get_attrs("IFLA_BRIDGE_VLAN_INFO")
    assert [(i["vid"], sorted(i.flags2names(i["flags"]))) for i in infos] == [
        (10, ["BRIDGE_VLAN_INFO_PVID", "BRIDGE_VLAN_INFO_UNTAGGED"]), (20, []),
        (4094, ["BRIDGE_VLAN_INFO_UNTAGGED"])]


def test_dump_bridge_port_vlans() -> None:
    msg = pr2(ifinfmsg, bridge_vlan.dump_port_vlans())
    assert header(msg) == (RTM_GETLINK, DUMP)
    assert msg["family"] == AF_BRIDGE
    assert [(name, value) for name, value, *_ in msg["attrs"]] == [("IFLA_EXT_MASK", 1 << 1)]


# The same request built by pyroute2 from scratch: byte-identical to vnet's encoding.

def _pr2_request(cls: Any, kind: int, flags: int, fields: dict[str, Any], attrs: list[Any]) -> bytes:
    msg = cls()
    msg["header"] = {"type": kind, "flags": flags}
    for key, value in fields.items():
        msg[key] = value
    msg["attrs"] = attrs
    return pr2_bytes(msg)


IDENTICAL_CASES: list[tuple[str, bytes, Callable[[], bytes]]] = [
    ("bridge",
     wire.new_link(create=True, ifname="br0", index=5, up=True, kind="bridge",
                   bridge=BridgeOptions(stp_state=1, forward_delay=4, ageing_time=30.5, vlan_filtering=True)),
     lambda: _pr2_request(ifinfmsg, RTM_NEWLINK, CREATE, {"index": 5, "flags": IFF_UP, "change": IFF_UP}, [
         ("IFLA_IFNAME", "br0"),
         ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "bridge"), ("IFLA_INFO_DATA", {"attrs": [
             ("IFLA_BR_FORWARD_DELAY", 400), ("IFLA_BR_AGEING_TIME", 3050), ("IFLA_BR_STP_STATE", 1),
             ("IFLA_BR_VLAN_FILTERING", 1)]})]})])),
    ("veth",
     wire.new_link(create=True, ifname="h1", index=1001, mtu=1400, kind="veth",
                   peer=VethPeer("eth0", index=5, netns_fd=9)),
     lambda: _pr2_request(ifinfmsg, RTM_NEWLINK, CREATE, {"index": 1001}, [
         ("IFLA_IFNAME", "h1"), ("IFLA_MTU", 1400),
         ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "veth"), ("IFLA_INFO_DATA", {"attrs": [
             ("VETH_INFO_PEER", {"index": 5, "attrs": [("IFLA_IFNAME", "eth0"),
                                                      ("IFLA_NET_NS_FD", 9)]})]})]})])),
    ("alias+master",
     wire.new_link(index=3, alias="vnet:x", master=1000),
     lambda: _pr2_request(ifinfmsg, RTM_NEWLINK, ACK, {"index": 3},
                          [("IFLA_IFALIAS", "vnet:x"), ("IFLA_MASTER", 1000)])),
    ("del group",
     wire.del_link_group(9),
     lambda: _pr2_request(ifinfmsg, RTM_DELLINK, ACK, {}, [("IFLA_GROUP", 9)])),
    ("addr v4",
     wire.new_addr(2, "10.0.0.1", 24),
     lambda: _pr2_request(ifaddrmsg, RTM_NEWADDR, CREATE, {"family": AF_INET, "prefixlen": 24, "index": 2},
                          [("IFA_LOCAL", "10.0.0.1"), ("IFA_ADDRESS", "10.0.0.1")])),
    ("addr v6",
     wire.del_addr(2, "2001:db8::5", 64),
     lambda: _pr2_request(ifaddrmsg, RTM_DELADDR, ACK, {"family": AF_INET6, "prefixlen": 64, "index": 2},
                          [("IFA_ADDRESS", "2001:db8::5"), ("IFA_FLAGS", IFA_F_NODAD)])),
    ("route",
     wire.new_route(dst="10.1.0.0", dst_len=16, gateway="10.0.0.254", oif=3, priority=100),
     lambda: _pr2_request(rtmsg, RTM_NEWROUTE, NEW_ROUTE, {
         "family": AF_INET, "dst_len": 16, "table": 254, "proto": rt_proto["static"],
         "scope": rt_scope["universe"], "type": rt_type["unicast"]}, [
         ("RTA_TABLE", 254), ("RTA_DST", "10.1.0.0"), ("RTA_GATEWAY", "10.0.0.254"), ("RTA_OIF", 3),
         ("RTA_PRIORITY", 100)])),
]


@pytest.mark.parametrize(("vnet_bytes", "build"), [(v, b) for _, v, b in IDENTICAL_CASES],
                         ids=[name for name, _, _ in IDENTICAL_CASES])
def test_pyroute2_builds_the_same_bytes(vnet_bytes: bytes, build: Callable[[], bytes]) -> None:
    assert build().hex() == vnet_bytes.hex()


# == 2. encoded by pyroute2 (as in a kernel dump answer), decoded by vnet =======================

def test_bridge_from_a_dump() -> None:
    data = kernel_link(12, [
        ("IFLA_IFNAME", "vbr0"), ("IFLA_TXQLEN", 1000), ("IFLA_OPERSTATE", "UP"), ("IFLA_LINKMODE", 0),
        ("IFLA_MTU", 9000), ("IFLA_GROUP", 42), ("IFLA_PROMISCUITY", 0), ("IFLA_IFALIAS", "vnet:lab:br0"),
        ("IFLA_ADDRESS", "02:00:00:aa:bb:cc"), ("IFLA_BROADCAST", "ff:ff:ff:ff:ff:ff"),
        ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "bridge"), ("IFLA_INFO_DATA", {"attrs": [
            ("IFLA_BR_FORWARD_DELAY", 1500), ("IFLA_BR_HELLO_TIME", 200), ("IFLA_BR_MAX_AGE", 2000),
            ("IFLA_BR_AGEING_TIME", 30050), ("IFLA_BR_STP_STATE", 1), ("IFLA_BR_PRIORITY", 32768),
            ("IFLA_BR_VLAN_FILTERING", 1), ("IFLA_BR_VLAN_DEFAULT_PVID", 1)]})]}),
    ], flags=IFF_UP | IFF_BROADCAST_RUNNING_MULTICAST_LOWER_UP)
    assert vnet_link(data) == LinkMsg(
        index=12, name="vbr0", alias="vnet:lab:br0", group=42, master=None, mtu=9000,
        mac="02:00:00:aa:bb:cc", up=True, oper_state="up", kind="bridge",
        bridge=BridgeInfo(stp_state=1, forward_delay=15.0, ageing_time=300.5, vlan_filtering=True),
        flags=IFF_UP | IFF_BROADCAST_RUNNING_MULTICAST_LOWER_UP)


@pytest.mark.parametrize(("data_attrs", "expected"), [
    ([("IFLA_BR_STP_STATE", 0), ("IFLA_BR_VLAN_FILTERING", 0)], BridgeInfo(0, 0.0, 0.0, False)),
    ([("IFLA_BR_FORWARD_DELAY", 1), ("IFLA_BR_AGEING_TIME", 100)], BridgeInfo(0, 0.01, 1.0, False)),
    ([], BridgeInfo(0, 0.0, 0.0, False)),
])
def test_bridge_info_values(data_attrs: list[tuple[str, int]], expected: BridgeInfo) -> None:
    data = kernel_link(3, [("IFLA_IFNAME", "b"), ("IFLA_LINKINFO", {"attrs": [
        ("IFLA_INFO_KIND", "bridge"), ("IFLA_INFO_DATA", {"attrs": data_attrs})]})])
    assert vnet_link(data).bridge == expected


def test_veth_bridge_port_with_its_peer_in_another_namespace() -> None:
    data = kernel_link(1001, [
        ("IFLA_IFNAME", "h1-eth0"), ("IFLA_MTU", 1400), ("IFLA_GROUP", 7), ("IFLA_MASTER", 1000),
        ("IFLA_OPERSTATE", "LOWERLAYERDOWN"), ("IFLA_LINK", 5), ("IFLA_LINK_NETNSID", 3),
        ("IFLA_ADDRESS", "02:00:00:00:00:01"),
        ("IFLA_LINKINFO", {"attrs": [
            ("IFLA_INFO_KIND", "veth"), ("IFLA_INFO_SLAVE_KIND", "bridge"),
            ("IFLA_INFO_SLAVE_DATA", {"attrs": [
                ("IFLA_BRPORT_STATE", 3), ("IFLA_BRPORT_PRIORITY", 32), ("IFLA_BRPORT_COST", 2),
                ("IFLA_BRPORT_LEARNING", 0), ("IFLA_BRPORT_UNICAST_FLOOD", 1), ("IFLA_BRPORT_MCAST_FLOOD", 1),
                ("IFLA_BRPORT_BCAST_FLOOD", 0), ("IFLA_BRPORT_ISOLATED", 1)]})]}),
    ], flags=IFF_UP)
    link = vnet_link(data)
    assert link == LinkMsg(
        index=1001, name="h1-eth0", alias=None, group=7, master=1000, mtu=1400, mac="02:00:00:00:00:01",
        up=True, oper_state="lowerlayerdown", kind="veth", slave_kind="bridge",
        port_flags=(("bcast_flood", False), ("flood", True), ("isolated", True), ("learning", False),
                    ("mcast_flood", True)),
        link=5, link_netnsid=3, flags=IFF_UP)
    assert link.peer_index == 5


def test_veth_with_its_peer_in_the_same_namespace() -> None:
    data = kernel_link(8, [("IFLA_IFNAME", "a"), ("IFLA_LINK", 9),
                           ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "veth")]})])
    link = vnet_link(data)
    assert (link.kind, link.link, link.link_netnsid, link.peer_index) == ("veth", 9, None, 9)


def test_macvlan_lower_device_is_not_a_peer() -> None:
    data = kernel_link(8, [("IFLA_IFNAME", "mv0"), ("IFLA_LINK", 2), ("IFLA_LINK_NETNSID", -1),
                           ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "macvlan")]})])
    link = vnet_link(data)
    assert (link.kind, link.link, link.link_netnsid, link.peer_index) == ("macvlan", 2, -1, None)


@pytest.mark.parametrize(("tun_type", "mac"), [(1, None), (2, "52:54:00:12:34:56")])
def test_tun_and_tap(tun_type: int, mac: str | None) -> None:
    attrs: list[Any] = [("IFLA_IFNAME", "vnet-tap0"), ("IFLA_MTU", 1500), ("IFLA_MASTER", 4),
                        ("IFLA_OPERSTATE", "DOWN")]
    if mac is not None:
        attrs.append(("IFLA_ADDRESS", mac))
    attrs.append(("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "tun"), ("IFLA_INFO_DATA", {"attrs": [
        ("IFLA_TUN_OWNER", 1000), ("IFLA_TUN_TYPE", tun_type), ("IFLA_TUN_PI", 0), ("IFLA_TUN_VNET_HDR", 1),
        ("IFLA_TUN_PERSIST", 1), ("IFLA_TUN_MULTI_QUEUE", 0), ("IFLA_TUN_NUM_QUEUES", 1)]})]}))
    link = vnet_link(kernel_link(20, attrs, ifi_type=1 if mac else 65534))
    assert link == LinkMsg(index=20, name="vnet-tap0", alias=None, group=0, master=4, mtu=1500, mac=mac,
                           up=False, oper_state="down", kind="tun")


def test_loopback_without_linkinfo() -> None:
    data = kernel_link(1, [("IFLA_IFNAME", "lo"), ("IFLA_MTU", 65536), ("IFLA_ADDRESS", "00:00:00:00:00:00"),
                           ("IFLA_OPERSTATE", "UNKNOWN")], flags=IFF_UP | 0x8 | 0x40, ifi_type=772)
    link = vnet_link(data)
    assert (link.name, link.index, link.mtu, link.kind, link.bridge, link.master, link.alias) == (
        "lo", 1, 65536, None, None, None, None)
    assert (link.up, link.oper_state, link.mac) == (True, "unknown", "00:00:00:00:00:00")


@pytest.mark.parametrize("state", OPER_STATES)
def test_oper_states(state: str) -> None:
    link = vnet_link(kernel_link(2, [("IFLA_IFNAME", "d"), ("IFLA_OPERSTATE", state)]))
    assert link.oper_state == state.lower()


@pytest.mark.parametrize(("flags", "up"), [(0, False), (IFF_UP, True), (0x1002, False), (0x11043, True)])
def test_up_flag(flags: int, up: bool) -> None:
    link = vnet_link(kernel_link(2, [("IFLA_IFNAME", "d")], flags=flags))
    assert (link.up, link.flags) == (up, flags)


def test_nested_flag_on_linkinfo_is_masked() -> None:
    data = kernel_link(2, [("IFLA_IFNAME", "d"), ("IFLA_LINKINFO", {"attrs": [
        ("IFLA_INFO_KIND", "bridge"),
        ("IFLA_INFO_DATA", {"attrs": [("IFLA_BR_STP_STATE", 1)]}, NLA_F_NESTED)]},
        NLA_F_NESTED)])
    link = vnet_link(data)
    assert (link.kind, link.bridge) == ("bridge", BridgeInfo(1, 0.0, 0.0, False))


def _kernel_addr(family: int, prefixlen: int, flags: int, scope: int, index: int, attrs: list[Any]) -> bytes:
    msg = ifaddrmsg()
    msg["header"] = {"type": RTM_NEWADDR, "flags": NLM_F_MULTI, "sequence_number": 2, "pid": 1}
    msg["family"], msg["prefixlen"], msg["flags"], msg["scope"], msg["index"] = (
        family, prefixlen, flags, scope, index)
    msg["attrs"] = attrs
    return pr2_bytes(msg)


@pytest.mark.parametrize(("data", "expected"), [
    (_kernel_addr(AF_INET, 24, IFA_F_PERMANENT, 0, 3, [
        ("IFA_ADDRESS", "10.0.0.1"), ("IFA_LOCAL", "10.0.0.1"), ("IFA_BROADCAST", "10.0.0.255"),
        ("IFA_LABEL", "eth0"), ("IFA_FLAGS", IFA_F_PERMANENT)]),
     AddrMsg(index=3, family=AF_INET, prefixlen=24, address="10.0.0.1", scope=0, flags=IFA_F_PERMANENT)),
    # point-to-point: IFA_ADDRESS is the peer, IFA_LOCAL the device's own address
    (_kernel_addr(AF_INET, 32, 0, 0, 4, [("IFA_ADDRESS", "192.0.2.2"), ("IFA_LOCAL", "192.0.2.1")]),
     AddrMsg(index=4, family=AF_INET, prefixlen=32, address="192.0.2.1", scope=0, flags=0)),
    (_kernel_addr(AF_INET, 8, IFA_F_PERMANENT, rt_scope["host"], 1, [("IFA_LOCAL", "127.0.0.1")]),
     AddrMsg(index=1, family=AF_INET, prefixlen=8, address="127.0.0.1", scope=254, flags=IFA_F_PERMANENT)),
    (_kernel_addr(AF_INET6, 64, IFA_F_PERMANENT, 0, 5, [
        ("IFA_ADDRESS", "2001:db8::5"),
        ("IFA_CACHEINFO", {"ifa_preferred": 0xFFFFFFFF, "ifa_valid": 0xFFFFFFFF, "cstamp": 1, "tstamp": 2}),
        ("IFA_FLAGS", IFA_F_PERMANENT | IFA_F_NODAD | 0x200)]),
     AddrMsg(index=5, family=AF_INET6, prefixlen=64, address="2001:db8::5", scope=0,
             flags=IFA_F_PERMANENT | IFA_F_NODAD | 0x200)),
    (_kernel_addr(AF_INET6, 64, 0x40, rt_scope["link"], 5, [("IFA_ADDRESS", "fe80::1")]),
     AddrMsg(index=5, family=AF_INET6, prefixlen=64, address="fe80::1", scope=253, flags=0x40)),
], ids=["v4", "v4-ptp", "v4-host", "v6-flags", "v6-no-ifa-flags"])
def test_addresses_from_a_dump(data: bytes, expected: AddrMsg) -> None:
    (msg,) = parse_messages(data)
    assert (msg.type, msg.flags, msg.seq) == (RTM_NEWADDR, NLM_F_MULTI, 2)
    assert decode_addr(msg.payload) == expected


def _kernel_route(family: int, dst_len: int, table: int, proto: int, scope: int, kind: int,
                  attrs: list[Any]) -> bytes:
    msg = rtmsg()
    msg["header"] = {"type": RTM_NEWROUTE, "flags": NLM_F_MULTI, "sequence_number": 3, "pid": 1}
    msg["family"], msg["dst_len"], msg["table"] = family, dst_len, table
    msg["proto"], msg["scope"], msg["type"] = proto, scope, kind
    msg["attrs"] = attrs
    return pr2_bytes(msg)


@pytest.mark.parametrize(("data", "expected"), [
    (_kernel_route(AF_INET, 16, 254, rt_proto["static"], 0, rt_type["unicast"], [
        ("RTA_TABLE", 254), ("RTA_DST", "10.1.0.0"), ("RTA_GATEWAY", "10.0.0.254"), ("RTA_OIF", 3),
        ("RTA_PRIORITY", 100)]),
     RouteMsg(family=AF_INET, dst="10.1.0.0", dst_len=16, gateway="10.0.0.254", oif=3, priority=100,
              table=254, protocol=4, scope=0, type=1)),
    (_kernel_route(AF_INET, 24, 254, rt_proto["kernel"], rt_scope["link"], rt_type["unicast"], [
        ("RTA_TABLE", 254), ("RTA_DST", "10.0.0.0"), ("RTA_PREFSRC", "10.0.0.1"), ("RTA_OIF", 3)]),
     RouteMsg(family=AF_INET, dst="10.0.0.0", dst_len=24, gateway=None, oif=3, priority=0,
              table=254, protocol=2, scope=253, type=1)),
    (_kernel_route(AF_INET6, 0, 254, rt_proto["ra"], 0, rt_type["unicast"], [
        ("RTA_TABLE", 254), ("RTA_GATEWAY", "fe80::1"), ("RTA_OIF", 2), ("RTA_PRIORITY", 1024)]),
     RouteMsg(family=AF_INET6, dst=None, dst_len=0, gateway="fe80::1", oif=2, priority=1024,
              table=254, protocol=9, scope=0, type=1)),
    # table 1000: the kernel puts RT_TABLE_COMPAT (252) in rtm_table, the real id in RTA_TABLE
    (_kernel_route(AF_INET6, 48, 252, rt_proto["static"], 0, rt_type["unicast"], [
        ("RTA_TABLE", 1000), ("RTA_DST", "2001:db8:1::"), ("RTA_OIF", 7)]),
     RouteMsg(family=AF_INET6, dst="2001:db8:1::", dst_len=48, gateway=None, oif=7, priority=0,
              table=1000, protocol=4, scope=0, type=1)),
    (_kernel_route(AF_INET, 32, 255, rt_proto["kernel"], rt_scope["host"], rt_type["local"], [
        ("RTA_TABLE", 255), ("RTA_DST", "127.0.0.1"), ("RTA_PREFSRC", "127.0.0.1"), ("RTA_OIF", 1)]),
     RouteMsg(family=AF_INET, dst="127.0.0.1", dst_len=32, gateway=None, oif=1, priority=0,
              table=255, protocol=2, scope=254, type=2)),
    (_kernel_route(AF_INET, 8, 254, rt_proto["boot"], 0, rt_type["blackhole"], [("RTA_DST", "10.0.0.0")]),
     RouteMsg(family=AF_INET, dst="10.0.0.0", dst_len=8, gateway=None, oif=None, priority=0,
              table=254, protocol=3, scope=0, type=6)),
], ids=["v4-via", "v4-connected", "v6-default", "v6-table-1000", "v4-local", "blackhole-no-rta-table"])
def test_routes_from_a_dump(data: bytes, expected: RouteMsg) -> None:
    (msg,) = parse_messages(data)
    assert (msg.type, msg.flags, msg.seq) == (RTM_NEWROUTE, NLM_F_MULTI, 3)
    assert decode_route(msg.payload) == expected


def test_port_vlans_from_a_bridge_dump() -> None:
    def port(index: int, vlans: list[tuple[int, int]]) -> bytes:
        return kernel_link(index, [
            ("IFLA_IFNAME", f"p{index}"), ("IFLA_MASTER", 1),
            ("IFLA_AF_SPEC", {"attrs": [("IFLA_BRIDGE_VLAN_INFO", {"flags": flags, "vid": vid})
                                        for vid, flags in vlans]}, NLA_F_NESTED)], family=AF_BRIDGE)

    buf = port(4, [(20, 0), (10, 6)]) + port(5, [(1, 2)]) + port(6, [])
    assert bridge_vlan.port_vlans(parse_messages(buf)) == {4: ((10, True, True), (20, False, False)),
                                                            5: ((1, True, False),)}


def test_a_whole_dump_answer_in_one_buffer() -> None:
    done = nlmsgerr()
    done["header"] = {"type": NLMSG_DONE, "flags": NLM_F_MULTI, "sequence_number": 9, "pid": 1}
    done["error"] = 0
    done["attrs"] = []
    buf = (kernel_link(1, [("IFLA_IFNAME", "lo")], seq=9)
           + kernel_link(2, [("IFLA_IFNAME", "eth0"), ("IFLA_IFALIAS", "odd-length-alias")], seq=9)
           + kernel_link(3, [("IFLA_IFNAME", "br0"),
                             ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "bridge")]})], seq=9)
           + pr2_bytes(done))
    messages = parse_messages(buf)
    assert [(m.type, m.flags, m.seq) for m in messages] == [(RTM_NEWLINK, NLM_F_MULTI, 9)] * 3 + [
        (NLMSG_DONE, NLM_F_MULTI, 9)]
    links = [decode_link(m.payload) for m in messages[:3]]
    assert [(link.index, link.name, link.alias, link.kind) for link in links] == [
        (1, "lo", None, None), (2, "eth0", "odd-length-alias", None), (3, "br0", None, "bridge")]
    assert decode_ack(messages[3]).ok

"""Pure tests of the rtnetlink codec: exact bytes, encode -> decode round trips, bad input."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vnet.netlink import constants as c
from vnet.netlink import wire
from vnet.netlink.errors import NetlinkError, WireError
from vnet.netlink.parse import (
    Ack,
    Message,
    decode_ack,
    decode_addr,
    decode_link,
    decode_route,
    parse_attrs,
    parse_messages,
)
from vnet.netlink.wire import BridgeOptions, VethPeer


def one(data: bytes) -> Message:
    messages = parse_messages(data)
    assert len(messages) == 1
    return messages[0]


def test_exact_bytes_of_a_bridge_creation() -> None:
    # nlmsghdr: len 56, RTM_NEWLINK (16), REQUEST|ACK|EXCL|CREATE (0x605), seq 0, pid 0
    expected = bytes.fromhex(
        "38000000" "1000" "0506" "00000000" "00000000"
        "00" "00" "0000" "00000000" "00000000" "00000000"  # ifinfomsg: all zero
        "0800" "0300" "62723000"  # IFLA_IFNAME "br0\0"
        "1000" "1200"  # IFLA_LINKINFO, 16 bytes
        "0b00" "0100" "62726964676500" "00"  # IFLA_INFO_KIND "bridge\0" + 1 byte padding
    )
    assert wire.new_link(create=True, ifname="br0", kind="bridge") == expected


def test_exact_bytes_of_a_delete_by_index() -> None:
    expected = struct.pack("=IHHII", 32, c.RTM_DELLINK, c.NLM_F_REQUEST | c.NLM_F_ACK, 0, 0)
    expected += struct.pack("=BxHiII", 0, 0, 7, 0, 0)
    assert wire.del_link(index=7) == expected


def test_bridge_round_trip() -> None:
    data = wire.new_link(create=True, ifname="vbr1", index=300, group=42, master=0, mtu=9000,
                         mac="02:00:00:aa:bb:cc", up=True, kind="bridge",
                         bridge=BridgeOptions(stp_state=1, forward_delay=4, ageing_time=30.5,
                                              vlan_filtering=False))
    msg = one(data)
    assert msg.type == c.RTM_NEWLINK
    assert msg.flags == c.NLM_F_REQUEST | c.NLM_F_ACK | c.NLM_F_CREATE | c.NLM_F_EXCL
    link = decode_link(msg.payload)
    assert (link.index, link.name, link.group, link.master, link.mtu) == (300, "vbr1", 42, 0, 9000)
    assert link.mac == "02:00:00:aa:bb:cc"
    assert link.up and link.kind == "bridge" and link.alias is None
    assert link.bridge is not None
    assert (link.bridge.stp_state, link.bridge.forward_delay, link.bridge.ageing_time) == (1, 4.0, 30.5)
    assert link.bridge.vlan_filtering is False


def test_modify_round_trip_and_flags() -> None:
    msg = one(wire.new_link(index=12, ifname="renamed", alias="vnet:lab:x", up=False))
    assert msg.flags == c.NLM_F_REQUEST | c.NLM_F_ACK
    _family, _type, index, flags, change = wire.IFINFOMSG.unpack_from(msg.payload)
    assert (index, flags, change) == (12, 0, c.IFF_UP)
    link = decode_link(msg.payload)
    assert (link.name, link.alias, link.up) == ("renamed", "vnet:lab:x", False)
    untouched = wire.IFINFOMSG.unpack_from(one(wire.new_link(index=12, mtu=1400)).payload)
    assert untouched[3:] == (0, 0)  # up=None: ifi_change 0 leaves the flags alone


def test_veth_round_trip_with_peer() -> None:
    peer = VethPeer("eth0", index=501, netns_fd=9, group=3, mtu=1450, mac="02:00:00:00:00:02")
    msg = one(wire.new_link(create=True, ifname="vh1", index=500, kind="veth", group=3, master=77,
                            up=True, peer=peer))
    link = decode_link(msg.payload)
    assert (link.name, link.index, link.kind, link.master, link.group, link.up) == (
        "vh1", 500, "veth", 77, 3, True)
    linkinfo = parse_attrs(msg.payload, wire.IFINFOMSG.size)[c.IFLA_LINKINFO]
    data = parse_attrs(linkinfo)[c.IFLA_INFO_DATA]
    peer_payload = parse_attrs(data)[c.VETH_INFO_PEER]
    decoded = decode_link(peer_payload)
    assert (decoded.name, decoded.index, decoded.group, decoded.mtu, decoded.mac) == (
        "eth0", 501, 3, 1450, "02:00:00:00:00:02")
    assert parse_attrs(peer_payload, wire.IFINFOMSG.size)[c.IFLA_NET_NS_FD] == struct.pack("=I", 9)


def test_delete_by_name_and_group() -> None:
    assert decode_link(one(wire.del_link(ifname="gone0")).payload).name == "gone0"
    msg = one(wire.del_link_group(4242))
    assert msg.type == c.RTM_DELLINK
    assert wire.IFINFOMSG.unpack_from(msg.payload)[2] == 0
    assert parse_attrs(msg.payload, wire.IFINFOMSG.size) == {c.IFLA_GROUP: struct.pack("=I", 4242)}


@pytest.mark.parametrize(("address", "prefixlen", "family"), [
    ("198.18.0.1", 24, c.AF_INET), ("fd00::1", 64, c.AF_INET6)])
def test_address_round_trip(address: str, prefixlen: int, family: int) -> None:
    msg = one(wire.new_addr(5, address, prefixlen, replace=True))
    assert msg.flags & c.NLM_F_REPLACE and not msg.flags & c.NLM_F_EXCL
    addr = decode_addr(msg.payload)
    assert (addr.index, addr.family, addr.address, addr.prefixlen) == (5, family, address, prefixlen)
    attrs = parse_attrs(msg.payload, wire.IFADDRMSG.size)
    if family == c.AF_INET:
        assert attrs[c.IFA_LOCAL] == attrs[c.IFA_ADDRESS]
    else:
        assert addr.flags == c.IFA_F_NODAD
    assert decode_addr(one(wire.del_addr(5, address, prefixlen)).payload).address == address


def test_route_round_trip() -> None:
    msg = one(wire.new_route(dst="198.18.2.0", dst_len=24, gateway="198.18.1.2", oif=4, priority=7))
    route = decode_route(msg.payload)
    assert (route.family, route.dst, route.dst_len, route.gateway, route.oif, route.priority) == (
        c.AF_INET, "198.18.2.0", 24, "198.18.1.2", 4, 7)
    assert (route.table, route.protocol, route.scope, route.type) == (
        c.RT_TABLE_MAIN, c.RTPROT_STATIC, c.RT_SCOPE_UNIVERSE, c.RTN_UNICAST)
    default = decode_route(one(wire.new_route(gateway="fd00:1::2")).payload)
    assert (default.family, default.dst, default.dst_len, default.gateway) == (
        c.AF_INET6, None, 0, "fd00:1::2")
    gone = decode_route(one(wire.del_route(family=c.AF_INET, oif=3, table=1000)).payload)
    assert (gone.table, gone.scope, gone.protocol) == (1000, c.RT_SCOPE_NOWHERE, c.RTPROT_UNSPEC)


@pytest.mark.parametrize("request_bytes", [
    wire.dump_links(), wire.dump_addrs(), wire.dump_routes(), wire.dump_routes(table=500)])
def test_dump_requests(request_bytes: bytes) -> None:
    msg = one(request_bytes)
    assert msg.flags == c.NLM_F_REQUEST | c.NLM_F_DUMP
    assert msg.type in (c.RTM_GETLINK, c.RTM_GETADDR, c.RTM_GETROUTE)


def _error(code: int, flags: int, original: bytes, tlvs: bytes = b"") -> Message:
    payload = struct.pack("=i", -code) + original + tlvs
    data = struct.pack("=IHHII", 16 + len(payload), c.NLMSG_ERROR, flags, 9, 0) + payload
    return one(data)


def test_decode_ack_capped_and_uncapped() -> None:
    request = wire.new_link(create=True, ifname="x", kind="bridge")
    tlv = wire.attr_str(c.NLMSGERR_ATTR_MSG, "mtu less than device minimum")
    capped = _error(22, c.NLM_F_CAPPED | c.NLM_F_ACK_TLVS, request[:16], tlv)
    assert decode_ack(capped) == Ack(22, "mtu less than device minimum")
    full = _error(22, c.NLM_F_ACK_TLVS, request, tlv)
    assert decode_ack(full) == Ack(22, "mtu less than device minimum")
    ok = decode_ack(_error(0, c.NLM_F_CAPPED, request[:16]))
    assert ok.ok and ok == Ack(0, "")
    error = Ack(17).error()
    assert isinstance(error, NetlinkError) and error.errno == 17 and "exists" in error.message
    done = one(struct.pack("=IHHIIi", 20, c.NLMSG_DONE, c.NLM_F_MULTI, 1, 0, 0))
    assert decode_ack(done) == Ack(0)


def test_several_messages_in_one_buffer() -> None:
    data = wire.del_link(index=1) + wire.new_addr(1, "198.18.0.1", 16) + wire.dump_links()
    assert [m.type for m in parse_messages(data)] == [c.RTM_DELLINK, c.RTM_NEWADDR, c.RTM_GETLINK]


@pytest.mark.parametrize("data", [
    b"\x01\x02", struct.pack("=IHHII", 8, 2, 0, 0, 0), struct.pack("=IHHII", 64, 16, 0, 0, 0)])
def test_garbage_buffers(data: bytes) -> None:
    with pytest.raises(WireError):
        parse_messages(data)


def test_bad_payloads() -> None:
    with pytest.raises(WireError):
        decode_link(b"\0" * 8)
    with pytest.raises(WireError):  # attribute claims 200 bytes
        decode_link(b"\0" * 16 + struct.pack("=HH", 200, c.IFLA_IFNAME) + b"ab\0\0")
    with pytest.raises(WireError):  # no name
        decode_link(b"\0" * 16)
    with pytest.raises(WireError):
        decode_addr(struct.pack("=BBBBI", c.AF_INET, 24, 0, 0, 1) + wire.attr(c.IFA_LOCAL, b"\1\2\3"))
    with pytest.raises(WireError):
        decode_route(struct.pack("=BBBBBBBBI", 99, 0, 0, 0, 254, 0, 0, 1, 0))
    with pytest.raises(WireError):
        decode_ack(Message(c.NLMSG_ERROR, 0, 1, b"\0\0"))


def test_every_truncation_is_clean() -> None:
    data = wire.new_link(create=True, ifname="vh1", kind="veth", peer=VethPeer("eth0", group=3), mtu=1400)
    for cut in range(len(data)):
        try:
            messages = parse_messages(data[:cut])
        except WireError:
            continue
        assert messages == []


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_decoders_raise_only_wire_errors(data: bytes) -> None:
    for decoder in (decode_link, decode_addr, decode_route, parse_messages):
        with contextlib.suppress(WireError):
            decoder(data)


@pytest.mark.parametrize("call", [
    lambda: wire.new_link(create=True, ifname="a-name-of-16-chr", kind="bridge"),
    lambda: wire.new_link(create=True, ifname="bad/name", kind="bridge"),
    lambda: wire.new_link(create=True, ifname="x", kind="bridge", alias="ignored by the kernel"),
    lambda: wire.new_link(mtu=1500),
    lambda: wire.new_link(index=3, mac="02:00:00:00:00"),
    lambda: wire.new_link(index=3, mac="zz:00:00:00:00:00"),
    lambda: wire.new_link(index=3, bridge=BridgeOptions(stp_state=0)),
    lambda: wire.new_link(index=3, kind="veth", bridge=BridgeOptions(stp_state=0)),
    lambda: wire.new_link(create=True, ifname="v", kind="veth", peer=VethPeer("p", index=5)),
    wire.del_link,
    lambda: wire.del_link_group(0),
    lambda: wire.new_addr(1, "198.18.0.1", 33),
    lambda: wire.new_addr(1, "not-an-address", 24),
    lambda: wire.new_route(dst="198.18.0.0", dst_len=16, gateway="fd00::1"),
    lambda: wire.new_route(oif=3),
    lambda: wire.new_route(family=c.AF_INET, dst_len=8),
])
def test_invalid_arguments(call: object) -> None:
    assert callable(call)
    with pytest.raises(ValueError):
        call()

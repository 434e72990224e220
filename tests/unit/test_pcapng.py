"""The pcapng writer (vnet/capture/pcapng.py), read back with dpkt; the VLAN re-insertion and
the one-line decoder of vnet/capture/. The raw layout of one file is checked byte by byte."""

from __future__ import annotations

import io
import struct

import dpkt
from pcapnglib import INBOUND, OUTBOUND, read

from vnet.capture import decode
from vnet.capture.pcapng import Direction, Statistics, Writer, block, section_header
from vnet.capture.socket import TP_STATUS_VLAN_TPID_VALID, TP_STATUS_VLAN_VALID, with_vlan_tag

MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")


def _icmp_frame(src: str, dst: str) -> bytes:
    icmp = dpkt.icmp.ICMP(type=8, data=dpkt.icmp.ICMP.Echo(id=1, seq=1, data=b"x" * 7))
    ip = dpkt.ip.IP(src=bytes(map(int, src.split("."))), dst=bytes(map(int, dst.split("."))),
                    p=dpkt.ip.IP_PROTO_ICMP, data=icmp)
    return bytes(dpkt.ethernet.Ethernet(src=MAC_A, dst=MAC_B, type=dpkt.ethernet.ETH_TYPE_IP, data=ip))


def _written() -> bytes:
    out = io.BytesIO()
    writer = Writer(out)
    assert writer.interface("h1:eth0 (vnet-l-h1/eth0)", 262144) == 0
    assert writer.interface("h1:eth0 (vn0123456789ab)", 262144) == 1
    frame = _icmp_frame("198.18.1.1", "198.18.1.2")
    writer.packet(0, 1_700_000_000_123_456_789, frame, len(frame), Direction.OUTBOUND)
    writer.packet(1, 1_700_000_000_123_457_000, frame[:30], len(frame), Direction.INBOUND)
    writer.statistics(0, 1_700_000_000_000_000_000, 1_700_000_001_000_000_000, Statistics(7, 2))
    writer.statistics(1, 1_700_000_000_000_000_000, 1_700_000_001_000_000_000, Statistics(5, 0))
    return out.getvalue()


def test_dpkt_reads_interfaces_packets_directions_and_statistics() -> None:
    found = read(_written())
    assert found.interfaces == ["h1:eth0 (vnet-l-h1/eth0)", "h1:eth0 (vn0123456789ab)"]
    first, second = found.packets
    assert (first.interface, first.direction, second.interface, second.direction) == (0, OUTBOUND, 1, INBOUND)
    assert first.ns == 1_700_000_000_123_456_789  # if_tsresol 9: nanoseconds, kept whole
    assert abs(found.reader_timestamps[0] - 1_700_000_000.123456789) < 1e-6  # dpkt honours if_tsresol
    ip = first.eth.data
    assert isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.icmp.ICMP)
    assert (bytes(ip.src), bytes(ip.dst)) == (bytes([198, 18, 1, 1]), bytes([198, 18, 1, 2]))
    assert (len(second.data), second.length) == (30, len(first.data))  # snapped, original length kept
    assert found.statistics == {0: (7, 2), 1: (5, 0)}


def test_raw_layout_of_the_blocks() -> None:
    data = _written()
    assert struct.unpack_from("<II", data) == (0x0A0D0D0A, len(section_header()))
    assert data[8:12] == struct.pack("=I", 0x1A2B3C4D)  # byte-order magic, in the writer's order
    assert struct.unpack_from("<HHq", data, 12) == (1, 0, -1)  # version 1.0, section length unknown
    offset, kinds = 0, []
    while offset < len(data):
        kind, length = struct.unpack_from("<II", data, offset)
        assert length % 4 == 0 and length >= 12, (kind, length)
        assert struct.unpack_from("<I", data, offset + length - 4)[0] == length  # trailing length
        kinds.append(kind)
        if kind == 6:  # EPB: header 28, data padded, options then opt_endofopt before the length
            caplen = struct.unpack_from("<I", data, offset + 20)[0]
            options = offset + 28 + caplen + (-caplen % 4)
            assert struct.unpack_from("<HHI", data, options) == (2, 4, struct.unpack_from(
                "<I", data, options + 4)[0])  # epb_flags, 4 bytes
            assert data[options + 8:options + 12] == b"\0\0\0\0"  # opt_endofopt
            assert options + 12 == offset + length - 4
        offset += length
    assert offset == len(data)
    assert kinds == [0x0A0D0D0A, 1, 1, 6, 6, 5, 5]


def test_idb_options_are_padded_and_end() -> None:
    out = io.BytesIO()
    Writer(out).interface("abc", 100)  # 3 bytes of name: padded to 4
    body = out.getvalue()[len(section_header()):]
    assert struct.unpack_from("<IIHHI", body) == (1, len(body), 1, 0, 100)
    assert body[16:24] == struct.pack("<HH", 2, 3) + b"abc\0"  # if_name, padded
    assert body[24:32] == struct.pack("<HH", 9, 1) + b"\x09\0\0\0"  # if_tsresol 9
    assert body[32:36] == b"\0\0\0\0" and len(body) == 40  # opt_endofopt, then the length


def test_block_pads_its_body() -> None:
    assert block(0x99, b"abcde") == struct.pack("=II", 0x99, 20) + b"abcde\0\0\0" + struct.pack("=I", 20)


def test_vlan_tag_goes_back_after_the_macs() -> None:
    frame = MAC_B + MAC_A + b"\x08\x00" + b"payload"
    tagged = with_vlan_tag(frame, TP_STATUS_VLAN_VALID, 0x2000 | 42, 0)
    assert tagged == MAC_B + MAC_A + b"\x81\x00\x20\x2a" + b"\x08\x00payload"  # no TPID: 802.1Q
    qinq = with_vlan_tag(frame, TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID, 7, 0x88A8)
    assert qinq[12:16] == b"\x88\xa8\x00\x07"
    assert with_vlan_tag(frame, 0, 42, 0x8100) == frame  # no tag reported: the frame as it is
    assert dpkt.ethernet.Ethernet(tagged).vlan_tags[0].id == 42


def test_decoder_lines() -> None:
    frame = _icmp_frame("198.18.1.1", "198.18.1.2")
    assert decode.summary(frame) == "IPv4 198.18.1.1 > 198.18.1.2 ICMP"
    assert decode.summary(with_vlan_tag(frame, TP_STATUS_VLAN_VALID, 42, 0)) == \
        "vlan 42, IPv4 198.18.1.1 > 198.18.1.2 ICMP"
    arp = dpkt.arp.ARP(op=1, sha=MAC_A, spa=bytes([198, 18, 1, 1]), tpa=bytes([198, 18, 1, 2]))
    request = bytes(dpkt.ethernet.Ethernet(src=MAC_A, dst=b"\xff" * 6, type=0x0806, data=arp))
    assert decode.summary(request) == "ARP who-has 198.18.1.2 tell 198.18.1.1"
    ip6 = dpkt.ip6.IP6(src=bytes(15) + b"\1", dst=bytes(15) + b"\2", nxt=58, hlim=64, data=b"")
    six = bytes(dpkt.ethernet.Ethernet(src=MAC_A, dst=MAC_B, type=0x86DD, data=ip6))
    assert decode.summary(six) == "IPv6 ::1 > ::2 ICMPv6"
    assert decode.summary(MAC_A + MAC_B + b"\x88\xcc") == "ethertype 0x88cc"
    assert decode.summary(b"\0" * 5) == "5-byte frame (truncated)"

"""Reading the pcapng files `vnet capture` writes, with dpkt (not with vnet's own code): its
Reader for the packets, its block classes for what the Reader leaves out (interface ids,
epb_flags, the Interface Statistics Blocks, every interface's name)."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import dpkt
import dpkt.pcapng as pn

OPT_IF_NAME, OPT_EPB_FLAGS, OPT_ISB_IFRECV, OPT_ISB_IFDROP = 2, 2, 4, 5
INBOUND, OUTBOUND = 1, 2


class _Isb(pn.PcapngBlockLE):
    """dpkt has no Interface Statistics Block class: its header, then options."""

    __hdr__ = (("type", "I", 5), ("len", "I", 24), ("iface_id", "I", 0), ("ts_high", "I", 0),
               ("ts_low", "I", 0), ("_len", "I", 24))


@dataclass(frozen=True)
class Packet:
    interface: int
    ns: int
    data: bytes
    length: int
    direction: int  # epb_flags bits 0-1

    @property
    def eth(self) -> dpkt.ethernet.Ethernet:
        return dpkt.ethernet.Ethernet(self.data)


@dataclass(frozen=True)
class Capture:
    interfaces: list[str]  # if_name of each IDB
    packets: list[Packet]
    statistics: dict[int, tuple[int, int]]  # interface -> (isb_ifrecv, isb_ifdrop)
    reader_timestamps: list[float]  # as dpkt's Reader gives them


def _option(opts: list[pn.PcapngOption], code: int) -> bytes | None:
    return next((bytes(o.data) for o in opts if o.code == code), None)


def read(data: bytes) -> Capture:
    timestamps = [ts for ts, _ in pn.Reader(io.BytesIO(data))]  # dpkt's own reader accepts it
    assert struct.unpack_from("<I", data, 8)[0] == 0x1A2B3C4D, "little-endian section expected"
    interfaces, packets, stats = [], [], {}
    offset = 0
    while offset < len(data):
        kind, length = struct.unpack_from("<II", data, offset)
        block = data[offset:offset + length]
        if kind == 1:
            idb = pn.InterfaceDescriptionBlockLE(block)
            interfaces.append((_option(idb.opts, OPT_IF_NAME) or b"").decode())
        elif kind == 6:
            epb = pn.EnhancedPacketBlockLE(block)
            flags = _option(epb.opts, OPT_EPB_FLAGS)
            packets.append(Packet(epb.iface_id, (epb.ts_high << 32) | epb.ts_low, bytes(epb.pkt_data),
                                  epb.pkt_len, struct.unpack("<I", flags)[0] & 3 if flags else 0))
        elif kind == 5:
            isb = _Isb(block)
            recv, drop = _option(isb.opts, OPT_ISB_IFRECV), _option(isb.opts, OPT_ISB_IFDROP)
            stats[isb.iface_id] = (struct.unpack("<Q", recv)[0] if recv else -1,
                                   struct.unpack("<Q", drop)[0] if drop else -1)
        offset += length
    return Capture(interfaces, packets, stats, timestamps)

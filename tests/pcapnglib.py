"""Running `vnet capture` in tests and reading the pcapng files it writes, with dpkt (not with
vnet's own code): its Reader for the packets, its block classes for what the Reader leaves out
(interface ids, epb_flags, the Interface Statistics Blocks, every interface's name).
Importable as `pcapnglib` from every test directory, as hanglib."""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

import dpkt
import dpkt.pcapng as pn
from functional.hostlib import VNET

OPT_IF_NAME, OPT_EPB_FLAGS, OPT_ISB_IFRECV, OPT_ISB_IFDROP = 2, 2, 4, 5
INBOUND, OUTBOUND = 1, 2
PING = ("ping",) if shutil.which("ping") else ("busybox", "ping")  # iputils is not everywhere
SUMMARY = b"packets captured on"


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


# --- running `vnet capture` ---------------------------------------------------------------------


def start(*args: str, stdout: int | None = subprocess.DEVNULL,
          env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`vnet capture ARGS`, returned once its sockets listen (it says so on standard error)."""
    # buffered as for a user: PYTHONUNBUFFERED (set where CI runs) would hide a missing flush
    environ = {k: v for k, v in {**os.environ, **(env or {})}.items() if k != "PYTHONUNBUFFERED"}
    proc = subprocess.Popen([VNET, "capture", *args], stdout=stdout, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=environ)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert line.startswith(b"capturing on "), line + proc.stderr.read()
    return proc


def finish(proc: subprocess.Popen[bytes], timeout: float = 20) -> bytes:
    """Its standard error after it ended with status 0 (the summary line last)."""
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    assert SUMMARY in err.splitlines()[-1], err
    return err


def icmp(capture: Capture, interface: int, kind: int) -> list[tuple[int, bytes, bytes]]:
    """(direction, src, dst) of the ICMP packets of `kind` (8 request, 0 reply) on `interface`."""
    out = []
    for packet in capture.packets:
        ip = packet.eth.data
        is_icmp = isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.icmp.ICMP)
        if packet.interface == interface and is_icmp and ip.data.type == kind:
            out.append((packet.direction, bytes(ip.src), bytes(ip.dst)))
    return out

"""Capturing on one device with an AF_PACKET socket: in a node's namespace or on the host.

The socket is made inside the namespace (vnet.host.netns.entered: setns on this thread and
back), so it stays bound there: the device name is looked up in that namespace. It is made with
protocol 0, which receives nothing, and bound with ETH_P_ALL to the device: no packet of another
device gets in between. Devices strip an 802.1Q tag into the packet's metadata (every receive
path does, some drivers on transmit too); PACKET_AUXDATA reports it, and the tag is put back
after the two MAC addresses, as libpcap does, so the file holds the frame as it was on the wire.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
import time
from dataclasses import dataclass

from vnet.capture.pcapng import Direction, Statistics
from vnet.errors import NotOnHostError, NotPermittedError, UnavailableError
from vnet.host import netns

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_AUXDATA = 8
SO_TIMESTAMPNS = 35  # also SCM_TIMESTAMPNS; not in Python's socket module
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
ETH_P_8021Q = 0x8100
# struct tpacket_auxdata: tp_status, tp_len, tp_snaplen, tp_mac, tp_net, tp_vlan_tci, tp_vlan_tpid
AUXDATA = struct.Struct("=IIIHHHH")
TIMESPEC = struct.Struct("=qq")
TPACKET_STATS = struct.Struct("=II")  # tp_packets (drops included), tp_drops
ANCILLARY = socket.CMSG_SPACE(AUXDATA.size) + socket.CMSG_SPACE(TIMESPEC.size)
MAC_PAIR = 12  # destination and source MAC: where a VLAN tag goes


@dataclass(frozen=True)
class Packet:
    ns: int  # when the kernel received it (CLOCK_REALTIME, ns)
    data: bytes  # the frame, its VLAN tag put back; at most the snap length
    length: int  # the frame's length on the wire
    direction: Direction


class DeviceGoneError(NotOnHostError):
    """The device went away (or down for good) while it was being captured."""


def with_vlan_tag(data: bytes, status: int, tci: int, tpid: int) -> bytes:
    """`data` with the VLAN tag that auxdata reports stripped put back after the MACs."""
    if not status & TP_STATUS_VLAN_VALID:
        return data
    proto = tpid if status & TP_STATUS_VLAN_TPID_VALID else ETH_P_8021Q
    return data[:MAC_PAIR] + struct.pack("!HH", proto, tci) + data[MAC_PAIR:]


def _driver_error(exc: OSError, what: str) -> NotOnHostError | NotPermittedError | UnavailableError:
    """The kernel's refusal as vnet's error: never a raw OSError at the user."""
    if exc.errno in (errno.EPERM, errno.EACCES):
        return NotPermittedError(f"{what}: operation not permitted", "run vnet as root (sudo)")
    if exc.errno in (errno.ENODEV, errno.ENXIO, errno.ENETDOWN):
        return NotOnHostError(f"{what}: no such device", "run `vnet apply` for the lab first")
    return UnavailableError(f"{what}: {exc.strerror}")


class PacketSocket:
    """An AF_PACKET socket bound to `device` of `namespace` (None: the host's)."""

    def __init__(self, namespace: str | None, device: str, snaplen: int) -> None:
        self.device, self.snaplen = device, snaplen
        self.went_down = False  # the kernel said ENETDOWN during the capture
        where = f"device {device}" + (f" in namespace {namespace}" if namespace else "")
        self.where = where
        try:
            with netns.entered(namespace) if namespace else contextlib.nullcontext():
                self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except OSError as exc:
            raise _driver_error(exc, f"cannot open a packet socket for {where}") from None
        try:
            self.sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            self.sock.bind((device, ETH_P_ALL))
        except OSError as exc:
            self.sock.close()
            raise _driver_error(exc, f"cannot capture on {where}") from None
        self.sock.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    def receive(self) -> Packet | None:
        """The next packet, None when none is waiting."""
        try:
            data, ancillary, _flags, address = self.sock.recvmsg(self.snaplen, ANCILLARY)
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno == errno.ENETDOWN:
                # said once when the device goes down (or away): a device set up again goes on
                # delivering to this socket, so it stays in the loop
                self.went_down = True
                return None
            raise DeviceGoneError(f"{self.where} went away during the capture: {exc.strerror}") from None
        ns, length = time.time_ns(), len(data)
        for level, kind, value in ancillary:
            if level == SOL_PACKET and kind == PACKET_AUXDATA and len(value) >= AUXDATA.size:
                status, length, _snap, _mac, _net, tci, tpid = AUXDATA.unpack_from(value)
                if status & TP_STATUS_VLAN_VALID:
                    length += 4
                data = with_vlan_tag(data, status, tci, tpid)
            elif level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= TIMESPEC.size:
                seconds, nanoseconds = TIMESPEC.unpack_from(value)
                ns = seconds * 1_000_000_000 + nanoseconds
        outbound = address[2] == socket.PACKET_OUTGOING
        return Packet(ns, data[:self.snaplen], length, Direction.OUTBOUND if outbound else Direction.INBOUND)

    def statistics(self) -> Statistics:
        """What the kernel counted since the socket was bound (reading resets its counters)."""
        try:
            packets, drops = TPACKET_STATS.unpack(self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS,
                                                                       TPACKET_STATS.size))
        except OSError:
            return Statistics(0, 0)
        return Statistics(packets, drops)

    def close(self) -> None:
        self.sock.close()

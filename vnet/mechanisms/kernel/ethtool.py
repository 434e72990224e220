"""Transmit checksum offload of a device, through the SIOCETHTOOL ioctl (no `ethtool` process).

Why vnet touches it: with the userspace (netdev) OVS datapath, a veth end outside OVS that
leaves checksums to "hardware" sends TCP segments with partial checksums; the userspace
datapath forwards them as they are and the receiver drops them (TCP stalls while ping works).
Computing checksums in software on that end (`ethtool -K <dev> tx off`) fixes it.
"""

from __future__ import annotations

import array
import fcntl
import socket
import struct

SIOCETHTOOL = 0x8946
ETHTOOL_GTXCSUM = 0x00000016
ETHTOOL_STXCSUM = 0x00000017


def _ioctl(sock: socket.socket, name: str, command: int, value: int = 0) -> int:
    data = array.array("I", [command, value])
    address, _ = data.buffer_info()
    request = struct.pack("16sP", name.encode(), address)
    fcntl.ioctl(sock.fileno(), SIOCETHTOOL, request)
    return int(data[1])


def tx_checksum(sock: socket.socket, name: str) -> bool:
    """Whether `name` (in the socket's namespace) offloads transmit checksums."""
    return bool(_ioctl(sock, name, ETHTOOL_GTXCSUM))


def set_tx_checksum(sock: socket.socket, name: str, enabled: bool) -> None:
    _ioctl(sock, name, ETHTOOL_STXCSUM, int(enabled))


def control_socket() -> socket.socket:
    """A socket for ioctls, in the calling thread's current namespace."""
    return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

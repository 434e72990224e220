"""Just enough OpenFlow 1.0 to put a vnet bridge's flow table back: delete every flow, then add
the flow a standalone bridge without a controller has (priority 0, actions NORMAL).

vnet installs no flows of its own; a flow someone added by hand to a vnet bridge is drift, and
apply repairs it over the bridge's management socket (`<rundir>/<bridge>.mgmt`, what ovs-ofctl
uses), ending with a barrier so that the change is in effect when it returns.
"""

from __future__ import annotations

import os
import socket
import struct

from vnet.errors import UnavailableError

VERSION = 0x01
OFPT_HELLO, OFPT_ERROR, OFPT_FLOW_MOD, OFPT_BARRIER_REQUEST, OFPT_BARRIER_REPLY = 0, 1, 14, 18, 19
OFPFC_ADD, OFPFC_DELETE = 0, 3
OFPFW_ALL = (1 << 22) - 1
OFPP_NONE, OFPP_NORMAL = 0xFFFF, 0xFFFA
OFPAT_OUTPUT = 0
NO_BUFFER = 0xFFFFFFFF
HEADER = struct.Struct("!BBHI")


def mgmt_socket(ovsdb: str, bridge: str) -> str:
    return os.path.join(os.path.dirname(ovsdb.removeprefix("unix:")), f"{bridge}.mgmt")


def _message(kind: int, xid: int, body: bytes = b"") -> bytes:
    return HEADER.pack(VERSION, kind, HEADER.size + len(body), xid) + body


def _flow_mod(command: int, priority: int, actions: bytes) -> bytes:
    match = struct.pack("!I36x", OFPFW_ALL)  # every field wildcarded
    return match + struct.pack("!QHHHHIHH", 0, command, 0, 0, priority, NO_BUFFER, OFPP_NONE, 0) + actions


def _receive(sock: socket.socket, until: int) -> None:
    """Read messages until the barrier reply `until`; an OpenFlow error raises."""
    buffer = b""
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise UnavailableError("ovs-vswitchd closed the OpenFlow connection")
        buffer += chunk
        while len(buffer) >= HEADER.size:
            _version, kind, length, xid = HEADER.unpack_from(buffer)
            if len(buffer) < length:
                break
            body, buffer = buffer[HEADER.size:length], buffer[length:]
            if kind == OFPT_ERROR:
                error_type, code = struct.unpack_from("!HH", body)
                raise UnavailableError(f"OpenFlow error type {error_type} code {code}")
            if kind == OFPT_BARRIER_REPLY and xid == until:
                return


def reset_flows(path: str, normal: bool, timeout: float = 10.0) -> None:
    """Delete every flow of the bridge at management socket `path`; with `normal`, add the
    standalone bridge's `priority=0,actions=NORMAL`."""
    output_normal = struct.pack("!HHHH", OFPAT_OUTPUT, 8, OFPP_NORMAL, 0)
    messages = [_message(OFPT_HELLO, 1), _message(OFPT_FLOW_MOD, 2, _flow_mod(OFPFC_DELETE, 0, b""))]
    if normal:
        messages.append(_message(OFPT_FLOW_MOD, 3, _flow_mod(OFPFC_ADD, 0, output_normal)))
    messages.append(_message(OFPT_BARRIER_REQUEST, 4))
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(b"".join(messages))
            _receive(sock, 4)
    except OSError as exc:
        raise UnavailableError(f"OpenFlow on {path}: {exc}") from None

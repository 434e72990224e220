"""Delete network devices by name in the background, for `vnet destroy`; standard library only.

    python -I -S reaper.py LAB NAME...

Deleting a Linux bridge costs the kernel one RCU grace period (rcu_barrier() in
br_multicast_dev_del, ~16-20 ms on these machines, whoever deletes it and however it is
batched). `vnet destroy` therefore takes the lab's bridges out of the lab first (down, renamed
to a `vd…` name, alias `vnet-reap:<lab>:<old name>`, default group: the lab's names, marks and
device group are free at once) and hands the new names to this process, which deletes them and
exits. A device left behind by a reaper that died is found by its alias and removed by the next
`vnet destroy` of that lab (see vnet/reconcile/destroy.py).

It imports nothing from vnet, so that it starts in a few tens of milliseconds (the vnet package
imports pydantic and the topology code). One RTM_DELLINK per device: the kernel takes and
releases the RTNL lock for each message, so other netlink users are not held up for the whole
batch. LAB only labels the process: `vnet destroy --all` and `vnet status` look for live
reapers by their command line.
"""

from __future__ import annotations

import errno
import socket
import struct
import sys

NETLINK_ROUTE = 0
RTM_DELLINK = 17
NLMSG_ERROR = 2
NLM_F_REQUEST_ACK = 0x01 | 0x04
IFLA_IFNAME = 3
HEADER = struct.Struct("=IHHII")  # nlmsghdr
IFINFOMSG = struct.Struct("=BxHiII")
CHUNK = 128  # requests per sendto: their ACKs must fit in the receive buffer
GONE = frozenset({0, errno.ENODEV})


def del_link(seq: int, name: str) -> bytes:
    """RTM_DELLINK of the device called `name`."""
    data = name.encode("utf-8", "surrogateescape") + b"\0"
    attr = struct.pack("=HH", 4 + len(data), IFLA_IFNAME) + data + b"\0" * (-len(data) % 4)
    body = IFINFOMSG.pack(0, 0, 0, 0, 0) + attr
    return HEADER.pack(HEADER.size + len(body), RTM_DELLINK, NLM_F_REQUEST_ACK, seq, 0) + body


def _acks(data: bytes) -> list[tuple[int, int]]:
    """(sequence number, errno) of every acknowledgement in `data`."""
    out, offset = [], 0
    while offset + HEADER.size + 4 <= len(data):
        length, kind, _flags, seq, _pid = HEADER.unpack_from(data, offset)
        if length < HEADER.size:
            break
        if kind == NLMSG_ERROR:
            out.append((seq, -struct.unpack_from("=i", data, offset + HEADER.size)[0]))
        offset += (length + 3) & ~3
    return out


def reap(names: list[str]) -> list[str]:
    """Delete the devices; returns the names the kernel refused (ENODEV counts as done)."""
    refused: list[str] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE) as sock:
        sock.bind((0, 0))
        for start in range(0, len(names), CHUNK):
            chunk = names[start:start + CHUNK]
            sock.send(b"".join(del_link(start + i + 1, name) for i, name in enumerate(chunk)))
            pending = {start + i + 1 for i in range(len(chunk))}
            while pending:
                for seq, error in _acks(sock.recv(1 << 16)):
                    if seq in pending:
                        pending.discard(seq)
                        if error not in GONE:
                            refused.append(names[seq - 1])
    return refused


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: reaper.py LAB NAME...", file=sys.stderr)
        return 2
    return 1 if reap(argv[1:]) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

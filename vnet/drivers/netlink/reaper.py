"""Delete network devices by name in the background, for `vnet destroy`; standard library only.

    python -I -S reaper.py LAB NAME...

Deleting a Linux bridge costs the kernel one RCU grace period (rcu_barrier() in
br_multicast_dev_del, ~16-20 ms on these machines, whoever deletes it and however it is
batched). `vnet destroy` therefore takes the lab's bridges out of the lab first (down, renamed
to a `vd…` name, alias `vnet-reap:<lab>:<old name>`, default group: the lab's names, marks and
device group are free at once) and hands the new names to this process, which deletes them and
exits. A device left behind by a reaper that died is found by its alias and removed by the next
`vnet destroy` of that lab (see vnet/reconcile/destroy.py).

How: CHUNK devices at a time are put into a device group of this process's own (by name, so
only these devices) and deleted with one RTM_DELLINK of that group. Each unregistration batch
costs one more grace period (rcu_barrier() in netdev_run_todo), so one message per device took
twice the time of one group for all (~38 vs ~19 ms per bridge); one group for all would hold
the RTNL lock for seconds and stall every other netlink user (such as the next apply). The group
is checked to be empty first; if it is not, the devices are deleted one message each.

It imports nothing from vnet, so that it starts in a few tens of milliseconds (the vnet package
imports pydantic and the topology code). LAB only labels the process: `vnet destroy --all` and
`vnet status` look for live reapers by their command line.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import sys

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST_ACK = 0x01 | 0x04
NLM_F_DUMP = 0x300
IFLA_IFNAME, IFLA_GROUP = 3, 27
HEADER = struct.Struct("=IHHII")  # nlmsghdr
IFINFOMSG = struct.Struct("=BxHiII")
ATTR = struct.Struct("=HH")
CHUNK = 10  # devices per group delete: ~0.2 s of RTNL at a time for bridges
GONE = frozenset({0, errno.ENODEV})


def _attr(kind: int, data: bytes) -> bytes:
    return ATTR.pack(4 + len(data), kind) + data + b"\0" * (-len(data) % 4)


def _message(kind: int, flags: int, seq: int, attrs: bytes) -> bytes:
    body = IFINFOMSG.pack(0, 0, 0, 0, 0) + attrs
    return HEADER.pack(HEADER.size + len(body), kind, flags, seq, 0) + body


def _name(name: str) -> bytes:
    return _attr(IFLA_IFNAME, name.encode("utf-8", "surrogateescape") + b"\0")


def _messages(data: bytes) -> list[tuple[int, int, bytes]]:
    """(type, seq, payload) of every netlink message in `data`."""
    out, offset = [], 0
    while offset + HEADER.size <= len(data):
        length, kind, _flags, seq, _pid = HEADER.unpack_from(data, offset)
        if length < HEADER.size:
            break
        out.append((kind, seq, data[offset + HEADER.size:offset + length]))
        offset += (length + 3) & ~3
    return out


class Rtnl:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    def transact(self, requests: list[tuple[int, bytes]]) -> list[int]:
        """Send (type, attributes) requests in one sendto; their errnos, in order."""
        first = self.seq + 1
        self.seq += len(requests)
        self.sock.send(b"".join(_message(kind, NLM_F_REQUEST_ACK, first + i, attrs)
                                for i, (kind, attrs) in enumerate(requests)))
        errors: dict[int, int] = {}
        while len(errors) < len(requests):
            for kind, seq, payload in _messages(self.sock.recv(1 << 16)):
                if kind == NLMSG_ERROR and first <= seq <= self.seq:
                    errors[seq] = -struct.unpack_from("=i", payload)[0]
        return [errors[first + i] for i in range(len(requests))]

    def group_in_use(self, group: int) -> bool:
        """Whether any device of this namespace is in `group` (a full link dump)."""
        self.seq += 1
        self.sock.send(HEADER.pack(HEADER.size + IFINFOMSG.size, RTM_GETLINK, 0x01 | NLM_F_DUMP, self.seq, 0)
                       + IFINFOMSG.pack(0, 0, 0, 0, 0))
        found = False
        while True:
            for kind, seq, payload in _messages(self.sock.recv(1 << 16)):
                if seq != self.seq:
                    continue
                if kind in (NLMSG_DONE, NLMSG_ERROR):
                    return found
                found = found or _group(payload) == group

    def close(self) -> None:
        self.sock.close()


def _group(payload: bytes) -> int | None:
    offset = IFINFOMSG.size
    while offset + ATTR.size <= len(payload):
        length, kind = ATTR.unpack_from(payload, offset)
        if length < ATTR.size:
            break
        if kind & 0x3FFF == IFLA_GROUP:
            return int(struct.unpack_from("=I", payload, offset + ATTR.size)[0])
        offset = (offset + length + 3) & ~3
    return None


def reap(names: list[str], group: int | None = None) -> list[str]:
    """Delete the devices; returns the names the kernel refused (ENODEV counts as done)."""
    rtnl = Rtnl()
    group = group if group is not None else 0x57000000 | (os.getpid() & 0xFFFFFF)
    refused: list[str] = []
    try:
        if rtnl.group_in_use(group):  # someone else's devices: never delete by this group
            errors = rtnl.transact([(RTM_DELLINK, _name(name)) for name in names])
            return [name for name, error in zip(names, errors, strict=True) if error not in GONE]
        in_group = _attr(IFLA_GROUP, struct.pack("=I", group))
        for start in range(0, len(names), CHUNK):
            chunk = names[start:start + CHUNK]
            into = [(RTM_NEWLINK, _name(name) + in_group) for name in chunk]
            errors = rtnl.transact([*into, (RTM_DELLINK, in_group)])
            if errors[-1] not in GONE:
                refused += chunk
            else:
                refused += [name for name, error in zip(chunk, errors, strict=False) if error not in GONE]
    finally:
        rtnl.close()
    return refused


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: reaper.py LAB NAME...", file=sys.stderr)
        return 2
    return 1 if reap(argv[1:]) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

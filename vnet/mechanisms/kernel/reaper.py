"""Delete network devices by name in the background, for `vnet destroy`.

    python -I -S reaper.py LAB NAME...

Deleting a Linux bridge costs the kernel one RCU grace period (rcu_barrier() in
br_multicast_dev_del, ~16-20 ms on these machines, whoever deletes it and however it is
batched). Destroy therefore retires the lab's bridges first (teardown.py: down, renamed to a
`vd…` name, alias `vnet-reap:<lab>:<old name>`, default group: the lab's names, marks and device
group are free at once) and hands the new names to this process, which deletes them and exits.

How: CHUNK devices at a time are put into a device group of this process's own (by name, so
only these devices) and deleted with one RTM_DELLINK of that group. Each unregistration batch
costs one more grace period (rcu_barrier() in netdev_run_todo), so one message per device took
twice the time of one group for all (~38 vs ~19 ms per bridge); one group for all would hold
the RTNL lock for seconds and stall every other netlink user (such as the next apply). The group
is checked to be empty first; if it is not, the devices are deleted one message each.

It runs in a bare interpreter (-I -S: no site packages, it starts in a few tens of milliseconds)
and imports only vnet.netlink, the standard-library-only codec, from the tree it lives in. LAB
only labels the process: `vnet destroy --all` and `vnet status` find live reapers by it.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

if __name__ == "__main__":  # a bare interpreter: vnet's own tree, for vnet.netlink
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from vnet.netlink import wire
from vnet.netlink.socket import NetlinkSocket

CHUNK = 10  # devices per group delete: ~0.2 s of RTNL at a time for bridges
GONE = frozenset({0, errno.ENODEV})


def reap(names: list[str], group: int | None = None) -> list[str]:
    """Delete the devices; returns the names the kernel refused (ENODEV counts as done)."""
    group = group if group is not None else 0x57000000 | (os.getpid() & 0xFFFFFF)
    refused: list[str] = []
    with NetlinkSocket() as sock:
        if any(link.group == group for link in sock.links()):  # someone else's: never by group
            acks = sock.transact([wire.del_link(ifname=name) for name in names])
            return [name for name, ack in zip(names, acks, strict=True) if ack.errno not in GONE]
        for start in range(0, len(names), CHUNK):
            chunk = names[start:start + CHUNK]
            acks = sock.transact([*(wire.new_link(ifname=name, group=group) for name in chunk),
                                  wire.del_link_group(group)])
            if acks[-1].errno not in GONE:
                refused += chunk
            else:
                refused += [name for name, ack in zip(chunk, acks, strict=False) if ack.errno not in GONE]
    return refused


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: reaper.py LAB NAME...", file=sys.stderr)
        return 2
    return 1 if reap(argv[1:]) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

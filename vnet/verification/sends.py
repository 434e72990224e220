"""What verify asks of a node kind: send probes from its nodes, run listeners on them.

`Send` is one probe on the wire from a node; `Listening` a listener vnet runs on a target node
for TCP/UDP probes. Each probing node kind (netns, vm) registers a `ProbeKind` in prove.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vnet.topology.lab import Lab
from vnet.verification.engine import Answer


@dataclass(frozen=True)
class Send:
    """One probe from inside `node` to `address` (see engine.Request for the fields)."""

    node: str
    address: str
    proto: str = "icmp"
    port: int = 0
    size: int = 0
    token: str = ""


@dataclass(frozen=True)
class Listening:
    """A listener for `proto` on `port` that vnet runs on `node`, for these IP versions."""

    node: str
    proto: str
    port: int
    versions: tuple[int, ...]


Receipts = Callable[[], set[str]]  # the UDP tokens the listeners got (read once probing is over)


@dataclass(frozen=True)
class ProbeKind:
    """How verify probes from, and listens on, one kind of node."""

    present: Callable[[Lab, str], bool]  # the node runs on this host (its namespace, its QEMU)
    send: Callable[[Lab, Sequence[Send], float], dict[Send, Answer]]
    listen: Callable[[Lab, Sequence[Listening]], contextlib.AbstractContextManager[Receipts]]
    # Its nodes answer independently (a VM each through its agent): sent node by node, so that
    # verify's progress counts each as it answers. False: one call for all (one epoll loop).
    per_node: bool = False

"""`vnet capture`: which device each `node:iface` is, and the loop that captures them into one file.

A netns node's interface is the device of that name in its namespace. A VM's or tap node's is
its TAP on the host, and the other end of a node's veth (`--both`) is its peer: both are what
`vnet status` shows (the `tap` and `peer` facts of the compiled lab's resources, gathered per
interface by vnet/pipeline/inventory.py), so no device name is derived here.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from vnet.capture.pcapng import Writer
from vnet.capture.socket import DeviceGoneError, Packet, PacketSocket
from vnet.errors import InputError, NotOnHostError
from vnet.host import netns
from vnet.marks import netns_name
from vnet.pipeline import inventory
from vnet.pipeline.compile import compile_lab
from vnet.topology.lab import Lab
from vnet.topology.lookup import require_interface, require_node

SNAPLEN = 262144  # as tcpdump's default: whole frames, jumbo and GSO-sized ones included
TICK = 0.1  # s: how soon a stop (Ctrl-C, the duration) is noticed while nothing arrives


@dataclass(frozen=True)
class Target:
    """One device to capture: `origin` the lab's `node:iface`, `namespace` None for the host's.
    `mirrored`: the device is the host's side of the node's interface (a VM's or tap node's
    TAP), whose out is the node's in: directions are flipped so that they are the node's."""

    origin: str
    namespace: str | None
    device: str
    mirrored: bool = False

    @property
    def name(self) -> str:
        """The interface's name in the file (if_name) and in printed lines."""
        where = f"{self.namespace}/{self.device}" if self.namespace else self.device
        return f"{self.origin} ({where})"


@dataclass(frozen=True)
class Summary:
    packets: int
    interfaces: int
    dropped: int  # by the kernel: the socket's buffer was full
    gone: tuple[str, ...] = ()  # interfaces whose device went down or away during the capture
    reader_gone: bool = False  # the output's reader closed it (a pipe): the capture ended there


OnPacket = Callable[[Target, Packet], None]

Facts = Mapping[str, tuple[str, ...]]


def _interface_facts(lab: Lab) -> dict[tuple[str, str], Facts]:
    """What `vnet status` would show of each interface of the compiled lab (its tap, its peer)."""
    kinds = {name: node.kind for name, node in lab.topology.nodes.items()}
    found = inventory.nodes(lab.name, compile_lab(lab).resources, kinds)
    return {(n.name, i.name): dict(i.facts) for n in found for i in n.interfaces}


def _split(lab: Lab, text: str) -> tuple[str, str]:
    node, colon, iface = text.partition(":")
    if not colon:
        require_node(lab, node)
        names = ", ".join(f"{node}:{i.name}" for i in lab.interfaces_of(node))
        raise InputError(f"capture target `{text}` names no interface",
                         f"give NODE:IFACE ({names or 'the node has no interfaces'})")
    require_interface(lab, node, iface)
    return node, iface


def _own(lab: Lab, node: str, iface: str, facts: Facts) -> Target:
    origin = f"{node}:{iface}"
    if lab.topology.nodes[node].kind == "netns":
        return Target(origin, netns_name(lab.name, node), iface)
    if "tap" in facts:
        return Target(origin, None, facts["tap"][0], mirrored=True)
    raise InputError(f"`{origin}` has no device on this host to capture on",
                     "a VF passed through to a guest is the guest's alone")


def _other_end(lab: Lab, node: str, iface: str, facts: Facts) -> Target:
    """`--both`: the veth end at the other side of the node's interface (a bridge or OVS port)."""
    origin = f"{node}:{iface}"
    if "peer" not in facts:
        kind = lab.topology.nodes[node].kind
        why = ("its TAP is the host's end already: the other is in the guest" if kind != "netns"
               else "it is no veth (an OVS internal port, a macvlan, a VF)")
        raise InputError(f"`{origin}` has no other end to capture with --both", why)
    namespace, slash, device = facts["peer"][0].rpartition("/")
    return Target(origin, namespace if slash else None, device)


def resolve(lab: Lab, targets: Sequence[str], both: bool) -> tuple[Target, ...]:
    """The devices of `targets` (`node:iface`), with their other ends when `both`; a name the
    file lacks is an InputError (exit 65), before the host is looked at."""
    facts = _interface_facts(lab)
    found: list[Target] = []
    for text in targets:
        node, iface = _split(lab, text)
        here = facts.get((node, iface), {})
        found.append(_own(lab, node, iface, here))
        if both:
            found.append(_other_end(lab, node, iface, here))
    return tuple(dict.fromkeys(found))  # a target given twice is captured once


def require_on_host(lab: Lab, targets: Sequence[Target]) -> None:
    """Each target's namespace and host device exist (NotOnHostError, exit 69, as `exec` says)."""
    netns.require_root()
    for target in targets:
        missing = None
        if target.namespace is not None and not netns.exists(target.namespace):
            missing = f"namespace {target.namespace}"
        elif target.namespace is None and not _host_device(target.device):
            missing = f"device {target.device}"
        if missing:
            raise NotOnHostError(f"{target.origin} of lab {lab.name} is not on this host (no {missing})",
                                 f"run `vnet apply {lab.file}` first")


def _host_device(name: str) -> bool:
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class Limits:
    """When a capture ends (besides `stopped()`: Ctrl-C): after `count` packets in all, or
    `duration` seconds; None: no such limit."""

    count: int | None = None
    duration: float | None = None


def _open(targets: Sequence[Target], snaplen: int) -> list[PacketSocket]:
    opened: list[PacketSocket] = []
    try:
        for target in targets:
            opened.append(PacketSocket(target.namespace, target.device, snaplen))
    except BaseException:
        for sock in opened:
            sock.close()
        raise
    return opened


@dataclass
class _Counts:
    """What the loop has done so far (kept when a broken pipe ends it in the middle)."""

    packets: int = 0
    gone: list[int] = field(default_factory=list)  # sockets whose device went away


def capture(targets: Sequence[Target], writer: Writer | None, on_packet: OnPacket | None,
            limits: Limits, stopped: Callable[[], bool], snaplen: int = SNAPLEN,
            ready: Callable[[], None] | None = None) -> Summary:
    """Capture `targets` until a limit or `stopped()`; each packet goes to `writer` (one
    interface per target) and `on_packet`. The file is complete however it ends: the
    statistics blocks are written after the loop, whatever stopped it."""
    sockets = _open(targets, snaplen)
    counts, reader_gone = _Counts(), False
    try:
        if writer is not None:
            for target in targets:
                writer.interface(target.name, snaplen)
        started = time.time_ns()
        if ready is not None:
            ready()

        def handle(i: int, packet: Packet) -> None:
            if targets[i].mirrored:
                packet = replace(packet, direction=packet.direction.reversed())
            if writer is not None:
                writer.packet(i, packet.ns, packet.data, packet.length, packet.direction)
            if on_packet is not None:
                on_packet(targets[i], packet)

        try:
            _loop(sockets, handle, limits, stopped, counts)
        except BrokenPipeError:  # `vnet capture … -w - | head -c 1000`: the reader has enough
            reader_gone = True
        stats = [sock.statistics() for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    if writer is not None and not reader_gone:
        ended = time.time_ns()
        for i, counted in enumerate(stats):
            writer.statistics(i, started, ended, counted)
    gone = [i for i, sock in enumerate(sockets) if i in counts.gone or sock.went_down]
    return Summary(counts.packets, len(targets), sum(s.dropped for s in stats),
                   tuple(targets[i].name for i in gone), reader_gone)


def _loop(sockets: Sequence[PacketSocket], handle: Callable[[int, Packet], None], limits: Limits,
          stopped: Callable[[], bool], counts: _Counts) -> None:
    poller = select.poll()
    live = {sock.fileno(): i for i, sock in enumerate(sockets)}
    for fd in live:
        poller.register(fd, select.POLLIN)
    deadline = None if limits.duration is None else time.monotonic() + limits.duration

    def done() -> bool:
        return limits.count is not None and counts.packets >= limits.count

    while live and not stopped() and not done():
        wait = TICK if deadline is None else min(TICK, deadline - time.monotonic())
        if wait <= 0:
            return
        for fd, _events in poller.poll(wait * 1000):
            if fd not in live or done():
                continue
            try:
                packet = sockets[live[fd]].receive()
            except DeviceGoneError:
                counts.gone.append(live.pop(fd))
                poller.unregister(fd)
                continue
            if packet is not None:
                handle(live[fd], packet)
                counts.packets += 1
    if stopped():
        _drain(sockets, list(live.values()), handle, counts, done)


def _drain(sockets: Sequence[PacketSocket], live: Sequence[int], handle: Callable[[int, Packet], None],
           counts: _Counts, done: Callable[[], bool]) -> None:
    """On Ctrl-C: what the kernel had already captured (queued on the sockets) goes into the
    file too, in time order: a capture stopped right after the traffic it was for keeps it."""
    queued: list[tuple[int, int, Packet]] = []
    for i in live:
        with contextlib.suppress(DeviceGoneError):
            while (packet := sockets[i].receive()) is not None:
                queued.append((packet.ns, i, packet))
    for _ns, i, packet in sorted(queued, key=lambda item: (item[0], item[1])):
        if done():
            return
        handle(i, packet)
        counts.packets += 1

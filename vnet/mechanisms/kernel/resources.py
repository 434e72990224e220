"""Kernel objects of a lab: namespaces, Linux bridges, veth pairs, TAPs, addresses, routes, and
devices carrying the lab's mark that the file no longer has (strays)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from vnet.marks import within
from vnet.resources import HOST, NAMESPACES, Fact, Resource, ResourceKey


@dataclass(frozen=True)
class Netns(Resource):
    """A network namespace for a netns node; `forwarding` and `ipv6_forwarding` are its
    net.ipv4.ip_forward and net.ipv6.conf.all.forwarding (a node's `forwarding` sets both)."""

    kind: ClassVar[str] = "netns"
    rank: ClassVar[int] = 0
    MUTABLE: ClassVar[frozenset[str]] = frozenset({"forwarding", "ipv6_forwarding"})
    name: str
    mark: str  # ifalias of its loopback: the namespace's ownership mark
    forwarding: bool = False
    ipv6_forwarding: bool = False

    @property
    def key(self) -> ResourceKey:
        return self.key_of(self.name)

    def occupies(self) -> tuple[tuple[str, str], ...]:
        return ((NAMESPACES, self.name),)

    def origin(self, lab: str) -> str:
        return within(lab, self.mark)

    def facts(self, lab: str) -> tuple[Fact, ...]:
        return (Fact(None, "namespace", self.name),)


@dataclass(frozen=True)
class LinuxBridge(Resource):
    kind: ClassVar[str] = "bridge"
    rank: ClassVar[int] = 10
    MUTABLE: ClassVar[frozenset[str]] = frozenset(
        {"stp", "forward_delay", "ageing_time", "vlan_filtering", "mtu", "alias", "up"})
    name: str
    alias: str
    stp: bool = False
    forward_delay: float | None = None  # seconds; None: kernel default
    ageing_time: int | None = None  # seconds; None: kernel default
    vlan_filtering: bool = False
    mtu: int | None = None
    up: bool = True

    def origin(self, lab: str) -> str:
        return within(lab, self.alias)

    @property
    def key(self) -> ResourceKey:
        return self.key_of(self.name)

    def occupies(self) -> tuple[tuple[str, str], ...]:
        return ((HOST, self.name),)


@dataclass(frozen=True)
class DeviceEnd:
    """One kernel network device: where it lives and the settings vnet gives it."""

    netns: str  # namespace name, HOST for the host's own
    name: str
    alias: str
    mac: str | None = None
    mtu: int | None = None
    master: str | None = None  # Linux bridge (in the same namespace) it is a port of
    up: bool = True
    # False: checksum in software (peers of userspace-OVS ports, see ethtool.py);
    # None: leave the driver's default.
    tx_checksum: bool | None = None
    # VLANs of a port of a VLAN-filtering Linux bridge: (vid, pvid, untagged); None: not managed.
    bridge_vlans: tuple[tuple[int, bool, bool], ...] | None = None
    # Flags of a Linux bridge port (sorted (name, value)): the kernel's defaults, which vnet keeps
    # (a port set `isolated` or `learning off` by hand is drift); None: not a Linux bridge port.
    port_flags: tuple[tuple[str, bool], ...] | None = None

    def deps(self) -> tuple[ResourceKey, ...]:
        out: list[ResourceKey] = []
        if self.netns != HOST:
            out.append(Netns.key_of(self.netns))
        if self.master is not None:
            out.append(LinuxBridge.key_of(self.master))
        return tuple(out)


def _unmastered(keys: tuple[ResourceKey, ...]) -> tuple[ResourceKey, ...]:
    """`keys` without Linux bridges: a port may be deleted after its bridge (the kernel releases
    it), so a destroy deletes a lab's bridges and their ports in one batch."""
    return tuple(key for key in keys if key[0] != LinuxBridge.kind)


@dataclass(frozen=True)
class VethPair(Resource):
    """A veth pair; `a` names it. Ends may live in any namespaces."""

    kind: ClassVar[str] = "veth"
    rank: ClassVar[int] = 30
    MUTABLE: ClassVar[frozenset[str]] = frozenset({"a", "b"})  # within ends: see END_MUTABLE
    a: DeviceEnd
    b: DeviceEnd

    @property
    def key(self) -> ResourceKey:
        return self.key_of(f"{self.a.netns}/{self.a.name}")

    def depends_on(self) -> tuple[ResourceKey, ...]:
        return (*self.a.deps(), *self.b.deps())

    def deleted_after(self) -> tuple[ResourceKey, ...]:
        return _unmastered(self.depends_on())

    def occupies(self) -> tuple[tuple[str, str], ...]:
        return ((self.a.netns, self.a.name), (self.b.netns, self.b.name))

    def differing(self, other: Resource) -> frozenset[str]:
        assert isinstance(other, VethPair)
        changed = set()
        for end in ("a", "b"):
            mine, theirs = getattr(self, end), getattr(other, end)
            if (mine.netns, mine.name) != (theirs.netns, theirs.name):
                changed.add(f"{end}.place")
            changed.update(f"{end}.{f}" for f in END_MUTABLE if getattr(mine, f) != getattr(theirs, f))
        return frozenset(changed)

    def can_update(self, changed: frozenset[str]) -> bool:
        return _ends_only(changed)

    def origin(self, lab: str) -> str:
        return within(lab, self.a.alias) or within(lab, self.b.alias)

    def facts(self, lab: str) -> tuple[Fact, ...]:
        """Of each end that is a node's interface (not a peer, not a switch-to-switch link):
        its MAC, the device at the other end and the switch that one is a port of."""
        out = []
        for end, other in ((self.a, self.b), (self.b, self.a)):
            about = within(lab, end.alias)
            if end.alias.endswith(":peer") or not about or "~" in about:
                continue
            if end.mac:
                out.append(Fact(about, "mac", end.mac))
            peer = other.name if other.netns == HOST else f"{other.netns}/{other.name}"
            out.append(Fact(about, "peer", peer))
            if other.master:
                out.append(Fact(about, "switch", other.master))
        return tuple(out)

    def contained_in(self) -> ResourceKey | None:
        """A pair with an end in a namespace goes when that namespace does."""
        inside = next((e.netns for e in (self.a, self.b) if e.netns != HOST), None)
        return Netns.key_of(inside) if inside is not None else None


def _ends_only(changed: frozenset[str]) -> bool:
    """Settings of a device end change in place; a device in another place is a new device."""
    return all(name.startswith(("a.", "b.", "end.")) and not name.endswith(".place") for name in changed)


END_MUTABLE = ("alias", "mac", "mtu", "master", "up", "tx_checksum", "bridge_vlans", "port_flags")
# A Linux bridge port as the kernel makes it: learning, flooding every kind of frame, not isolated.
PORT_FLAGS = (("bcast_flood", True), ("flood", True), ("isolated", False), ("learning", True),
              ("mcast_flood", True))


@dataclass(frozen=True)
class Tap(Resource):
    """A persistent TAP device in the host namespace, for a VM or an external guest."""

    kind: ClassVar[str] = "tap"
    rank: ClassVar[int] = 40
    MUTABLE: ClassVar[frozenset[str]] = frozenset({"end"})
    end: DeviceEnd
    owner: int | None = None
    group: int | None = None
    multi_queue: bool = False

    @property
    def key(self) -> ResourceKey:
        return self.key_of(self.end.name)

    def depends_on(self) -> tuple[ResourceKey, ...]:
        return self.end.deps()

    def deleted_after(self) -> tuple[ResourceKey, ...]:
        return _unmastered(self.depends_on())

    def occupies(self) -> tuple[tuple[str, str], ...]:
        return ((self.end.netns, self.end.name),)

    def origin(self, lab: str) -> str:
        return within(lab, self.end.alias)

    def facts(self, lab: str) -> tuple[Fact, ...]:
        return (Fact(None, "tap", self.end.name),
                *((Fact(None, "switch", self.end.master),) if self.end.master else ()))

    def differing(self, other: Resource) -> frozenset[str]:
        assert isinstance(other, Tap)
        changed = {f for f in ("owner", "group", "multi_queue") if getattr(self, f) != getattr(other, f)}
        changed.update(f"end.{f}" for f in END_MUTABLE if getattr(self.end, f) != getattr(other.end, f))
        return frozenset(changed)

    def can_update(self, changed: frozenset[str]) -> bool:
        return _ends_only(changed)


@dataclass(frozen=True)
class Address(Resource):
    kind: ClassVar[str] = "address"
    rank: ClassVar[int] = 70
    netns: str
    device: str
    address: str  # CIDR with the host part, e.g. 10.0.0.1/24
    device_key: ResourceKey  # the resource that creates `device`

    @property
    def key(self) -> ResourceKey:
        return self.key_of(f"{self.netns}/{self.device}/{self.address}")

    def depends_on(self) -> tuple[ResourceKey, ...]:
        # Its namespace too: a delete inside a namespace must come before the namespace's delete.
        return (self.device_key, *(() if self.netns == HOST else (Netns.key_of(self.netns),)))

    def contained_in(self) -> ResourceKey | None:
        return Netns.key_of(self.netns) if self.netns != HOST else None

    @property
    def origin_key(self) -> ResourceKey | None:
        return self.device_key

    def facts(self, lab: str) -> tuple[Fact, ...]:
        return (Fact(None, "address", self.address),)


@dataclass(frozen=True)
class Route(Resource):
    kind: ClassVar[str] = "route"
    rank: ClassVar[int] = 80
    # A new metric is a new kernel route (the metric is part of its key): recreate, not replace.
    MUTABLE: ClassVar[frozenset[str]] = frozenset({"via"})
    netns: str
    destination: str  # CIDR; 0.0.0.0/0 or ::/0 for default
    via: str
    metric: int | None = None
    needs: tuple[ResourceKey, ...] = ()  # addresses that make the gateway reachable

    @property
    def key(self) -> ResourceKey:
        return self.key_of(f"{self.netns}/{self.destination}")

    def depends_on(self) -> tuple[ResourceKey, ...]:
        return (Netns.key_of(self.netns), *self.needs)

    def contained_in(self) -> ResourceKey | None:
        return Netns.key_of(self.netns)

    @property
    def origin_key(self) -> ResourceKey | None:
        return Netns.key_of(self.netns)

    def facts(self, lab: str) -> tuple[Fact, ...]:
        return (Fact(None, "route", f"{self.destination} via {self.via}"),)

    def differing(self, other: Resource) -> frozenset[str]:
        assert isinstance(other, Route)
        return frozenset(f for f in ("netns", "destination", "via", "metric")
                         if getattr(self, f) != getattr(other, f))


@dataclass(frozen=True)
class StrayDevice(Resource):
    """A device carrying the lab's mark that the topology no longer wants: only ever deleted."""

    kind: ClassVar[str] = "stray"
    rank: ClassVar[int] = 50
    netns: str
    name: str
    alias: str

    @property
    def key(self) -> ResourceKey:
        return self.key_of(f"{self.netns}/{self.name}")

    def depends_on(self) -> tuple[ResourceKey, ...]:
        return () if self.netns == HOST else (Netns.key_of(self.netns),)

    def occupies(self) -> tuple[tuple[str, str], ...]:
        return ((self.netns, self.name),)

    def contained_in(self) -> ResourceKey | None:
        return Netns.key_of(self.netns) if self.netns != HOST else None

    def origin(self, lab: str) -> str:
        return within(lab, self.alias)

"""Host objects vnet manages, as frozen values: what the compiler wants and what observe finds.

Both sides of a diff use these same types, so comparing desired with observed is `==` on
the fields that matter, and rolling back a delete is creating the observed value again.
Each resource has a key (unique within a lab), the keys it depends on, and says which of
its fields can change in place (`MUTABLE`); any other difference means recreate.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar

ResourceKey = tuple[str, str]  # (kind, identity)
HOST = ""  # the host's own network namespace, as a namespace name


@dataclass(frozen=True)
class Resource:
    kind: ClassVar[str] = ""
    MUTABLE: ClassVar[frozenset[str]] = frozenset()
    RECREATE: ClassVar[str] = "recreate"  # what plan calls a delete + create of this kind

    @property
    def key(self) -> ResourceKey:
        raise NotImplementedError

    def depends_on(self) -> tuple[ResourceKey, ...]:
        return ()

    def occupies(self) -> tuple[tuple[str, str], ...]:
        """(namespace, device name) pairs this resource needs; a clash orders delete before create."""
        return ()

    def differing(self, other: Resource) -> frozenset[str]:
        """Names of the fields whose values differ from `other`."""
        return frozenset(f.name for f in fields(self) if getattr(self, f.name) != getattr(other, f.name))

    def describe(self) -> str:
        return f"{self.kind} {self.key[1]}"


@dataclass(frozen=True)
class Netns(Resource):
    """A network namespace for a netns node; `forwarding` and `ipv6_forwarding` are its
    net.ipv4.ip_forward and net.ipv6.conf.all.forwarding (a node's `forwarding` sets both)."""

    kind: ClassVar[str] = "netns"
    MUTABLE: ClassVar[frozenset[str]] = frozenset({"forwarding", "ipv6_forwarding"})
    name: str
    mark: str  # ifalias of its loopback: the namespace's ownership mark
    forwarding: bool = False
    ipv6_forwarding: bool = False

    @property
    def key(self) -> ResourceKey:
        return ("netns", self.name)


@dataclass(frozen=True)
class LinuxBridge(Resource):
    kind: ClassVar[str] = "bridge"
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

    @property
    def key(self) -> ResourceKey:
        return ("bridge", self.name)

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
    # False: checksum in software (peers of userspace-OVS ports, see drivers/ethtool.py);
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
            out.append(("netns", self.netns))
        if self.master is not None:
            out.append(("bridge", self.master))
        return tuple(out)


@dataclass(frozen=True)
class VethPair(Resource):
    """A veth pair; `a` names it. Ends may live in any namespaces."""

    kind: ClassVar[str] = "veth"
    MUTABLE: ClassVar[frozenset[str]] = frozenset({"a", "b"})  # within ends: see END_MUTABLE
    a: DeviceEnd
    b: DeviceEnd

    @property
    def key(self) -> ResourceKey:
        return ("veth", f"{self.a.netns}/{self.a.name}")

    def depends_on(self) -> tuple[ResourceKey, ...]:
        return (*self.a.deps(), *self.b.deps())

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


END_MUTABLE = ("alias", "mac", "mtu", "master", "up", "tx_checksum", "bridge_vlans", "port_flags")
# A Linux bridge port as the kernel makes it: learning, flooding every kind of frame, not isolated.
PORT_FLAGS = (("bcast_flood", True), ("flood", True), ("isolated", False), ("learning", True),
              ("mcast_flood", True))


@dataclass(frozen=True)
class Tap(Resource):
    """A persistent TAP device in the host namespace, for a VM or an external guest."""

    kind: ClassVar[str] = "tap"
    MUTABLE: ClassVar[frozenset[str]] = frozenset({"end"})
    end: DeviceEnd
    owner: int | None = None
    group: int | None = None
    multi_queue: bool = False

    @property
    def key(self) -> ResourceKey:
        return ("tap", self.end.name)

    def depends_on(self) -> tuple[ResourceKey, ...]:
        return self.end.deps()

    def occupies(self) -> tuple[tuple[str, str], ...]:
        return ((self.end.netns, self.end.name),)

    def differing(self, other: Resource) -> frozenset[str]:
        assert isinstance(other, Tap)
        changed = {f for f in ("owner", "group", "multi_queue") if getattr(self, f) != getattr(other, f)}
        changed.update(f"end.{f}" for f in END_MUTABLE if getattr(self.end, f) != getattr(other.end, f))
        return frozenset(changed)


@dataclass(frozen=True)
class Address(Resource):
    kind: ClassVar[str] = "address"
    netns: str
    device: str
    address: str  # CIDR with the host part, e.g. 10.0.0.1/24
    device_key: ResourceKey  # the resource that creates `device`

    @property
    def key(self) -> ResourceKey:
        return ("address", f"{self.netns}/{self.device}/{self.address}")

    def depends_on(self) -> tuple[ResourceKey, ...]:
        # Its namespace too: a delete inside a namespace must come before the namespace's delete.
        return (self.device_key, *(() if self.netns == HOST else (("netns", self.netns),)))


@dataclass(frozen=True)
class Route(Resource):
    kind: ClassVar[str] = "route"
    # A new metric is a new kernel route (the metric is part of its key): recreate, not replace.
    MUTABLE: ClassVar[frozenset[str]] = frozenset({"via"})
    netns: str
    destination: str  # CIDR; 0.0.0.0/0 or ::/0 for default
    via: str
    metric: int | None = None
    needs: tuple[ResourceKey, ...] = ()  # addresses that make the gateway reachable

    @property
    def key(self) -> ResourceKey:
        return ("route", f"{self.netns}/{self.destination}")

    def depends_on(self) -> tuple[ResourceKey, ...]:
        return (("netns", self.netns), *self.needs)

    def differing(self, other: Resource) -> frozenset[str]:
        assert isinstance(other, Route)
        return frozenset(f for f in ("netns", "destination", "via", "metric")
                         if getattr(self, f) != getattr(other, f))


Pairs = tuple[tuple[str, str], ...]  # a sorted OVSDB string map, hashable


@dataclass(frozen=True)
class OvsBridge(Resource):
    """An Open vSwitch bridge; `datapath` is resolved (system or netdev), never auto."""

    kind: ClassVar[str] = "ovs-bridge"
    MUTABLE: ClassVar[frozenset[str]] = frozenset(
        {"fail_mode", "stp", "rstp", "other_config", "mtu", "flows"})
    name: str
    datapath: str
    fail_mode: str = "standalone"
    stp: bool = False
    rstp: bool = False
    other_config: Pairs = ()
    mtu: int | None = None
    # Its OpenFlow flows (vswitchd's normalized text): vnet puts none there, so a standalone
    # bridge has only `priority=0,actions=NORMAL` and a secure one none. Observed None: unknown
    # (ovs-vswitchd did not answer), never drift.
    flows: tuple[str, ...] | None = None

    @property
    def key(self) -> ResourceKey:
        return ("ovs-bridge", self.name)

    def differing(self, other: Resource) -> frozenset[str]:
        assert isinstance(other, OvsBridge)
        changed = super().differing(other)
        return changed - {"flows"} if self.flows is None or other.flows is None else changed


@dataclass(frozen=True)
class OvsPort(Resource):
    """A port (with its one interface) on an OVS bridge: a kernel device, patch or tunnel."""

    kind: ClassVar[str] = "ovs-port"
    MUTABLE: ClassVar[frozenset[str]] = frozenset(
        {"tag", "trunks", "vlan_mode", "options", "policing_rate", "policing_burst"})
    bridge: str
    name: str
    type: str = ""  # "" (a kernel device), internal, patch, vxlan, geneve
    options: Pairs = ()
    tag: int | None = None
    trunks: tuple[int, ...] = ()
    vlan_mode: str | None = None
    policing_rate: int = 0  # kbit/s, 0 = off
    policing_burst: int = 0  # kbit
    device_key: ResourceKey | None = None  # the kernel device this port carries
    link: int | None = None  # the topology link that makes it (desired side only; for trace)
    # Observed False: an internal port whose device (moved into a namespace) is gone; only
    # recreating the port makes ovs-vswitchd create a new one.
    device_present: bool = True

    @property
    def key(self) -> ResourceKey:
        return ("ovs-port", self.name)

    def depends_on(self) -> tuple[ResourceKey, ...]:
        return (("ovs-bridge", self.bridge),) + ((self.device_key,) if self.device_key else ())

    def differing(self, other: Resource) -> frozenset[str]:
        assert isinstance(other, OvsPort)
        return frozenset(f.name for f in fields(self) if f.name not in ("device_key", "link")
                         and getattr(self, f.name) != getattr(other, f.name))


@dataclass(frozen=True)
class OvsInternal(Resource):
    """`attach: internal`: the device of OVS internal port `port`, moved into a node's namespace
    and renamed to the node's interface (`end`). ovs-vswitchd creates it, named `port`, in the
    host namespace when the port is added; vnet moves and configures it; deleting the port
    deletes it wherever it is. Observed `moved=False`: the device is still (or again, after a
    vswitchd restart) in the host namespace."""

    kind: ClassVar[str] = "ovs-internal"
    MUTABLE: ClassVar[frozenset[str]] = frozenset({"moved", *(f"end.{f}" for f in END_MUTABLE)})
    end: DeviceEnd
    port: str
    moved: bool = True

    @property
    def key(self) -> ResourceKey:
        return ("ovs-internal", f"{self.end.netns}/{self.end.name}")

    def depends_on(self) -> tuple[ResourceKey, ...]:
        return (("ovs-port", self.port), *self.end.deps())

    def occupies(self) -> tuple[tuple[str, str], ...]:
        return ((self.end.netns, self.end.name),)

    def differing(self, other: Resource) -> frozenset[str]:
        assert isinstance(other, OvsInternal)
        changed = {"moved"} if self.moved != other.moved else set()
        changed.update(f"end.{f}" for f in END_MUTABLE if getattr(self.end, f) != getattr(other.end, f))
        return frozenset(changed)


@dataclass(frozen=True)
class StrayDevice(Resource):
    """A device carrying the lab's mark that the topology no longer wants: only ever deleted."""

    kind: ClassVar[str] = "stray"
    netns: str
    name: str
    alias: str

    @property
    def key(self) -> ResourceKey:
        return ("stray", f"{self.netns}/{self.name}")

    def depends_on(self) -> tuple[ResourceKey, ...]:
        return () if self.netns == HOST else (("netns", self.netns),)

    def occupies(self) -> tuple[tuple[str, str], ...]:
        return ((self.netns, self.name),)


@dataclass(frozen=True)
class Vm(Resource):
    """A QEMU guest. Its whole command line is its configuration: any change restarts it.

    `pid` is what observe found (0 on the desired side) and takes no part in the diff."""

    kind: ClassVar[str] = "vm"
    RECREATE: ClassVar[str] = "restart"
    lab: str
    node: str
    argv: tuple[str, ...]
    taps: tuple[ResourceKey, ...] = ()
    ready_wait: bool = True  # apply waits until the guest agent answers (the tiny image)
    seed: tuple[tuple[str, str], ...] = ()  # cloud-init seed files (name, text) for disk images
    # Its QMP (and agent) sockets exist: without them vnet cannot stop it gracefully, probe from
    # it or exec in it (e.g. the run directory was removed by hand), so it is restarted.
    reachable: bool = True
    pid: int = field(default=0, compare=False)

    @property
    def key(self) -> ResourceKey:
        return ("vm", self.node)

    def depends_on(self) -> tuple[ResourceKey, ...]:
        return self.taps

    def differing(self, other: Resource) -> frozenset[str]:
        assert isinstance(other, Vm)
        return frozenset(f for f in ("argv", "reachable") if getattr(self, f) != getattr(other, f))


@dataclass(frozen=True)
class DesiredState:
    """Everything a lab needs on the host, keyed; produced by `compile`."""

    lab: str
    resources: dict[ResourceKey, Resource]


@dataclass(frozen=True)
class ObservedState:
    """What the host has that carries the lab's mark, plus names taken by others."""

    lab: str
    resources: dict[ResourceKey, Resource]
    # (namespace, device name) -> who holds it, for names the lab wants but does not own
    foreign_names: dict[tuple[str, str], str]
    foreign_namespaces: dict[str, str]


# --- SR-IOV (compiled by vnet/compile/sriov.py, applied by vnet/drivers/sriov_driver.py) -------

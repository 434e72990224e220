"""Open vSwitch objects of a lab: bridges, ports (with their one interface), and OVS internal
ports moved into a node's namespace."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

from vnet.marks import within
from vnet.mechanisms.kernel.resources import END_MUTABLE, DeviceEnd
from vnet.resources import HOST, Fact, Resource, ResourceKey

OVS_NAMESPACE = "ovs"  # where OVS bridge and port names live, for `occupies` (collisions, order)


Pairs = tuple[tuple[str, str], ...]  # a sorted OVSDB string map, hashable


@dataclass(frozen=True)
class OvsBridge(Resource):
    """An Open vSwitch bridge; `datapath` is resolved (system or netdev), never auto."""

    kind: ClassVar[str] = "ovs-bridge"
    rank: ClassVar[int] = 20
    transaction: ClassVar[str] = "ovsdb"
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
        return self.key_of(self.name)

    def occupies(self) -> tuple[tuple[str, str], ...]:
        return ((OVS_NAMESPACE, self.name),)

    def origin(self, lab: str) -> str:
        return self.name  # a switch's bridge has the switch's name

    def differing(self, other: Resource) -> frozenset[str]:
        assert isinstance(other, OvsBridge)
        changed = super().differing(other)
        return changed - {"flows"} if self.flows is None or other.flows is None else changed


@dataclass(frozen=True)
class OvsPort(Resource):
    """A port (with its one interface) on an OVS bridge: a kernel device, patch or tunnel."""

    kind: ClassVar[str] = "ovs-port"
    rank: ClassVar[int] = 60
    transaction: ClassVar[str] = "ovsdb"
    binds_device: ClassVar[bool] = True
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
        return self.key_of(self.name)

    def depends_on(self) -> tuple[ResourceKey, ...]:
        return (OvsBridge.key_of(self.bridge),) + ((self.device_key,) if self.device_key else ())

    def occupies(self) -> tuple[tuple[str, str], ...]:
        return ((OVS_NAMESPACE, self.name),)

    @property
    def origin_key(self) -> ResourceKey | None:
        return self.device_key

    @property
    def carries(self) -> tuple[str, str] | None:
        return (HOST, self.name) if not self.type and self.device_key is None else None

    def facts(self, lab: str) -> tuple[Fact, ...]:
        vlan = [Fact(None, "vlan", str(self.tag))] if self.tag is not None else []
        vlan += [Fact(None, "trunk", ",".join(map(str, self.trunks)))] if self.trunks else []
        return (Fact(None, "switch", self.bridge), Fact(None, "ovs port", self.name), *vlan)

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
    rank: ClassVar[int] = 100
    MUTABLE: ClassVar[frozenset[str]] = frozenset({"moved", *(f"end.{f}" for f in END_MUTABLE)})
    end: DeviceEnd
    port: str
    moved: bool = True

    @property
    def key(self) -> ResourceKey:
        return self.key_of(f"{self.end.netns}/{self.end.name}")

    def depends_on(self) -> tuple[ResourceKey, ...]:
        return (OvsPort.key_of(self.port), *self.end.deps())

    def occupies(self) -> tuple[tuple[str, str], ...]:
        return ((self.end.netns, self.end.name),)

    def origin(self, lab: str) -> str:
        return within(lab, self.end.alias)

    def differing(self, other: Resource) -> frozenset[str]:
        assert isinstance(other, OvsInternal)
        changed = {"moved"} if self.moved != other.moved else set()
        changed.update(f"end.{f}" for f in END_MUTABLE if getattr(self.end, f) != getattr(other.end, f))
        return frozenset(changed)

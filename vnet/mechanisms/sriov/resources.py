"""SR-IOV host objects vnet manages (see vnet/mechanisms/sriov/host/): a PF's VF count and eswitch mode,
each VF's settings, and how a VF is attached (netdev in a namespace, vfio-pci for a VM, switchdev
representor on OVS). Same contract as vnet/resources.py: frozen values compared field by field."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar

from vnet.marks import within
from vnet.mechanisms.kernel.resources import Netns
from vnet.resources import HOST, Resource, ResourceKey


@dataclass(frozen=True)
class SriovPf(Resource):
    """An SR-IOV physical function as the lab wants it. Creating it first saves the PF's original
    state (/run/vnet/sriov.d/<lab>/<pf>.json: the file is the lab's ownership of the PF); deleting
    it restores that original (VF drivers, eswitch mode, num_vfs, VF settings)."""

    kind: ClassVar[str] = "sriov-pf"
    MUTABLE: ClassVar[frozenset[str]] = frozenset({"num_vfs", "eswitch"})
    pf: str
    num_vfs: int
    eswitch: str = "legacy"

    @property
    def key(self) -> ResourceKey:
        return self.key_of(self.pf)

    @property
    def generation(self) -> str:
        """Changing either re-creates every VF in the kernel (through num_vfs 0)."""
        return f"{self.num_vfs}/{self.eswitch}"


@dataclass(frozen=True)
class VfResource(Resource):
    """Something about VF `vf` of PF `pf`. `generation` is the PF's num_vfs/eswitch: a change
    there re-creates the VFs, so everything about them is recreated too (not mutable).
    `original` (observed only, not compared) is a netdev's name before vnet renamed it."""

    pf: str
    vf: int
    generation: str
    original: str = field(default="", compare=False, kw_only=True)

    @property
    def ref(self) -> str:
        return f"{self.pf}/vf{self.vf}"

    @property
    def key(self) -> ResourceKey:
        return self.key_of(self.ref)

    def depends_on(self) -> tuple[ResourceKey, ...]:
        return (SriovPf.key_of(self.pf),)

    def differing(self, other: Resource) -> frozenset[str]:
        return frozenset(f.name for f in fields(self) if f.compare
                         and getattr(self, f.name) != getattr(other, f.name))


VF_SETTINGS = ("mac", "vlan", "qos", "min_tx_rate", "max_tx_rate", "spoofchk", "trust", "link_state")


@dataclass(frozen=True)
class SriovVf(VfResource):
    """A VF's settings, set through its PF (None: left as it is). Delete restores the original."""

    kind: ClassVar[str] = "sriov-vf"
    MUTABLE: ClassVar[frozenset[str]] = frozenset(VF_SETTINGS)
    mac: str | None = None
    vlan: int | None = None
    qos: int | None = None
    min_tx_rate: int | None = None  # Mbit/s
    max_tx_rate: int | None = None
    spoofchk: bool | None = None
    trust: bool | None = None
    link_state: str | None = None  # auto | enable | disable


@dataclass(frozen=True)
class SriovNetdev(VfResource):
    """A VF's netdev moved into a netns node's namespace and renamed to the interface; its ifalias
    is `mark:<pf>/vf<n>:<original name>`. Delete moves it back under its original name."""

    kind: ClassVar[str] = "sriov-netdev"
    MUTABLE: ClassVar[frozenset[str]] = frozenset({"mtu", "up"})
    netns: str
    name: str
    mark: str
    mtu: int | None = None
    up: bool = True

    def depends_on(self) -> tuple[ResourceKey, ...]:
        return (SriovPf.key_of(self.pf), SriovVf.key_of(self.ref), Netns.key_of(self.netns))

    def occupies(self) -> tuple[tuple[str, str], ...]:
        return ((self.netns, self.name),)

    def origin(self, lab: str) -> str:
        return within(lab, self.mark)


@dataclass(frozen=True)
class SriovVfio(VfResource):
    """A VF bound to vfio-pci for a VM (IOMMU group checked); delete gives it its driver back."""

    kind: ClassVar[str] = "sriov-vfio"

    def depends_on(self) -> tuple[ResourceKey, ...]:
        return (SriovPf.key_of(self.pf), SriovVf.key_of(self.ref))


@dataclass(frozen=True)
class SriovRep(VfResource):
    """A switchdev VF representor, renamed to `name` (an OVS port's device) with ifalias
    `mark:<original name>`; delete renames it back."""

    kind: ClassVar[str] = "sriov-rep"
    name: str
    mark: str

    def occupies(self) -> tuple[tuple[str, str], ...]:
        return ((HOST, self.name),)

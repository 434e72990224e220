"""What every compiler module shares: naming, ownership marks, the builder, host facts."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TypeVar

from vnet.errors import UnavailableError
from vnet.resources import Resource, ResourceKey
from vnet.topology.lab import Lab, LinkInfo
from vnet.topology.model import DEFAULT_MTU

_K = TypeVar("_K")
_V = TypeVar("_V")


class UnsupportedError(UnavailableError):
    """The topology uses something this version of vnet cannot build yet."""


@dataclass(frozen=True)
class VmFacts:
    """What VM nodes need from the host: QEMU, the accelerator, the tiny image's files."""

    qemu: str = "qemu-system-x86_64"
    kvm: bool = False
    vhost_net: bool = False
    tiny_kernel: str = ""
    tiny_initrd: str = ""


@dataclass(frozen=True)
class VfFacts:
    """One existing VF of a PF, as the host has it."""

    index: int
    address: str  # PCI address
    busy: str | None  # why it is in use (bound to vfio-pci, netdev up, …); None: free
    iommu_group: str | None


@dataclass(frozen=True)
class PfFacts:
    """An SR-IOV PF as the host has it (vnet/reconcile/observe_sriov.py probes it)."""

    name: str
    address: str
    total_vfs: int
    num_vfs: int
    eswitch: str | None  # None: no devlink eswitch support (legacy only)
    iommu_group: str | None  # the PF's: its VFs get groups only when it has one
    owners: tuple[str, ...] = ()  # labs holding a saved original of it (a PF belongs to one lab)
    vfs: tuple[VfFacts, ...] = ()

    def vf(self, index: int) -> VfFacts | None:
        return next((vf for vf in self.vfs if vf.index == index), None)


@dataclass(frozen=True)
class HostFacts:
    """What the compiler needs to know about the host (probed by the caller)."""

    ovs_kernel_datapath: bool = False
    vm: VmFacts | None = None  # probed only for labs with VM nodes
    # Probed only for labs with an `sriov` section; None (compiling offline): nothing is checked.
    sriov: tuple[PfFacts, ...] | None = None
    vfio_pci: bool = True  # the vfio-pci driver is loaded (probed with `sriov`)


def link_mtu(link: LinkInfo) -> int:
    """The MTU of a link's devices: its `mtu`, else the kernel's default for veth and TAP, made
    explicit so that an MTU changed by hand is drift."""
    return link.spec.mtu or DEFAULT_MTU


def netns_name(lab: str, node: str) -> str:
    return f"vnet-{lab}-{node}"


def mark(lab: str, *parts: str) -> str:
    return ":".join(("vnet", lab, *parts))


def host_name(prefix: str, lab: str, *parts: str) -> str:
    digest = hashlib.blake2b("\0".join((lab, *parts)).encode(), digest_size=6).hexdigest()
    return prefix + digest


@dataclass
class Builder:
    lab: Lab
    facts: HostFacts
    resources: dict[ResourceKey, Resource] = field(default_factory=dict)
    # (node, iface) -> (namespace, device name, creating resource) for addresses
    devices: dict[tuple[str, str], tuple[str, str, ResourceKey]] = field(default_factory=dict)

    def add(self, resource: Resource) -> None:
        self.resources[resource.key] = resource

    def where(self, link: LinkInfo) -> str:
        position = self.lab.source.locate(("links", link.index))
        return f"{self.lab.file}:{position.line}"


def dispatch(registry: dict[_K, _V], key: _K, what: str) -> _V:
    handler = registry.get(key)
    if handler is None:
        raise UnsupportedError(f"{what} cannot be built by this version of vnet",
                               "see the README's feature status")
    return handler


def switch_link_id(lab: Lab, link: LinkInfo) -> str:
    """`sw1~sw2#n`: the n-th link (in file order) joining these two switches."""
    return _link_ids(lab)[link.index]


# The ids of one lab, computed once: counting earlier links per call was O(links²) (~5 s at
# 1000 switch links). Keyed by id(lab), keeping the lab itself so the id cannot be reused.
_LINK_IDS: dict[int, tuple[Lab, dict[int, str]]] = {}


def _link_ids(lab: Lab) -> dict[int, str]:
    cached = _LINK_IDS.get(id(lab))
    if cached is not None and cached[0] is lab:
        return cached[1]
    seen: dict[tuple[str, ...], int] = {}
    ids: dict[int, str] = {}
    for link in sorted(lab.links, key=lambda other: other.index):
        names = tuple(sorted(str(e) for e in link.ends))
        ids[link.index] = f"{names[0]}~{names[1]}#{seen.get(names, 0)}"
        seen[names] = seen.get(names, 0) + 1
    if len(_LINK_IDS) >= 8:
        _LINK_IDS.clear()
    _LINK_IDS[id(lab)] = (lab, ids)
    return ids

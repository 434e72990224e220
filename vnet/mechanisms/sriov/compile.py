"""SR-IOV in a lab -> resources (README, "`sriov`").

- The `sriov:` section: a SriovPf per PF (num_vfs, eswitch) and a SriovVf per declared VF.
- A VF given to a netns node: its netdev moves into the node's namespace under the interface's
  name (SriovNetdev; the interface's addresses go on it like on any other device). To a vm
  node: it is bound to vfio-pci (SriovVfio) and the guest gets
  `-device vfio-pci,host=sriov:<pf>/vf<n>` (vnet/mechanisms/qemu/): the PCI address exists only
  once the VF does, so the QEMU driver resolves this symbolic form at start and the observer
  maps the address back.
- A VF joined to an OVS switch (switchdev): its representor is renamed to `vr…` (a name known
  before the VFs exist) and becomes a port of the bridge, which gets other_config hw-offload=true.
- A VF given to a node gets the interface's MAC: the declared `mac`, else the derived one, so
  the guest or namespace sees the MAC the topology's other views (graph, tiny image) expect.

With host facts (SriovFacts, probed only for labs that use SR-IOV), what the host cannot do
is refused here, before anything changes: more VFs than sriov_totalvfs, switchdev without devlink,
a PF another lab owns, a VF in use by the host, a VF for a VM without an IOMMU group. A missing
PF or one without SR-IOV is refused by the probe itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import netaddr

from vnet.errors import UnavailableError
from vnet.marks import host_name, mark, netns_name
from vnet.mechanisms.base import Builder
from vnet.mechanisms.ovs.compile import add_port
from vnet.mechanisms.ovs.resources import OvsBridge
from vnet.mechanisms.sriov.host.errors import NoIommuGroup, PfMissing, SriovUnsupported, TooManyVfs, VfBusy
from vnet.mechanisms.sriov.resources import SriovNetdev, SriovPf, SriovRep, SriovVf, SriovVfio
from vnet.topology.lab import Lab, LinkInfo
from vnet.topology.model import PfSpec, VfSpec
from vnet.topology.names import NodeEnd, SwitchEnd, VfEnd

HW_OFFLOAD = ("hw-offload", "true")


@dataclass(frozen=True)
class VfFacts:
    """One existing VF of a PF, as the host has it."""

    index: int
    address: str  # PCI address
    busy: str | None  # why it is in use (bound to vfio-pci, netdev up, …); None: free
    iommu_group: str | None


@dataclass(frozen=True)
class PfFacts:
    """An SR-IOV PF as the host has it (probed by vnet/mechanisms/sriov/observe.py)."""

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
class SriovFacts:
    """The lab's PFs and whether vfio-pci is loaded (probed for labs with an `sriov` section;
    without them, compiling offline, nothing is checked)."""

    pfs: tuple[PfFacts, ...] = ()
    vfio_pci: bool = True


def vf_ref(vf: VfEnd) -> str:
    return f"{vf.pf}/vf{vf.vf}"


def representor_name(lab: str, vf: VfEnd) -> str:
    return host_name("vr", lab, vf.pf, str(vf.vf))


def node_vfs(lab: Lab, node: str) -> dict[str, VfEnd]:
    """The node's interfaces that are VFs: interface name -> VF."""
    found: dict[str, VfEnd] = {}
    for link in lab.links:
        vf = next((e for e in link.ends if isinstance(e, VfEnd)), None)
        end = next((e for e in link.ends if isinstance(e, NodeEnd)), None)
        if vf is not None and end is not None and end.node == node:
            found[end.iface] = vf
    return found


# --- the sriov section -----------------------------------------------------------------------

def sriov_section(out: Builder) -> None:
    for name, spec in out.lab.topology.sriov.items():
        facts = _facts(out, name)
        if facts is not None:
            _check_pf(out.lab.name, name, spec, facts)
        pf = SriovPf(name, spec.num_vfs, spec.eswitch)
        out.add(pf)
        for index, vf in sorted(spec.vfs.items()):
            out.add(_settings(name, index, pf.generation, vf))


def _settings(pf: str, index: int, generation: str, spec: VfSpec) -> SriovVf:
    mac = str(netaddr.EUI(spec.mac, dialect=netaddr.mac_unix_expanded)) if spec.mac else None
    return SriovVf(pf, index, generation, mac=mac, vlan=spec.vlan, qos=spec.qos,
                   min_tx_rate=spec.min_tx_rate, max_tx_rate=spec.max_tx_rate, spoofchk=spec.spoofchk,
                   trust=spec.trust, link_state=spec.link_state)


def _facts(out: Builder, pf: str) -> PfFacts | None:
    facts = out.facts.get(SriovFacts)
    if facts is None:
        return None
    found = next((f for f in facts.pfs if f.name == pf), None)
    if found is None:
        raise PfMissing(pf, "/sys")
    return found


def _recreates(spec: PfSpec, facts: PfFacts) -> bool:
    """Whether applying re-creates the PF's existing VFs (num_vfs or eswitch mode changes)."""
    return facts.num_vfs > 0 and (spec.num_vfs, spec.eswitch) != (facts.num_vfs, facts.eswitch or "legacy")


def _check_pf(lab: str, name: str, spec: PfSpec, facts: PfFacts) -> None:
    others = [owner for owner in facts.owners if owner != lab]
    if others:
        raise VfBusy(name, f"lab {others[0]} already uses this PF",
                     f"destroy lab {others[0]} first (`vnet destroy --lab {others[0]}`); "
                     "a PF belongs to one lab")
    if spec.num_vfs > facts.total_vfs:
        raise TooManyVfs(name, spec.num_vfs, facts.total_vfs)
    if spec.eswitch == "switchdev" and facts.eswitch is None:
        raise SriovUnsupported(name, "its driver has no devlink eswitch support, which `eswitch: switchdev` "
                               "needs (e.g. mlx5_core, ice)")
    if lab not in facts.owners and _recreates(spec, facts):
        for vf in facts.vfs:
            _free(name, vf.index, facts, f"changing num_vfs of {name} from {facts.num_vfs} to {spec.num_vfs}")


def _free(pf: str, index: int, facts: PfFacts, purpose: str) -> None:
    vf = facts.vf(index)
    if vf is not None and vf.busy is not None:
        raise VfBusy(f"{pf}/vf{index} ({vf.address})", vf.busy,
                     f"release it before {purpose}: stop the VM or move the netdev back and set it down")


def _check_vf(out: Builder, vf: VfEnd, for_vm: bool) -> None:
    facts = _facts(out, vf.pf)
    if facts is None:
        return
    existing = facts.vf(vf.vf)
    if for_vm:
        if (existing.iommu_group if existing else facts.iommu_group) is None:
            raise NoIommuGroup(existing.address if existing else facts.address)
        if not (out.facts.get(SriovFacts) or SriovFacts()).vfio_pci:
            raise UnavailableError("the vfio-pci driver is not loaded: VFs for VMs need it",
                                   "modprobe vfio-pci (CONFIG_VFIO_PCI)")
    spec = out.lab.topology.sriov[vf.pf]
    if out.lab.name not in facts.owners and not _recreates(spec, facts):
        _free(vf.pf, vf.vf, facts, f"giving it to a node of lab {out.lab.name}")


# --- links -----------------------------------------------------------------------------------

def _vf_settings(out: Builder, vf: VfEnd) -> SriovVf:
    found = out.resources.get(("sriov-vf", vf_ref(vf)))
    if isinstance(found, SriovVf):
        return found
    spec = out.lab.topology.sriov[vf.pf]
    return SriovVf(vf.pf, vf.vf, SriovPf(vf.pf, spec.num_vfs, spec.eswitch).generation)


def _to_netns(out: Builder, vf: VfEnd, end: NodeEnd, link: LinkInfo, generation: str) -> None:
    lab = out.lab.name
    namespace = netns_name(lab, end.node)
    netdev = SriovNetdev(vf.pf, vf.vf, generation, netns=namespace, name=end.iface,
                         mark=mark(lab, end.node, end.iface), mtu=link.spec.mtu)
    out.add(netdev)
    out.devices[(end.node, end.iface)] = (namespace, end.iface, netdev.key)


def _to_vm(out: Builder, vf: VfEnd, end: NodeEnd, link: LinkInfo, generation: str) -> None:
    out.add(SriovVfio(vf.pf, vf.vf, generation))  # the Vm's argv and dependency: compile/vm.py


# node kind -> what giving it a VF makes (the checks allow no other kinds)
VF_TO_NODE: dict[str, Callable[[Builder, VfEnd, NodeEnd, LinkInfo, str], None]] = {
    "netns": _to_netns,
    "vm": _to_vm,
}


def vf_to_node(out: Builder, link: LinkInfo) -> None:
    vf = next(e for e in link.ends if isinstance(e, VfEnd))
    end = next(e for e in link.ends if isinstance(e, NodeEnd))
    kind = out.lab.topology.nodes[end.node].kind
    _check_vf(out, vf, kind == "vm")
    settings = replace(_vf_settings(out, vf), mac=out.lab.interfaces[(end.node, end.iface)].mac)
    out.add(settings)
    VF_TO_NODE[kind](out, vf, end, link, settings.generation)


def vf_to_ovs(out: Builder, link: LinkInfo) -> None:
    """The VF's representor as a port of the bridge; the bridge asks for hardware offload."""
    vf = next(e for e in link.ends if isinstance(e, VfEnd))
    switch = next(e for e in link.ends if isinstance(e, SwitchEnd))
    lab = out.lab.name
    rep = SriovRep(vf.pf, vf.vf, _vf_settings(out, vf).generation, name=representor_name(lab, vf),
                   mark=mark(lab, vf_ref(vf), "representor"))
    out.add(rep)
    add_port(out, switch.name, rep.name, link, rep.key)
    bridge = out.resources[OvsBridge.key_of(switch.name)]
    assert isinstance(bridge, OvsBridge)
    if HW_OFFLOAD[0] not in dict(bridge.other_config):
        out.add(replace(bridge, other_config=tuple(sorted((*bridge.other_config, HW_OFFLOAD)))))

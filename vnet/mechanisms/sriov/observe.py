"""observe for SR-IOV: what a lab did to the host's SR-IOV NICs, as resources.

- PFs the lab owns: those with a saved original under /run/vnet/sriov.d/<lab>/ (the file is the
  ownership mark: a PF has no ifalias of its own to spare); their num_vfs and eswitch mode;
- the settings of the VFs the topology configures, as the PF reports them (a MAC changed by hand
  is drift); a setting the driver does not report counts as what is wanted;
- VFs bound to vfio-pci by the lab (the saved original records their drivers before);
- VF netdevs in the lab's namespaces (ifalias `vnet:<lab>:<node>:<iface>:<pf>/vf<n>:<original>`)
  and representors renamed by the lab (ifalias `vnet:<lab>:<pf>/vf<n>:representor:<original>`).
The kernel observer leaves those netdevs to this one (vnet/mechanisms/sriov/__init__.py claims
them); the addresses on them point at them once every mechanism's objects are matched.

`sriov_facts` probes what compile checks a lab against (SriovFacts), before any change.
"""

from __future__ import annotations

from collections.abc import Iterable

from vnet.marks import mark
from vnet.mechanisms.base import Observation
from vnet.mechanisms.sriov.compile import PfFacts, VfFacts
from vnet.mechanisms.sriov.host import pf as pfs
from vnet.mechanisms.sriov.host.errors import SriovError
from vnet.mechanisms.sriov.host.host import PfState, SriovHost
from vnet.mechanisms.sriov.host.links import VfLinks, parse_netdev_alias, parse_rep_alias
from vnet.mechanisms.sriov.host.vfio import VFIO
from vnet.mechanisms.sriov.resources import VF_SETTINGS, SriovNetdev, SriovPf, SriovRep, SriovVf, SriovVfio
from vnet.resources import HOST, DesiredState, ObservedState, Resource, ResourceKey
from vnet.topology.names import VF_REF

Found = dict[ResourceKey, Resource]


def sriov_facts(host: SriovHost, names: Iterable[str]) -> tuple[PfFacts, ...]:
    """The PFs as compile needs them. A missing PF or one without SR-IOV raises (exit 69)."""
    facts = []
    for name in names:
        pf = host.pf(name)
        vfs = tuple(VfFacts(vf.index, vf.address, pfs.vf_usage(host.sysfs, vf), vf.iommu_group)
                    for vf in host.vfs(name))
        facts.append(PfFacts(name, pf.address, pf.total_vfs, pf.num_vfs, host.eswitch(pf),
                             host.sysfs.link_name(f"{pf.device}/iommu_group"),
                             tuple(host.state.labs_with(name)), vfs))
    return tuple(facts)


def vfio_pci_loaded(host: SriovHost) -> bool:
    return host.sysfs.exists(f"bus/pci/drivers/{VFIO}")


def _generation(state: PfState | None) -> str:
    if state is None:
        return ""
    return SriovPf(state.pf.name, state.pf.num_vfs, state.eswitch or "legacy").generation


def _owned(found: Found, lab: str, host: SriovHost, links: VfLinks) -> dict[str, PfState]:
    states: dict[str, PfState] = {}
    for name in host.state.pfs(lab):
        try:
            state = host.observe(name)
        except SriovError:
            continue  # the PF is gone (or no longer SR-IOV): nothing of it to observe
        states[name] = state
        pf = SriovPf(name, state.pf.num_vfs, state.eswitch or "legacy")
        found[pf.key] = pf
        original = host.state.load(lab, name)
        rebound = {address for address, _ in original.drivers} if original else set()
        for vf in state.vfs:
            if vf.driver == VFIO and vf.address in rebound:
                vfio = SriovVfio(name, vf.index, pf.generation)
                found[vfio.key] = vfio
        if state.eswitch == "switchdev":
            _representors(found, lab, host, links, state)
    return states


def _representors(found: Found, lab: str, host: SriovHost, links: VfLinks, state: PfState) -> None:
    devices = links.devices(HOST)
    for vf in state.vfs:
        name = host.representor(state.pf.name, vf.index)
        device = devices.get(name) if name is not None else None
        rep_mark = mark(lab, f"{state.pf.name}/vf{vf.index}", "representor")
        original = parse_rep_alias(rep_mark, device.alias) if device is not None else None
        if name is not None and original is not None:
            rep = SriovRep(state.pf.name, vf.index, _generation(state), name=name, mark=rep_mark,
                           original=original)
            found[rep.key] = rep


def _netdevs(found: Found, lab: str, links: VfLinks, namespaces: Iterable[str],
             states: dict[str, PfState]) -> None:
    for namespace in namespaces:
        for device in links.devices(namespace).values():
            parsed = parse_netdev_alias(lab, device.alias)
            match = VF_REF.match(parsed[1]) if parsed is not None else None
            if parsed is None or match is None:
                continue
            netdev = SriovNetdev(match["pf"], int(match["vf"]), _generation(states.get(match["pf"])),
                                 netns=namespace, name=device.name, mark=parsed[0], mtu=device.mtu,
                                 up=device.up, original=parsed[2])
            found[netdev.key] = netdev


def observe_sriov(lab: str, host: SriovHost, links: VfLinks, namespaces: Iterable[str]) -> Observation:
    """The lab's SR-IOV objects; `namespaces`: the lab's namespaces (VF netdevs may be in them).
    The VF settings are matched with the desired VFs by `match` (raw: the PFs' states)."""
    found: Found = {}
    states = _owned(found, lab, host, links)
    _netdevs(found, lab, links, namespaces, states)
    return Observation(resources=found, raw=states)


def match(desired: DesiredState | None, observed: ObservedState, own: Observation) -> None:
    """The lab's SR-IOV objects, with the settings of the VFs the topology configures as the
    PF reports them (a MAC changed by hand is drift); a setting the driver does not report
    counts as what is wanted."""
    observed.resources.update(own.resources)
    states: dict[str, PfState] = own.raw
    for want in (desired.resources.values() if desired is not None else ()):
        if not isinstance(want, SriovVf):
            continue
        state = states.get(want.pf)
        config = state.config(want.vf) if state is not None else None
        if config is None:
            continue
        values = {name: getattr(config, name) for name in VF_SETTINGS}
        values["mac"] = config.mac.lower()
        for name in ("spoofchk", "trust"):  # None: the driver does not report it
            values[name] = getattr(want, name) if values[name] is None else values[name]
        have = SriovVf(want.pf, want.vf, _generation(state), **values)
        observed.resources[have.key] = have

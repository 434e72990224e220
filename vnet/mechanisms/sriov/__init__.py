"""The SR-IOV mechanism: PFs (num_vfs, eswitch mode), VF settings, VFs bound to vfio-pci for
guests, VF netdevs moved into namespaces and representors renamed for OVS (README, "How vnet
drives SR-IOV").

Everything that touches the NIC goes through one SriovHost (sysfs, VF netlink, devlink, the
clock, the saved originals), made by HOST_FACTORY: tests replace the factory with one whose
sysfs, netlink and devlink are fakes (no SR-IOV hardware here); everything above runs unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from vnet.marks import lab_prefix
from vnet.mechanisms.base import CONTRIBUTIONS, BaseMechanism, Context, Observation
from vnet.mechanisms.kernel.observe import CLAIMS, kernel_host, lab_scan
from vnet.mechanisms.sriov import compile as sriov_compile
from vnet.mechanisms.sriov import observe as sriov_observe
from vnet.mechanisms.sriov.driver import KINDS, SriovDriver
from vnet.mechanisms.sriov.host import SriovHost
from vnet.mechanisms.sriov.host.links import KernelVfLinks
from vnet.mechanisms.sriov.notes import notes
from vnet.netlink.parse import LinkMsg
from vnet.resources import DesiredState, Driver, ObservedState
from vnet.topology.lab import Lab

HOST_FACTORY: Callable[[], SriovHost] = SriovHost

CONTRIBUTIONS.first.append(sriov_compile.sriov_section)
CONTRIBUTIONS.links.update({
    frozenset({"vf", "node"}): sriov_compile.vf_to_node,
    frozenset({"vf", "ovs"}): sriov_compile.vf_to_ovs,  # a switchdev representor (checks: OVS only)
})
_VF_MARK = re.compile(r"[^:]+/vf\d+:representor:|[^:]+:[^:]+:[^:]+/vf\d+:")


def claims_vf_device(lab: str, namespace: str, link: LinkMsg) -> bool:
    """VF netdevs in the lab's namespaces and representors it renamed are SR-IOV's objects."""
    alias = link.alias or ""
    return alias.startswith(lab_prefix(lab)) and bool(_VF_MARK.match(alias, len(lab_prefix(lab))))


CLAIMS.append(claims_vf_device)


def sriov_host(ctx: Context) -> SriovHost:
    return ctx.connection("sriov", HOST_FACTORY)


class SriovMechanism(BaseMechanism):
    name = "sriov"
    kinds = frozenset(KINDS)

    def probe(self, lab: Lab, ctx: Context) -> object | None:
        """The lab's PFs as compile checks them; a missing PF or one without SR-IOV raises here,
        before anything changes."""
        if not lab.topology.sriov:
            return None
        host = sriov_host(ctx)
        return sriov_compile.SriovFacts(sriov_observe.sriov_facts(host, lab.topology.sriov),
                                        sriov_observe.vfio_pci_loaded(host))

    def observe(self, lab: str, ctx: Context) -> Observation:
        found = lab_scan(lab, ctx)
        return sriov_observe.observe_sriov(lab, sriov_host(ctx), KernelVfLinks(kernel_host(ctx)),
                                           found.namespaces)

    def match(self, desired: DesiredState | None, observed: ObservedState, own: Observation) -> None:
        sriov_observe.match(desired, observed, own)

    def driver(self, lab: str, ctx: Context, desired: DesiredState | None) -> Driver:
        return SriovDriver(lab, sriov_host(ctx), KernelVfLinks(kernel_host(ctx)))

    def notes(self, lab: Lab, desired: DesiredState, ctx: Context) -> list[str]:
        return notes(lab, desired)

    def labs(self, ctx: Context) -> set[str]:
        return set(sriov_host(ctx).state.labs())


MECHANISM = SriovMechanism()

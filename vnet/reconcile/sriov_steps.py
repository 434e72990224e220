"""The SR-IOV parts of the verbs (vnet/api.py): host facts for compile, plan notes, destroy.

Destroy order (api.destroy): guests stop first (they hold their VFs through vfio), then the lab's
OVS rows go (representor ports), then `destroy_sriov` gives the VF netdevs back to the host
namespace under their original names, renames representors back, releases VFs from vfio-pci and
restores every PF the lab owns (drivers, eswitch mode, num_vfs, VF settings), and only then are
the lab's namespaces deleted. A problem here does not stop the rest of destroy: it is reported
afterwards, and the saved originals stay so that the next destroy tries again.
"""

from __future__ import annotations

from collections.abc import Callable

from vnet.compile.base import PfFacts
from vnet.compile.sriov import HW_OFFLOAD
from vnet.drivers import netns
from vnet.drivers.sriov import SriovHost
from vnet.drivers.sriov.links import KernelVfLinks
from vnet.drivers.sriov_driver import SriovDriver, teardown
from vnet.errors import UnavailableError
from vnet.reconcile.observe_sriov import observe_sriov, sriov_facts, vfio_pci_loaded
from vnet.reconcile.session import Session
from vnet.resources import DesiredState, OvsBridge, OvsPort, Vm
from vnet.resources_sriov import SriovVfio
from vnet.topology.lab import Lab
from vnet.topology.model import VmNode


def facts(lab: Lab, host: Callable[[], SriovHost]) -> tuple[tuple[PfFacts, ...] | None, bool]:
    """HostFacts.sriov and .vfio_pci; probed only for a lab with an `sriov` section (a missing
    PF or one without SR-IOV raises here, before anything changes)."""
    if not lab.topology.sriov:
        return None, True
    probed = host()
    return sriov_facts(probed, lab.topology.sriov), vfio_pci_loaded(probed)


def notes(lab: Lab, desired: DesiredState) -> list[str]:
    found = []
    resources = desired.resources.values()
    offloaded = sorted({r.bridge for r in resources if isinstance(r, OvsPort)
                        and r.device_key is not None and r.device_key[0] == "sriov-rep"})
    for bridge in offloaded:
        wanted = desired.resources.get(("ovs-bridge", bridge))
        if isinstance(wanted, OvsBridge) and HW_OFFLOAD in wanted.other_config:
            found.append(f"OVS bridge {bridge}: VF representors are its ports and it has other_config "
                         "hw-offload=true; Open vSwitch offloads flows to the NIC only with "
                         "`ovs-vsctl set Open_vSwitch . other_config:hw-offload=true` (host-wide) and after "
                         "ovs-vswitchd restarts: vnet changes neither the host-wide setting nor restarts "
                         "a system ovs-vswitchd (e.g. `systemctl restart openvswitch-switch`)")
    for vm in (r for r in resources if isinstance(r, Vm)):
        vfs = [key[1] for key in vm.taps if key[0] == SriovVfio.kind]
        node = lab.topology.nodes.get(vm.node)
        if vfs and isinstance(node, VmNode) and node.image == "tiny":
            found.append(f"VM {vm.node}: {', '.join(vfs)} passed through with vfio-pci; the tiny image has "
                         "virtio drivers only: use a guest image with the VF's driver (iavf, mlx5_core …)")
    return found


def destroy_sriov(lab: str, session: Session) -> list[str]:
    """Undo the lab's SR-IOV changes; the problems (empty: all undone or nothing to undo)."""
    host = session.sriov()
    if not host.state.pfs(lab):
        return []
    links = KernelVfLinks(session.host)
    session.host.invalidate()
    namespaces = [name for name in netns.names() if name.startswith(f"vnet-{lab}-") and netns.exists(name)]
    found = observe_sriov(lab, None, host, links, namespaces)
    return teardown(lab, SriovDriver(lab, host, links), found)


def raise_problems(lab: str, problems: list[str], host: SriovHost) -> None:
    if problems:
        raise UnavailableError(f"lab {lab}: SR-IOV could not be restored: " + "; ".join(problems),
                               f"fix the cause and run destroy again; the saved originals stay in "
                               f"{host.state.directory / lab} (remove a PF's file by hand if the PF is gone)")

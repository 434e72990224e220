"""Observe a lab's QEMU guests: the running processes whose `-name` carries the lab's mark.

A guest that died is simply absent (drift: apply starts it again); one running with another
command line than the topology now gives differs in `argv` (apply restarts it).

A VF passed through is observed by its PCI address; `normalize` (given when the lab uses SR-IOV)
maps it back to the symbolic `host=sriov:<pf>/vf<n>` of the desired command line, and the guest
depends on the VF's vfio binding as the desired one does.
"""

from __future__ import annotations

from collections.abc import Callable

from vnet.resources import DesiredState, ResourceKey, Vm
from vnet.topology.names import SRIOV_PREFIX
from vnet.vm import qemu

Argv = tuple[str, ...]


def observe_vms(lab: str, desired: DesiredState | None,
                normalize: Callable[[Argv], Argv] | None = None) -> dict[ResourceKey, Vm]:
    found: dict[ResourceKey, Vm] = {}
    for running in qemu.running_vms(lab):
        want = desired.resources.get(("vm", running.node)) if desired is not None else None
        argv = normalize(running.argv) if normalize is not None else running.argv
        taps = (*(("tap", name) for name in qemu.tap_names(argv)),
                *(("sriov-vfio", host.removeprefix(SRIOV_PREFIX)) for host in qemu.vfio_hosts(argv)
                  if host.startswith(SRIOV_PREFIX)))
        ready_wait = want.ready_wait if isinstance(want, Vm) else False
        paths = qemu.vm_paths(lab, running.node)
        reachable = paths.qmp.exists() and (not ready_wait or paths.agent.exists())
        vm = Vm(lab, running.node, argv, taps, ready_wait, reachable=reachable, pid=running.pid)
        found[vm.key] = vm
    return found

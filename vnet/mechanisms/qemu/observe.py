"""Observe a lab's QEMU guests: the running processes whose `-name` carries the lab's mark.

A guest that died is simply absent (drift: apply starts it again); one running with another
command line than the topology now gives differs in `argv` (apply restarts it).

A VF passed through is observed by its PCI address; `normalize` maps it back to the symbolic
`host=sriov:<pf>/vf<n>` of the desired command line, and the guest depends on the VF's vfio
binding as the desired one does.
"""

from __future__ import annotations

from collections.abc import Callable

from vnet.mechanisms.kernel.resources import Tap
from vnet.mechanisms.qemu import process as qemu
from vnet.mechanisms.qemu.resources import Vm
from vnet.mechanisms.sriov.resources import SriovVfio
from vnet.resources import ResourceKey
from vnet.topology.names import SRIOV_PREFIX
from vnet.vm.agent import CHARDEV_ID

Argv = tuple[str, ...]


def observe_vms(lab: str, normalize: Callable[[Argv], Argv]) -> dict[ResourceKey, Vm]:
    found: dict[ResourceKey, Vm] = {}
    for running in qemu.running_vms(lab):
        argv = normalize(running.argv)
        taps = (*(Tap.key_of(name) for name in qemu.tap_names(argv)),
                *(SriovVfio.key_of(host.removeprefix(SRIOV_PREFIX)) for host in qemu.vfio_hosts(argv)
                  if host.startswith(SRIOV_PREFIX)))
        ready_wait = any(arg.startswith(f"socket,id={CHARDEV_ID},") for arg in argv)  # vnet's agent
        paths = qemu.vm_paths(lab, running.node)
        reachable = paths.qmp.exists() and (not ready_wait or paths.agent.exists())
        vm = Vm(lab, running.node, argv, taps, ready_wait, reachable=reachable, pid=running.pid)
        found[vm.key] = vm
    return found

"""Observe a lab's QEMU guests: the running processes whose `-name` carries the lab's mark.

A guest that died is simply absent (drift: apply starts it again); one running with another
command line than the topology now gives differs in `argv` (apply restarts it).
"""

from __future__ import annotations

from vnet.resources import DesiredState, ResourceKey, Vm
from vnet.vm import qemu


def observe_vms(lab: str, desired: DesiredState | None) -> dict[ResourceKey, Vm]:
    found: dict[ResourceKey, Vm] = {}
    for running in qemu.running_vms(lab):
        want = desired.resources.get(("vm", running.node)) if desired is not None else None
        taps = tuple(("tap", name) for name in qemu.tap_names(running.argv))
        ready_wait = want.ready_wait if isinstance(want, Vm) else False
        paths = qemu.vm_paths(lab, running.node)
        reachable = paths.qmp.exists() and (not ready_wait or paths.agent.exists())
        vm = Vm(lab, running.node, running.argv, taps, ready_wait, reachable=reachable, pid=running.pid)
        found[vm.key] = vm
    return found

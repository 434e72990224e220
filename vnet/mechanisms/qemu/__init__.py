"""The QEMU mechanism: a lab's guests, one QEMU process each, on the lab's TAPs (and VFs passed
through with vfio-pci). Its node kind `vm` gets TAP interfaces from the kernel mechanism.

A passed-through VF is named `host=sriov:<pf>/vf<n>` on the desired command line (its PCI
address exists only once the VF does): the driver resolves it just before QEMU starts and the
observer maps a running guest's addresses back, through the SR-IOV mechanism's host.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from vnet.mechanisms.base import CONTRIBUTIONS, BaseMechanism, Context, Observation
from vnet.mechanisms.qemu import compile as vm_compile
from vnet.mechanisms.qemu import process
from vnet.mechanisms.qemu.driver import VmDriver
from vnet.mechanisms.qemu.observe import observe_vms
from vnet.mechanisms.qemu.resources import Vm
from vnet.mechanisms.sriov import sriov_host
from vnet.mechanisms.sriov.host.passthrough import resolve_host, symbolic_host
from vnet.mechanisms.sriov.host.sysfs import Sysfs
from vnet.mechanisms.sriov.resources import SriovVfio
from vnet.resources import DesiredState, Driver
from vnet.topology.images import resolve_image
from vnet.topology.lab import Lab
from vnet.topology.model import VmNode
from vnet.vm import tiny

CONTRIBUTIONS.nodes["vm"] = vm_compile.vm_node  # its interfaces are TAPs (not in VETH_NODES)
Argv = tuple[str, ...]


def _vfio_hosts(ctx: Context, change: Callable[[Sysfs, str], str]) -> Callable[[Argv], Argv]:
    """Map the vfio-pci `host=` values of a QEMU command line (symbolic <-> PCI address)."""
    def mapped(argv: Argv) -> Argv:
        if not process.vfio_hosts(argv):
            return argv
        sysfs = sriov_host(ctx).sysfs
        return process.map_vfio_hosts(argv, lambda host: change(sysfs, host))
    return mapped


class QemuMechanism(BaseMechanism):
    name = "qemu"
    kinds = frozenset({Vm.kind})

    def probe(self, lab: Lab, ctx: Context) -> object | None:
        """QEMU, KVM, where the tiny image is (apply builds it when missing), and the image files
        of the other guests, checked again now (they may have changed since `validate`)."""
        vms = [n for n in lab.topology.nodes.values() if isinstance(n, VmNode)]
        if not vms:
            return None
        image = tiny.locate_tiny() if any(n.image == "tiny" for n in vms) else None
        files = tuple((name, resolve_image(lab, name)) for name, node in sorted(lab.topology.nodes.items())
                      if isinstance(node, VmNode) and node.image != "tiny")
        return vm_compile.VmFacts(process.qemu_binary(), process.kvm_usable(),
                                  os.path.exists("/dev/vhost-net"),
                                  str(image.kernel) if image else "", str(image.initrd) if image else "",
                                  files)

    def observe(self, lab: str, ctx: Context) -> Observation:
        return Observation(resources=dict(observe_vms(lab, _vfio_hosts(ctx, symbolic_host))))

    def driver(self, lab: str, ctx: Context, desired: DesiredState | None) -> Driver:
        return VmDriver(lab, resolve=_vfio_hosts(ctx, resolve_host), progress=ctx.progress,
                        interrupt=ctx.interrupt)

    def notes(self, lab: Lab, desired: DesiredState, ctx: Context) -> list[str]:
        kvm = any(isinstance(r, Vm) and "kvm" in r.argv for r in desired.resources.values())
        notes = []
        for name, node in sorted(lab.topology.nodes.items()):
            if not isinstance(node, VmNode):
                continue
            notes.append(f"VM {name}: {process.choose_accel(node.accel, kvm)[1]}")
            vm = desired.resources.get(Vm.key_of(name))
            vfs = [key[1] for key in vm.taps if key[0] == SriovVfio.kind] if isinstance(vm, Vm) else []
            if vfs and node.image == "tiny":
                notes.append(f"VM {name}: {', '.join(vfs)} passed through with vfio-pci; the tiny image "
                             "has virtio drivers only: use a guest image with the VF's driver "
                             "(iavf, mlx5_core …)")
        return notes

    def labs(self, ctx: Context) -> set[str]:
        return process.labs_with_vms()


MECHANISM = QemuMechanism()

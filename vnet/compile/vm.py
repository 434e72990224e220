"""VM nodes -> Vm resources: the QEMU command line of each guest, on the lab's TAP devices.

The TAPs themselves come with the links (kernel.node_iface); a VM depends on them. What the
guest must configure (NIC names by MAC, addresses, routes, forwarding) travels on the kernel
command line for the tiny image and in a cloud-init seed for disk images.
"""

from __future__ import annotations

from vnet.compile.base import Builder, UnsupportedError, VmFacts
from vnet.compile.kernel import tap_name
from vnet.resources import Vm
from vnet.topology.model import KernelImage, VmNode
from vnet.vm import qemu
from vnet.vm.agent import agent_qemu_args
from vnet.vm.images import resolve_image
from vnet.vm.tiny import GuestConfig, GuestNic, kernel_cmdline


def guest_config(out: Builder, name: str) -> GuestConfig:
    node = out.lab.topology.nodes[name]
    assert isinstance(node, VmNode)
    interfaces = sorted(out.lab.interfaces_of(name), key=lambda i: i.name)
    routes = []
    for route in node.routes:
        v6 = ":" in route.via
        routes.append(("default6" if v6 else "default", route.via) if route.to == "default"
                      else (route.to, route.via))
    return GuestConfig(
        hostname=name,
        nics=tuple(GuestNic(i.mac, i.name, i.mtu) for i in interfaces),
        addresses=tuple((i.name, str(a)) for i in interfaces for a in i.addresses),
        routes=tuple(routes), forwarding=node.forwarding)


def _boot(out: Builder, name: str, facts: VmFacts, config: GuestConfig) -> tuple[tuple[str, ...], bool]:
    """(boot arguments, whether vnet's agent runs in the guest)."""
    node = out.lab.topology.nodes[name]
    assert isinstance(node, VmNode)
    if node.image == "tiny":
        # Without host facts (compiling offline) the tiny image's cache paths are unknown.
        kernel, initrd = facts.tiny_kernel or "<tiny>/vmlinuz", facts.tiny_initrd or "<tiny>/initrd.img"
        return ("-kernel", kernel, "-initrd", initrd, "-append", kernel_cmdline(config)), True
    if isinstance(node.image, KernelImage):
        image = resolve_image(out.lab, name)
        append = " ".join(p for p in (image.append, kernel_cmdline(config)) if p)
        initrd_args = ("-initrd", str(image.initrd)) if image.initrd else ()
        return ("-kernel", str(image.kernel), *initrd_args, "-append", append), False
    raise UnsupportedError(f"node {name}: disk images are not supported yet", "use image: tiny")


def vm_node(out: Builder, name: str) -> None:
    node = out.lab.topology.nodes[name]
    assert isinstance(node, VmNode)
    facts = out.facts.vm or VmFacts()
    lab = out.lab.name
    accel, _ = qemu.choose_accel(node.accel, facts.kvm)
    interfaces = sorted(out.lab.interfaces_of(name), key=lambda i: i.name)
    config = guest_config(out, name)
    boot, agent = _boot(out, name, facts, config)
    paths = qemu.vm_paths(lab, name)
    machine = qemu.Machine(
        lab, name, node.memory, node.vcpus, accel,
        tuple(qemu.Nic(tap_name(lab, name, i.name), i.mac) for i in interfaces),
        boot, tuple(agent_qemu_args(paths.agent)) if agent else (), facts.vhost_net)
    out.add(Vm(lab, name, qemu.qemu_argv(machine, facts.qemu),
               tuple(("tap", tap_name(lab, name, i.name)) for i in interfaces), ready_wait=agent))

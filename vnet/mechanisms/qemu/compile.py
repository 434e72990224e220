"""VM nodes -> Vm resources: the QEMU command line of each guest, on the lab's TAP devices.

The TAPs themselves come with the links (kernel.node_iface); a VM depends on them. What the
guest must configure (NIC names by MAC, addresses, routes, forwarding) travels on the kernel
command line for the tiny image and in a cloud-init seed for disk images.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from vnet.mechanisms.base import Builder
from vnet.mechanisms.kernel.compile import tap_name
from vnet.mechanisms.kernel.resources import Tap
from vnet.mechanisms.ovs.compile import guest_must_checksum, kernel_datapath
from vnet.mechanisms.qemu import process as qemu
from vnet.mechanisms.qemu.resources import Vm
from vnet.mechanisms.sriov.compile import node_vfs, vf_ref
from vnet.mechanisms.sriov.resources import SriovVfio
from vnet.topology.images import ResolvedImage, resolve_image
from vnet.topology.model import VmNode
from vnet.vm.agent import agent_qemu_args
from vnet.vm.cloudinit import instance_id, seed_config, seed_drive_args, seed_files
from vnet.vm.qga import qga_qemu_args
from vnet.vm.tiny import GuestConfig, GuestNic, kernel_cmdline

Seed = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class VmFacts:
    """What VM nodes need from the host: QEMU, the accelerator, where the tiny image's files
    are (apply builds them when missing; compile only names them)."""

    qemu: str = "qemu-system-x86_64"
    kvm: bool = False
    vhost_net: bool = False
    tiny_kernel: str = ""
    tiny_initrd: str = ""
    images: tuple[tuple[str, ResolvedImage], ...] = ()  # (node, its checked image files)


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


def _boot(out: Builder, name: str, facts: VmFacts) -> tuple[tuple[str, ...], Seed]:
    """The boot arguments, and the cloud-init seed files (disk images only)."""
    node = out.lab.topology.nodes[name]
    assert isinstance(node, VmNode)
    config = kernel_cmdline(guest_config(out, name))
    if node.image == "tiny":
        # Without host facts (compiling offline) the tiny image's cache paths are unknown.
        kernel, initrd = facts.tiny_kernel or "<tiny>/vmlinuz", facts.tiny_initrd or "<tiny>/initrd.img"
        return ("-kernel", kernel, "-initrd", initrd, "-append", config), ()
    # The image files as the probe found them; compiling offline (no facts), as they are now.
    image = dict(facts.images).get(name) or resolve_image(out.lab, name)
    if image.kind == "kernel":
        # vnet's guest parameters follow the user's: an init that knows them can use them.
        return tuple(replace(image, append=" ".join(p for p in (image.append, config) if p)).qemu_args()), ()
    seed = seed_files(seed_config(out.lab, name))
    path = qemu.vm_paths(out.lab.name, name).dir / f"seed-{instance_id(seed_config(out.lab, name))}.iso"
    return (*image.qemu_args(), *seed_drive_args(str(path))), tuple(sorted(seed.items()))


def vm_node(out: Builder, name: str) -> None:
    node = out.lab.topology.nodes[name]
    assert isinstance(node, VmNode)
    facts = out.facts.get(VmFacts) or VmFacts()
    lab = out.lab.name
    accel, _ = qemu.choose_accel(node.accel, facts.kvm)
    vfs = node_vfs(out.lab, name)  # interfaces that are SR-IOV VFs: passed through, not TAPs
    interfaces = sorted((i for i in out.lab.interfaces_of(name) if i.name not in vfs), key=lambda i: i.name)
    passthrough = [vf_ref(vfs[iface]) for iface in sorted(vfs)]
    boot, seed = _boot(out, name, facts)
    paths = qemu.vm_paths(lab, name)
    tiny = node.image == "tiny"  # vnet's own agent; other images: qemu-guest-agent
    agent = agent_qemu_args(paths.agent) if tiny else qga_qemu_args(paths.qga)
    machine = qemu.Machine(
        lab, name, node.memory, node.vcpus, accel,
        tuple(qemu.Nic(tap_name(lab, name, i.name), i.mac,
                       not guest_must_checksum(out.lab, name, i.name, kernel_datapath(out)))
              for i in interfaces),
        boot, (*agent, *qemu.vfio_args(passthrough)), facts.vhost_net)
    needs = (*(Tap.key_of(tap_name(lab, name, i.name)) for i in interfaces),
             *(SriovVfio.key_of(ref) for ref in passthrough))
    out.add(Vm(lab, name, qemu.qemu_argv(machine, facts.qemu), needs, ready_wait=tiny, seed=seed))

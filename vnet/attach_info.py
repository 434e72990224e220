"""`vnet attach-info`: how to plug a guest that vnet does not start into a `kind: tap` node's TAPs.

A tap node's guest is started by someone else (libvirt, Proxmox, a script). For each of the
node's interfaces this says which TAP device `vnet apply` creates for it and what to give QEMU
or libvirt so that the guest's NIC sits on that TAP with the interface's MAC address (the one
vnet's graph, expectations and probes assume). The TAP names, owners and queue settings are
read from the compiled desired state (`compile_lab`), so they are exactly what apply creates.

- QEMU: `-netdev tap,ifname=<tap>,script=no,downscript=no` (vnet made the TAP; QEMU must not
  run ifup scripts), `vhost=on` when this host has /dev/vhost-net, and for a multi-queue TAP
  `queues=N` on the netdev with `mq=on,vectors=2N+2` on the virtio-net device (one vector per
  queue per direction, plus config and control). `host_mtu` tells the guest the link's MTU.
- libvirt: `<interface type='ethernet'>` with `<target dev=… managed='no'/>`, so libvirt
  opens the existing TAP instead of creating or deleting one.
- A TAP on a userspace (netdev) OVS bridge: the guest must compute its own checksums
  (`csum=off` on the device, libvirt `<driver><host csum='off'/></driver>`), or its TCP and UDP
  frames cross ovs-vswitchd with partial checksums and are dropped (vnet/mechanisms/ovs/compile.py).

The queue count of a multi-queue TAP is not in the topology (it depends on the guest's vCPUs):
DEFAULT_QUEUES unless the caller gives one.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from vnet.errors import InputError
from vnet.host import features
from vnet.marks import mark
from vnet.mechanisms.kernel.resources import Tap
from vnet.mechanisms.ovs.compile import guest_must_checksum
from vnet.pipeline.compile import compile_lab
from vnet.resources import DesiredState
from vnet.topology.lab import Interface, Lab

DEFAULT_QUEUES = 4
MAX_QUEUES = 256  # the kernel's limit for one TAP device
VHOST_NET = "/dev/vhost-net"


class AttachInfoError(InputError):
    """The node asked about has no TAPs for an outside guest (exit 65, like a bad topology)."""


@dataclass(frozen=True)
class TapAttachment:
    """One interface of a tap node: its TAP device and what a guest needs to use it."""

    iface: str
    tap: str  # host TAP device vnet creates
    mac: str  # the guest NIC's MAC: the interface's, as in vnet's graph
    tap_mac: str | None  # the TAP's own (host-side) MAC; not for the guest
    mtu: int | None
    queues: int  # 1 unless the TAP is multi-queue
    addresses: tuple[str, ...]  # what the guest is expected to configure (vnet does not)
    checksum_offload: bool  # False: the guest must compute its checksums (userspace OVS port)
    qemu_args: tuple[str, ...]
    libvirt_xml: str

    def to_json(self) -> dict[str, Any]:
        return {"iface": self.iface, "tap": self.tap, "mac": self.mac, "tap_mac": self.tap_mac,
                "mtu": self.mtu, "queues": self.queues, "addresses": list(self.addresses),
                "checksum_offload": self.checksum_offload,
                "qemu_args": list(self.qemu_args), "libvirt_xml": self.libvirt_xml}


@dataclass(frozen=True)
class AttachInfo:
    lab: str
    node: str
    owner: int | None  # uid allowed to open the TAPs (None: root only)
    group: int | None
    multi_queue: bool
    vhost: bool
    interfaces: tuple[TapAttachment, ...]

    def to_json(self) -> dict[str, Any]:
        return {"lab": self.lab, "node": self.node, "owner": self.owner, "group": self.group,
                "multi_queue": self.multi_queue, "vhost": self.vhost,
                "interfaces": [i.to_json() for i in self.interfaces]}


def attach_info(lab: Lab, node: str, *, queues: int | None = None, vhost: bool | None = None,
                desired: DesiredState | None = None, kernel_datapath: bool | None = None) -> AttachInfo:
    """What a guest started elsewhere needs for tap node `node`. `vhost`: None probes
    /dev/vhost-net; `queues` applies to multi-queue TAPs only; `desired` defaults to compile_lab;
    `kernel_datapath` (None: probed when an OVS switch has `datapath: auto`) decides where
    `auto` bridges run, and so whether the guest must compute its checksums."""
    _require_tap_node(lab, node)
    if kernel_datapath is None:
        auto = any(getattr(s, "datapath", None) == "auto" for s in lab.topology.switches.values())
        kernel_datapath = auto and features.ovs_kernel_datapath()
    interfaces = sorted(lab.interfaces_of(node), key=lambda i: i.link)
    state = desired if desired is not None else compile_lab(lab)
    taps = {tap.end.alias: tap for tap in state.resources.values() if isinstance(tap, Tap)}
    found = [(iface, taps[mark(lab.name, node, iface.name)]) for iface in interfaces]
    multi_queue = any(tap.multi_queue for _, tap in found)
    if queues is not None and not multi_queue:
        raise AttachInfoError(f"`{node}` does not have multi-queue TAPs: --queues does not apply",
                              "set `multi_queue: true` on the node, or leave out --queues")
    count = (queues or DEFAULT_QUEUES) if multi_queue else 1
    if not 1 <= count <= MAX_QUEUES:
        raise AttachInfoError(f"{count} queues: a TAP has 1 to {MAX_QUEUES}")
    use_vhost = os.path.exists(VHOST_NET) if vhost is None else vhost
    owner, group = (found[0][1].owner, found[0][1].group) if found else (None, None)  # per node
    return AttachInfo(lab.name, node, owner, group, multi_queue, use_vhost,
                      tuple(_attachment(iface, tap, count if tap.multi_queue else 1, use_vhost,
                                        not guest_must_checksum(lab, node, iface.name, kernel_datapath))
                            for iface, tap in found))


def _require_tap_node(lab: Lab, node: str) -> None:
    spec = lab.topology.nodes.get(node)
    if spec is None:  # exec's and trace's message (vnet/topology/lookup.py), the hint fitting here
        taps = sorted(n for n, s in lab.topology.nodes.items() if s.kind == "tap")
        raise AttachInfoError(f"`{node}` is not a node of lab {lab.name}",
                              f"tap nodes: {', '.join(taps)}" if taps else "the lab has no `kind: tap` nodes")
    if spec.kind == "vm":
        raise AttachInfoError(f"`{node}` is a vm node: vnet starts its guest itself (`vnet apply`)",
                              "attach-info is for `kind: tap` nodes, whose guests you start; to run "
                              "this guest yourself, make it `kind: tap`")
    if spec.kind != "tap":
        raise AttachInfoError(f"`{node}` is a {spec.kind} node: it has no TAP devices",
                              "attach-info is for `kind: tap` nodes")


def _attachment(iface: Interface, tap: Tap, queues: int, vhost: bool, offload: bool) -> TapAttachment:
    return TapAttachment(
        iface=iface.name, tap=tap.end.name, mac=iface.mac, tap_mac=tap.end.mac, mtu=iface.mtu,
        queues=queues, addresses=tuple(str(a) for a in iface.addresses), checksum_offload=offload,
        qemu_args=tuple(qemu_args(iface.name, tap.end.name, iface.mac, queues, vhost, iface.mtu, offload)),
        libvirt_xml=libvirt_interface(tap.end.name, iface.mac, queues, iface.mtu, offload))


def qemu_args(iface: str, tap: str, mac: str, queues: int = 1, vhost: bool = False,
              mtu: int | None = None, checksum_offload: bool = True) -> list[str]:
    """`-netdev tap,… -device virtio-net-pci,…` for a NIC on the existing TAP `tap`."""
    ident = f"vnet-{iface}"  # QEMU ids: a letter first, then letters, digits, `-`, `.`, `_`
    netdev = f"tap,id={ident},ifname={tap},script=no,downscript=no"
    device = f"virtio-net-pci,netdev={ident},id={ident}-nic,mac={mac}"
    if not checksum_offload:
        device += ",csum=off"
    if vhost:
        netdev += ",vhost=on"
    if queues > 1:
        netdev += f",queues={queues}"
        device += f",mq=on,vectors={2 * queues + 2}"
    if mtu is not None:
        device += f",host_mtu={mtu}"
    return ["-netdev", netdev, "-device", device]


def libvirt_interface(tap: str, mac: str, queues: int = 1, mtu: int | None = None,
                      checksum_offload: bool = True) -> str:
    """A libvirt `<interface type='ethernet'>` on the existing TAP `tap` (libvirt does not manage it)."""
    root = ET.Element("interface", type="ethernet")
    ET.SubElement(root, "target", dev=tap, managed="no")
    ET.SubElement(root, "mac", address=mac)
    ET.SubElement(root, "model", type="virtio")
    if queues > 1 or not checksum_offload:
        driver = ET.SubElement(root, "driver", name="vhost", queues=str(queues)) if queues > 1 else (
            ET.SubElement(root, "driver"))
        if not checksum_offload:  # virtio-net `csum=off`: the guest computes its checksums
            ET.SubElement(driver, "host", csum="off")
    if mtu is not None:
        ET.SubElement(root, "mtu", size=str(mtu))
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode")


def format_text(info: AttachInfo) -> str:
    """The human-readable report of `vnet attach-info`."""
    who = ", ".join(f"{what} {value}" for what, value in (("uid", info.owner), ("gid", info.group))
                    if value is not None) or "root only"
    lines = [f"lab {info.lab}, node {info.node}: {len(info.interfaces)} TAP(s), openable by {who}"
             + (", multi-queue" if info.multi_queue else "")]
    if not info.interfaces:
        lines.append("  (the node is on no link)")
    for item in info.interfaces:
        addresses = ", ".join(item.addresses) or "none"
        mtu = f", MTU {item.mtu}" if item.mtu is not None else ""
        lines += [f"{item.iface}: TAP {item.tap}, guest MAC {item.mac}{mtu}, addresses {addresses}",
                  "  QEMU:", "    " + " ".join(item.qemu_args), "  libvirt:"]
        lines += ["    " + line for line in item.libvirt_xml.splitlines()]
    lines.append("run `vnet apply` first: it creates the TAPs. The guest configures its addresses itself.")
    return "\n".join(lines)

"""IOMMU: enabled, the kernel command line, interrupt remapping, and each NIC's IOMMU group."""

from __future__ import annotations

import os
import re
from pathlib import Path

from vnet.host.checks.base import HostView, Result, Status, capability, one
from vnet.host.checks.cpu import vendor

# Intel VT-d Extended Capability Register (VT-d spec §11.4.3), as the kernel shows it in hex in
# /sys/class/iommu/dmar*/intel-iommu/ecap: bit 0 C (coherency), bit 1 QI (queued invalidation),
# bit 2 DT (device TLB), bit 3 IR (interrupt remapping), bit 4 EIM (x2APIC extended interrupt
# mode), bit 6 PT (pass through). vnet tests bit 3: without IR, vfio refuses device assignment
# unless vfio_iommu_type1.allow_unsafe_interrupts=1 (a guest could then inject host interrupts).
ECAP_IR = 1 << 3
CMDLINE_HINTS = {"intel": ("intel_iommu=on", "iommu=pt"), "amd": ("amd_iommu=on", "iommu=pt"),
                 "other": ("iommu=pt",)}
IOMMU_OFF = ("intel_iommu=off", "amd_iommu=off", "iommu=off")
IR_OFF = ("intremap=off", "nointremap", "intremap=no_x2apic_optout=off")
PCI_ADDRESS = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")
PCI_BRIDGE_CLASS = "0x0604"
NO_IOMMU = "no IOMMU (/sys/kernel/iommu_groups is empty)"


def iommu_groups(host: HostView) -> list[str]:
    return host.listdir("/sys/kernel/iommu_groups")


def cmdline(host: HostView) -> list[str]:
    return (host.read("/proc/cmdline") or "").split()


def cmdline_fix(host: HostView) -> str:
    hints = " ".join(CMDLINE_HINTS[vendor(host)])
    firmware = {"intel": "VT-d", "amd": "AMD-Vi/IOMMU"}.get(vendor(host), "the IOMMU")
    return (f"enable {firmware} in the firmware and add `{hints}` to GRUB_CMDLINE_LINUX in "
            "/etc/default/grub, run update-grub, reboot")


@capability("iommu")
def iommu(host: HostView) -> list[Result]:
    units, groups = host.listdir("/sys/class/iommu"), iommu_groups(host)
    evidence = (f"/sys/class/iommu: {', '.join(units) or 'empty'}; "
                f"/sys/kernel/iommu_groups: {len(groups)} group(s)")
    if groups:
        return one("iommu", Status.PASS, evidence)
    return one("iommu", Status.WARN, f"{evidence}; VFs and NICs cannot be passed through to VMs "
               "(vfio-pci); VFs for namespaces still work", cmdline_fix(host))


@capability("iommu-cmdline")
def iommu_cmdline(host: HostView) -> list[Result]:
    name, tokens = "iommu-cmdline", cmdline(host)
    wanted = CMDLINE_HINTS[vendor(host)]
    seen = [t if t in tokens else f"no {t}" for t in wanted]
    evidence = f"/proc/cmdline: {', '.join(seen + [t for t in tokens if t in IOMMU_OFF])}"
    if off := [t for t in tokens if t in IOMMU_OFF]:
        return one(name, Status.WARN, f"{evidence}: the IOMMU is switched off",
                   f"remove {' '.join(off)} from the kernel command line; " + cmdline_fix(host))
    missing = [t for t in wanted if t not in tokens]
    if not missing:
        return one(name, Status.PASS, evidence)
    if iommu_groups(host):
        return one(name, Status.PASS, f"{evidence}; the IOMMU is on anyway (kernel default)",
                   "optional: add iommu=pt (host-owned devices skip translation)" if "iommu=pt" in
                   missing else "")
    return one(name, Status.WARN, f"{evidence}; {NO_IOMMU}", cmdline_fix(host))


def _ecap_ir(host: HostView, unit: str) -> tuple[bool | None, str]:
    raw = host.read(f"/sys/class/iommu/{unit}/intel-iommu/ecap")
    try:
        value = int(raw or "", 16)
    except ValueError:
        return None, f"{unit} ecap unreadable"
    return bool(value & ECAP_IR), f"{unit} ecap 0x{value:x} IR(bit 3)={int(bool(value & ECAP_IR))}"


def _kernel_remaps(host: HostView) -> bool | None:
    """/proc/interrupts names its chips `IR-PCI-MSI`, `IR-IO-APIC` when interrupts are remapped;
    None when the file is not there (a snapshot without it)."""
    text = host.read("/proc/interrupts")
    return None if text is None else "IR-" in text


@capability("interrupt-remapping")
def interrupt_remapping(host: HostView) -> list[Result]:
    name = "interrupt-remapping"
    units = host.listdir("/sys/class/iommu")
    if not units and not iommu_groups(host):
        return one(name, Status.NA, NO_IOMMU)
    dmar = [u for u in units if u.startswith("dmar")]
    ivhd = [u for u in units if u.startswith("ivhd")]
    remaps, off = _kernel_remaps(host), [t for t in cmdline(host) if t in IR_OFF]
    kernel = {None: "", True: "; /proc/interrupts: IR- chips", False: "; /proc/interrupts: no IR- chips"}
    unsafe = ("vfio refuses passthrough without interrupt remapping unless "
              "vfio_iommu_type1.allow_unsafe_interrupts=1 (unsafe)")
    if dmar:
        bits = [_ecap_ir(host, unit) for unit in dmar]
        evidence = "; ".join(text for _, text in bits) + kernel[remaps]
        if not all(ok for ok, _ in bits):
            return one(name, Status.WARN, f"{evidence}: the hardware lacks IR", unsafe)
    elif ivhd:
        evidence = f"/sys/class/iommu: {', '.join(ivhd)} (AMD-Vi: remapping is part of the IOMMU)"
        evidence += kernel[remaps]
    else:
        return one(name, Status.WARN, f"/sys/class/iommu: {', '.join(units) or 'empty'}: neither an "
                   "Intel DMAR unit nor an AMD IVHD, cannot tell", unsafe)
    if off or remaps is False:
        where = f"/proc/cmdline: {' '.join(off)}" if off else "the kernel does not use it"
        return one(name, Status.WARN, f"{evidence}; supported, but {where}",
                   "remove intremap=off/nointremap from the kernel command line and reboot")
    return one(name, Status.PASS, evidence)


def pci_device(host: HostView, nic: str) -> str | None:
    """The PCI address a NIC sits on: the nearest PCI ancestor of /sys/class/net/<nic>'s target
    (the netdev's `device`, or the PCI function under it, as for virtio-net); None if virtual."""
    path = Path(os.path.realpath(host.path(f"/sys/class/net/{nic}")))
    while path != path.parent and not PCI_ADDRESS.match(path.name):
        path = path.parent
    return path.name if PCI_ADDRESS.match(path.name) else None


def nic_driver(host: HostView, nic: str, address: str) -> str:
    return (host.link_name(f"/sys/class/net/{nic}/device/driver")
            or host.link_name(f"/sys/bus/pci/devices/{address}/driver") or "no driver")


def pci_nics(host: HostView) -> list[tuple[str, str]]:
    """(netdev, PCI address) for each NIC that sits on a PCI device."""
    found = ((nic, pci_device(host, nic)) for nic in host.listdir("/sys/class/net"))
    return [(nic, address) for nic, address in found if address]


def group_of(host: HostView, address: str) -> tuple[str | None, list[str]]:
    """(IOMMU group, the other devices in it) of a PCI device."""
    group = host.link_name(f"/sys/bus/pci/devices/{address}/iommu_group")
    if group is None:
        return None, []
    members = host.listdir(f"/sys/kernel/iommu_groups/{group}/devices")
    return group, [m for m in members if m != address]


def is_bridge(host: HostView, address: str) -> bool:
    return (host.read(f"/sys/bus/pci/devices/{address}/class") or "").startswith(PCI_BRIDGE_CLASS)


@capability("nic-iommu-group")
def nic_iommu_groups(host: HostView) -> list[Result]:
    nics = pci_nics(host)
    if not nics:
        return one("nic-iommu-group", Status.NA, "/sys/class/net/*/device: no PCI NIC")
    return [_nic_group(host, nic, address) for nic, address in nics]


def _nic_group(host: HostView, nic: str, address: str) -> Result:
    name = f"nic-iommu-group:{nic}"
    what = f"{nic} ({address}, {nic_driver(host, nic, address)})"
    group, others = group_of(host, address)
    if group is None:
        if not iommu_groups(host):
            return Result(name, Status.NA, f"{what}: no iommu_group link; {NO_IOMMU}")
        return Result(name, Status.WARN, f"{what}: no iommu_group link although the IOMMU is on",
                      "the device is outside any IOMMU domain: it cannot be passed through")
    evidence = f"{what}: /sys/kernel/iommu_groups/{group}"
    blocking = [m for m in others if not is_bridge(host, m)]
    bridges = [m for m in others if m not in blocking]
    if not blocking:
        note = f" with PCI bridge(s) {', '.join(bridges)} (fine)" if bridges else ", alone"
        return Result(name, Status.PASS, evidence + note)
    return Result(name, Status.WARN, f"{evidence} shared with {', '.join(blocking)}: passthrough takes "
                  "the whole group (every member must be bound to vfio-pci)",
                  "move the NIC to a slot behind an ACS-capable port, or pass the whole group through; "
                  "SR-IOV VFs usually get groups of their own")

"""PCI passthrough and SR-IOV: SR-IOV capable NICs and the vfio-pci driver."""

from __future__ import annotations

from vnet.host.checks.base import HostView, Result, Status, capability, one
from vnet.host.checks.iommu import nic_driver, pci_nics

MODULE_SUFFIXES = ("", ".xz", ".zst", ".gz")


def kernel_release(host: HostView) -> str | None:
    return host.read("/proc/sys/kernel/osrelease")


def kernel_module(host: HostView, relative: str) -> str | None:
    """Where the running kernel has a module (`kernel/drivers/vfio/pci/vfio-pci.ko`): the file, or
    `builtin` when modules.builtin lists it; None when it has neither."""
    release = kernel_release(host)
    if release is None:
        return None
    base = f"/lib/modules/{release}"
    for suffix in MODULE_SUFFIXES:
        if host.exists(f"{base}/{relative}{suffix}"):
            return f"{base}/{relative}{suffix}"
    builtin = (host.read(f"{base}/modules.builtin") or "").split()
    return "builtin" if relative in builtin else None


@capability("sriov")
def sriov_nics(host: HostView) -> list[Result]:
    results = []
    for nic, address in pci_nics(host):
        device = f"/sys/bus/pci/devices/{address}"
        total = host.read(f"{device}/sriov_totalvfs")
        if total is None:
            continue  # not SR-IOV capable (a VF has no sriov_* files either)
        numvfs = host.read(f"{device}/sriov_numvfs") or "?"
        driver = nic_driver(host, nic, address)
        evidence = f"{nic} ({address}, {driver}): sriov_totalvfs {total}, sriov_numvfs {numvfs}"
        if total.strip() == "0":
            results.append(Result(f"sriov:{nic}", Status.WARN, f"{evidence}: SR-IOV is disabled",
                                  "enable SR-IOV (and VFs per port) in the NIC's firmware/BIOS"))
        else:
            results.append(Result(f"sriov:{nic}", Status.PASS, evidence))
    if results:
        return results
    return one("sriov", Status.NA, "/sys/class/net/*/device/sriov_totalvfs: no NIC has it (no SR-IOV "
               "capable NIC, or a kernel without CONFIG_PCI_IOV)",
               "SR-IOV needs a capable NIC (e.g. Intel X710/E810, NVIDIA ConnectX) with SR-IOV enabled "
               "in the firmware")


@capability("vfio-pci")
def vfio_pci(host: HostView) -> list[Result]:
    name = "vfio-pci"
    if host.exists("/sys/bus/pci/drivers/vfio-pci"):
        return one(name, Status.PASS, "/sys/bus/pci/drivers/vfio-pci: driver loaded")
    release = kernel_release(host) or "?"
    module = kernel_module(host, "kernel/drivers/vfio/pci/vfio-pci.ko")
    if module is not None:
        return one(name, Status.PASS, f"{module}: available, not loaded",
                   "modprobe vfio-pci before passing a device through")
    return one(name, Status.WARN, f"/sys/bus/pci/drivers/vfio-pci: absent; /lib/modules/{release}: no "
               "vfio-pci module: nothing can be passed through to a VM",
               "a kernel with CONFIG_VFIO_PCI (Debian's linux-image-amd64 has it as a module)")

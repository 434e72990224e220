"""SR-IOV errors: each says what is wrong and who must act. All exit 69 (EX_UNAVAILABLE) except a
permission problem (77); no OSError or pyroute2 exception leaves this package."""

from __future__ import annotations

import errno as errno_module
import os

from vnet.errors import NotPermittedError, UnavailableError, VnetError

IOMMU_FIX = ("enable VT-d/AMD-Vi in the firmware and boot with `intel_iommu=on iommu=pt` (Intel) or "
             "`amd_iommu=on iommu=pt` (AMD): add it to GRUB_CMDLINE_LINUX in /etc/default/grub, run "
             "update-grub, reboot; `vnet host check` shows the state")


class SriovError(UnavailableError):
    """Base of the SR-IOV driver's errors (exit 69)."""


class PfMissing(SriovError):
    def __init__(self, pf: str, sysfs: str) -> None:
        super().__init__(f"SR-IOV physical function {pf} does not exist ({sysfs}/class/net/{pf} is missing)",
                         "name the PF by its interface name on this host "
                         "(`ls /sys/class/net/*/device/sriov_totalvfs` lists the candidates)")


class SriovUnsupported(SriovError):
    def __init__(self, pf: str, why: str) -> None:
        super().__init__(f"{pf} cannot do SR-IOV: {why}",
                         "use a NIC with SR-IOV, enabled in its firmware, and a kernel with CONFIG_PCI_IOV; "
                         "`vnet host check` lists the SR-IOV capable NICs")


class TooManyVfs(SriovError):
    def __init__(self, pf: str, wanted: int, total: int) -> None:
        super().__init__(f"{pf} supports at most {total} VFs (sriov_totalvfs), {wanted} requested",
                         f"set num_vfs to {total} or fewer; the firmware may allow more VFs per port")


class VfBusy(SriovError):
    def __init__(self, what: str, why: str, hint: str) -> None:
        super().__init__(f"{what} is in use: {why}", hint)


class NoIommuGroup(SriovError):
    def __init__(self, address: str) -> None:
        super().__init__(f"PCI device {address} has no IOMMU group: it cannot be bound to vfio-pci and "
                         "passed through to a VM", IOMMU_FIX)


class SriovTimeout(SriovError):
    """The kernel did not finish in time (VFs or their netdevs did not appear)."""


class SriovKernelError(SriovError):
    """The kernel refused a sysfs write or a netlink request; `errno` is its error number."""

    def __init__(self, action: str, errno: int, detail: str = "", hint: str = "") -> None:
        text = detail or (os.strerror(errno) if errno else "failed")
        if errno:
            name = "EOPNOTSUPP" if errno == errno_module.EOPNOTSUPP else errno_module.errorcode.get(errno)
            text = f"[{name or errno}] {text}"
        super().__init__(f"{action}: {text}", hint or HINTS.get(errno, ""))
        self.errno = errno


HINTS = {
    errno_module.EOPNOTSUPP: "the PF's driver does not support this setting",
    errno_module.EBUSY: "the device is busy: release the VFs (VMs, namespaces) and retry",
    errno_module.ENODEV: "the device disappeared (driver reset, or the VF was removed)",
}


def kernel_error(action: str, exc: OSError, hint: str = "") -> VnetError:
    """Translate an OSError from sysfs or netlink at the driver boundary."""
    code = exc.errno or 0
    if code in (errno_module.EPERM, errno_module.EACCES):
        return NotPermittedError(f"{action}: {os.strerror(code)}", "run vnet as root")
    return SriovKernelError(action, code, exc.strerror or "", hint)

"""Passing a PCI function (a VF) through to a VM: IOMMU group checks, vfio-pci bind and restore.

Bind: write `vfio-pci` to the device's `driver_override`, unbind it from its current driver,
then ask the PCI core to probe it (`drivers_probe`), which now only matches vfio-pci. Restore:
clear `driver_override`, unbind from vfio-pci and bind the original driver by name.
"""

from __future__ import annotations

from dataclasses import dataclass

from vnet.errors import UnavailableError
from vnet.mechanisms.sriov.host.errors import NoIommuGroup, SriovKernelError, VfBusy
from vnet.mechanisms.sriov.host.sysfs import Sysfs

VFIO = "vfio-pci"
HARMLESS_DRIVERS = frozenset({VFIO, "pci-stub", "pcieport"})  # vfio accepts these in a group
PCI_BRIDGE_CLASS = "0x0604"


@dataclass(frozen=True)
class IommuGroup:
    number: str
    members: tuple[str, ...]  # PCI addresses, this device included


def iommu_group(sysfs: Sysfs, address: str) -> IommuGroup:
    group = sysfs.link_name(f"bus/pci/devices/{address}/iommu_group")
    if group is None:
        raise NoIommuGroup(address)
    return IommuGroup(group, tuple(sysfs.listdir(f"kernel/iommu_groups/{group}/devices")))


def group_blockers(sysfs: Sysfs, group: IommuGroup, address: str) -> list[str]:
    """Other devices in the group that keep it from being assigned: bound to a host driver and
    not a PCI bridge."""
    blockers = []
    for member in group.members:
        device = f"bus/pci/devices/{member}"
        driver = sysfs.link_name(f"{device}/driver")
        bridge = (sysfs.read(f"{device}/class") or "").startswith(PCI_BRIDGE_CLASS)
        if member != address and driver is not None and driver not in HARMLESS_DRIVERS and not bridge:
            blockers.append(f"{member} ({driver})")
    return blockers


def check_assignable(sysfs: Sysfs, address: str) -> IommuGroup:
    """The device's IOMMU group, if the whole group can go to vfio-pci; else a clear error."""
    group = iommu_group(sysfs, address)
    blockers = group_blockers(sysfs, group, address)
    if blockers:
        raise VfBusy(f"IOMMU group {group.number} of {address}", f"it also holds {', '.join(blockers)}",
                     "passthrough takes the whole group: unbind those devices (or bind them to vfio-pci "
                     "too), or use a device in a group of its own")
    if not sysfs.exists(f"bus/pci/drivers/{VFIO}"):
        raise UnavailableError("the vfio-pci driver is not loaded", "modprobe vfio-pci (CONFIG_VFIO_PCI)")
    return group


def driver_of(sysfs: Sysfs, address: str) -> str | None:
    return sysfs.link_name(f"bus/pci/devices/{address}/driver")


def bind_vfio(sysfs: Sysfs, address: str) -> str | None:
    """Bind the device to vfio-pci; return the driver it had (None: unbound). Idempotent."""
    current = driver_of(sysfs, address)
    if current == VFIO:
        return current
    check_assignable(sysfs, address)
    device = f"bus/pci/devices/{address}"
    sysfs.write(f"{device}/driver_override", VFIO)
    if current is not None:
        sysfs.write(f"bus/pci/drivers/{current}/unbind", address)
    sysfs.write("bus/pci/drivers_probe", address)
    _expect(sysfs, address, VFIO, f"binding {address} to {VFIO}")
    return current


def restore_driver(sysfs: Sysfs, address: str, original: str | None) -> None:
    """Give the device back to `original` (None: leave it unbound) and clear driver_override."""
    device = f"bus/pci/devices/{address}"
    if not sysfs.exists(device):
        return  # the VF is gone (num_vfs went to 0): nothing to restore
    current = driver_of(sysfs, address)
    if (sysfs.read(f"{device}/driver_override") or "(null)") != "(null)":
        sysfs.write(f"{device}/driver_override", "\n")  # an empty line clears the override
    if current == original:
        return
    if current is not None:
        sysfs.write(f"bus/pci/drivers/{current}/unbind", address)
    if original is not None:
        sysfs.write(f"bus/pci/drivers/{original}/bind", address)
        _expect(sysfs, address, original, f"binding {address} back to {original}")


def _expect(sysfs: Sysfs, address: str, driver: str, action: str) -> None:
    bound = driver_of(sysfs, address)
    if bound != driver:
        raise SriovKernelError(action, 0, f"the device is bound to {bound or 'no driver'}",
                               "see dmesg; is the driver loaded and does it support this device?")


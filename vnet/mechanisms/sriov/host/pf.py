"""Physical functions and their virtual functions in sysfs: discovery, num_vfs, who uses a VF.

sysfs layout (Documentation/PCI/pci-iov-howto.rst): `class/net/<pf>/device` is the PF's PCI
device, with `sriov_totalvfs`, `sriov_numvfs` and one `virtfnN` link per VF to the VF's PCI
device; a VF has `driver`, `iommu_group` and, bound to a network driver, `net/<netdev>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vnet.errors import VnetError
from vnet.mechanisms.sriov.host.errors import PfMissing, SriovTimeout, SriovUnsupported, TooManyVfs, VfBusy
from vnet.mechanisms.sriov.host.sysfs import Clock, Sysfs, SystemClock

VF_WAIT = 10.0  # seconds for the VFs (and their netdevs) to appear after num_vfs is written
POLL = 0.1
DRIVER_GRACE = 2.0  # seconds an unbound new VF may wait for udev to load and bind its driver
IFF_UP = 0x1
NO_NETDEV_DRIVERS = frozenset({"vfio-pci", "pci-stub"})  # bound VFs that have no netdev
# phys_port_name of a VF representor (devlink port flavour pci_vf): pf<N>vf<M>, c<C>pf<N>vf<M>
REPRESENTOR_PORT = re.compile(r"^(?:c\d+)?pf\d+vf(\d+)$")


@dataclass(frozen=True)
class Pf:
    name: str  # the PF's netdev
    address: str  # PCI address, e.g. 0000:03:00.0
    driver: str | None
    total_vfs: int
    num_vfs: int

    @property
    def device(self) -> str:
        return f"bus/pci/devices/{self.address}"


@dataclass(frozen=True)
class Vf:
    pf: str
    index: int
    address: str
    driver: str | None
    netdev: str | None  # None when unbound, bound to vfio-pci, or moved to another namespace
    iommu_group: str | None

    @property
    def device(self) -> str:
        return f"bus/pci/devices/{self.address}"

    def __str__(self) -> str:
        return f"{self.pf}/vf{self.index} ({self.address})"


def find_pf(sysfs: Sysfs, name: str) -> Pf:
    """The PF behind netdev `name`; PfMissing or SriovUnsupported with the reason."""
    net = f"class/net/{name}"
    if not sysfs.exists(net):
        raise PfMissing(name, str(sysfs.root))
    address = sysfs.link_name(f"{net}/device")
    if address is None:
        raise SriovUnsupported(name, "it is a virtual interface (no PCI device)")
    if sysfs.exists(f"{net}/device/physfn"):
        raise SriovUnsupported(name, f"it is itself a VF of {sysfs.link_name(f'{net}/device/physfn')}")
    total = sysfs.read_int(f"{net}/device/sriov_totalvfs")
    if total is None:
        raise SriovUnsupported(name, f"{address} has no sriov_totalvfs (no SR-IOV capability, or a "
                               "kernel without CONFIG_PCI_IOV)")
    if total == 0:
        raise SriovUnsupported(name, "sriov_totalvfs is 0 (SR-IOV is disabled in the NIC's firmware)")
    numvfs = sysfs.read_int(f"{net}/device/sriov_numvfs") or 0
    return Pf(name, address, sysfs.link_name(f"{net}/device/driver"), total, numvfs)


def vf_at(sysfs: Sysfs, pf: str, index: int, address: str) -> Vf:
    device = f"bus/pci/devices/{address}"
    netdevs = sysfs.listdir(f"{device}/net")
    return Vf(pf, index, address, sysfs.link_name(f"{device}/driver"), netdevs[0] if netdevs else None,
              sysfs.link_name(f"{device}/iommu_group"))


def list_vfs(sysfs: Sysfs, pf: Pf) -> tuple[Vf, ...]:
    """The PF's VFs in index order, from its `virtfnN` links."""
    found = []
    for entry in sysfs.listdir(pf.device):
        if entry.startswith("virtfn") and entry[6:].isdigit():
            address = sysfs.link_name(f"{pf.device}/{entry}")
            if address is not None:
                found.append(vf_at(sysfs, pf.name, int(entry[6:]), address))
    return tuple(sorted(found, key=lambda vf: vf.index))


def _attribute(sysfs: Sysfs, relative: str) -> str | None:
    """A netdev attribute that may not be supported (reading it answers EOPNOTSUPP)."""
    try:
        return sysfs.read(relative)
    except VnetError:
        return None


def representor(sysfs: Sysfs, pf: Pf, index: int) -> str | None:
    """The switchdev representor netdev of VF `index`: the netdev on the PF's switch
    (same phys_switch_id) whose phys_port_name is pf<N>vf<index>; None if there is none."""
    switch = _attribute(sysfs, f"class/net/{pf.name}/phys_switch_id")
    if not switch:
        return None
    for netdev in sysfs.listdir("class/net"):
        match = REPRESENTOR_PORT.match(_attribute(sysfs, f"class/net/{netdev}/phys_port_name") or "")
        if match and int(match[1]) == index and \
                _attribute(sysfs, f"class/net/{netdev}/phys_switch_id") == switch:
            return netdev
    return None


def vf_usage(sysfs: Sysfs, vf: Vf) -> str | None:
    """Why the VF is in use (so removing or rebinding it would break something), or None."""
    if vf.driver == "vfio-pci":
        return "bound to vfio-pci (passed through to a VM, or ready for one)"
    if vf.driver is not None and vf.driver not in NO_NETDEV_DRIVERS and vf.netdev is None:
        return f"bound to {vf.driver} but its netdev is not in this network namespace (moved into another)"
    if vf.netdev is None:
        return None
    if sysfs.exists(f"class/net/{vf.netdev}/master"):
        return f"its netdev {vf.netdev} is enslaved to {sysfs.link_name(f'class/net/{vf.netdev}/master')}"
    flags = sysfs.read(f"class/net/{vf.netdev}/flags")
    if flags and int(flags, 16) & IFF_UP:
        return f"its netdev {vf.netdev} is up"
    return None


def ensure_free(sysfs: Sysfs, vf: Vf, purpose: str) -> None:
    why = vf_usage(sysfs, vf)
    if why is not None:
        raise VfBusy(str(vf), why, f"release it before {purpose}: stop the VM or move the netdev back and "
                     "set it down (`vnet destroy` does this for the labs that own it)")


def set_num_vfs(sysfs: Sysfs, name: str, wanted: int, clock: Clock | None = None,
                timeout: float = VF_WAIT) -> tuple[Vf, ...]:
    """Make the PF have `wanted` VFs and return them. The kernel refuses a nonzero to nonzero
    change (EBUSY), so that goes through 0; every VF removed must be free. Waits (bounded) for
    the new VFs and, where a network driver binds them, their netdevs."""
    pf = find_pf(sysfs, name)
    if wanted > pf.total_vfs:
        raise TooManyVfs(name, wanted, pf.total_vfs)
    if wanted == pf.num_vfs:
        return list_vfs(sysfs, pf)
    for vf in list_vfs(sysfs, pf):
        ensure_free(sysfs, vf, f"changing num_vfs of {name} from {pf.num_vfs} to {wanted}")
    if pf.num_vfs:
        sysfs.write(f"{pf.device}/sriov_numvfs", "0")
    if not wanted:
        return ()
    sysfs.write(f"{pf.device}/sriov_numvfs", str(wanted))
    return wait_for_vfs(sysfs, pf, wanted, clock or SystemClock(), timeout)


def _not_ready(sysfs: Sysfs, pf: Pf, wanted: int, grace_over: bool) -> tuple[tuple[Vf, ...], list[str]]:
    """The VFs, and what is still missing: VFs, netdevs of VFs a network driver holds, and
    (during the grace period only) a driver for unbound VFs: udev may still be loading it."""
    vfs = list_vfs(sysfs, pf)
    present = {vf.index for vf in vfs}
    waiting = [f"vf{i}" for i in range(wanted) if i not in present]
    if sysfs.read(f"{pf.device}/sriov_drivers_autoprobe") == "0":
        return vfs, waiting  # nothing will bind them
    for vf in vfs:
        if vf.driver is None and not grace_over:
            waiting.append(f"vf{vf.index} driver")
        elif vf.driver is not None and vf.driver not in NO_NETDEV_DRIVERS and vf.netdev is None:
            waiting.append(f"vf{vf.index} netdev")
    return vfs, waiting


def wait_for_vfs(sysfs: Sysfs, pf: Pf, wanted: int, clock: Clock, timeout: float) -> tuple[Vf, ...]:
    """Poll until the VFs are ready (see _not_ready), at most `timeout` seconds. VFs that no
    driver claims within DRIVER_GRACE are accepted unbound (e.g. the VF driver is blacklisted
    so they can go to vfio-pci)."""
    start = clock.monotonic()
    while True:
        vfs, waiting = _not_ready(sysfs, pf, wanted, clock.monotonic() - start >= DRIVER_GRACE)
        if not waiting:
            return vfs
        if clock.monotonic() - start >= timeout:
            raise SriovTimeout(
                f"{pf.name}: {wanted} VFs requested, still waiting after {timeout:g} s for "
                f"{', '.join(waiting[:4])}" + (" …" if len(waiting) > 4 else ""),
                "the VF driver (iavf, ixgbevf, mlx5_core …) must be able to bring the VFs up; see dmesg")
        clock.sleep(POLL)

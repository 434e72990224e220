"""A VF's PCI address from its name (`<pf>/vf<n>`) and back, for QEMU's `-device vfio-pci,host=`.

The desired command line of a VM names a VF symbolically (`host=sriov:<pf>/vf<n>`): the address
exists only once the VF does. `resolve_host` turns it into the address when QEMU starts;
`symbolic_host` maps an address read back from /proc/<pid>/cmdline to the name again (the VF's
`physfn` link gives the PF, the PF's `virtfnN` links the index), so an unchanged VM compares
equal to the topology and re-planning changes nothing.
"""

from __future__ import annotations

from vnet.mechanisms.sriov.host.errors import SriovError
from vnet.mechanisms.sriov.host.sysfs import Sysfs
from vnet.topology.names import SRIOV_PREFIX, VF_REF


def address_of(sysfs: Sysfs, ref: str) -> str:
    """The PCI address of VF `<pf>/vf<n>`; SriovError when the VF does not exist."""
    match = VF_REF.match(ref)
    if match is None:
        raise SriovError(f"`{ref}` is not a VF reference", "write <pf>/vf<n>")
    address = sysfs.link_name(f"class/net/{match['pf']}/device/virtfn{int(match['vf'])}")
    if address is None:
        raise SriovError(f"VF {ref} does not exist (no virtfn{int(match['vf'])} link on {match['pf']})",
                         f"apply the lab again: it creates the VFs of {match['pf']} first")
    return address


def ref_of(sysfs: Sysfs, address: str) -> str | None:
    """`<pf>/vf<n>` of the VF at a PCI address; None when it is not a VF with a PF netdev here."""
    device = f"bus/pci/devices/{address}"
    pf_address = sysfs.link_name(f"{device}/physfn")
    if pf_address is None:
        return None
    pf_device = f"bus/pci/devices/{pf_address}"
    netdevs = sysfs.listdir(f"{pf_device}/net")
    for entry in sysfs.listdir(pf_device):
        if entry.startswith("virtfn") and entry[6:].isdigit() and netdevs and \
                sysfs.link_name(f"{pf_device}/{entry}") == address:
            return f"{netdevs[0]}/vf{int(entry[6:])}"
    return None


def resolve_host(sysfs: Sysfs, host: str) -> str:
    """`sriov:<pf>/vf<n>` -> the VF's PCI address; any other value is returned as it is."""
    return address_of(sysfs, host.removeprefix(SRIOV_PREFIX)) if host.startswith(SRIOV_PREFIX) else host


def symbolic_host(sysfs: Sysfs, host: str) -> str:
    """A VF's PCI address -> `sriov:<pf>/vf<n>`; anything else is returned as it is."""
    ref = ref_of(sysfs, host) if not host.startswith(SRIOV_PREFIX) else None
    return f"{SRIOV_PREFIX}{ref}" if ref is not None else host

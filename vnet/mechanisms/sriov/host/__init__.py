"""SR-IOV: physical and virtual functions through sysfs, VF settings through rtnetlink, the
eswitch mode through devlink, vfio-pci passthrough, and the saved original state of each PF.

Entry point: `SriovHost` (vnet/mechanisms/sriov/host/host.py). Everything that touches the host is
injected (Sysfs root, VfNetlink, Devlink, Clock, StateStore), so tests run the same code paths
against fakes. Every failure is a vnet error (exit 69, or 77 for permissions).
"""

from vnet.mechanisms.sriov.host.errors import (
           NoIommuGroup,
           PfMissing,
           SriovError,
           SriovKernelError,
           SriovTimeout,
           SriovUnsupported,
           TooManyVfs,
           VfBusy,
)
from vnet.mechanisms.sriov.host.host import PfState, SriovHost
from vnet.mechanisms.sriov.host.netlink import VfConfig, VfRequest
from vnet.mechanisms.sriov.host.pf import Pf, Vf
from vnet.mechanisms.sriov.host.settings import ORDER, VfSettings
from vnet.mechanisms.sriov.host.state import PfOriginal, StateStore
from vnet.mechanisms.sriov.host.sysfs import Sysfs

__all__ = ["ORDER", "NoIommuGroup", "Pf", "PfMissing", "PfOriginal", "PfState", "SriovError",
           "SriovHost", "SriovKernelError", "SriovTimeout", "SriovUnsupported", "StateStore", "Sysfs",
           "TooManyVfs", "Vf", "VfBusy", "VfConfig", "VfRequest", "VfSettings"]

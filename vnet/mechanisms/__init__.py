"""The mechanisms, in layer order: each may build on those before it (kernel is the base).

Adding one is a package under vnet/mechanisms/ and a line here (docs/architecture.md).
"""

from __future__ import annotations

from vnet.mechanisms import kernel, macvlan, ovs, qemu, sriov
from vnet.mechanisms.base import Mechanism

MECHANISMS: tuple[Mechanism, ...] = (
    kernel.MECHANISM,
    macvlan.MECHANISM,
    ovs.MECHANISM,
    sriov.MECHANISM,
    qemu.MECHANISM,
)

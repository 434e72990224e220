"""The kernel mechanism: network namespaces, Linux bridges, veth pairs, TAPs, addresses, routes.

Everything else builds on it: its scan of the host is what other mechanisms observe their
devices from, and its driver executes the kernel side of their objects (handlers registered in
vnet/mechanisms/kernel/driver.py HANDLERS).
"""

from __future__ import annotations

import grp
import pwd

from vnet.errors import UnavailableError
from vnet.host import features
from vnet.mechanisms.base import CONTRIBUTIONS, BaseMechanism, Context, Observation
from vnet.mechanisms.kernel import compile as kernel_compile
from vnet.mechanisms.kernel import observe as kernel_observe
from vnet.mechanisms.kernel import tap
from vnet.mechanisms.kernel.driver import HANDLERS, KernelDriver
from vnet.mechanisms.kernel.resources import LinuxBridge, Tap
from vnet.mechanisms.kernel.teardown import labs_on_host
from vnet.resources import DesiredState, Driver, ObservedState
from vnet.topology.lab import Lab
from vnet.topology.model import TapNode

CONTRIBUTIONS.nodes.update({"netns": kernel_compile.netns_node, "tap": kernel_compile.tap_based_node})
CONTRIBUTIONS.switches["linux"] = kernel_compile.linux_switch
CONTRIBUTIONS.links.update({
    frozenset({"node"}): kernel_compile.node_to_node,
    frozenset({"node", "linux"}): kernel_compile.node_to_linux,
    frozenset({"linux"}): kernel_compile.linux_to_linux,
})
CONTRIBUTIONS.last.append(kernel_compile.addresses_and_routes)


def _ids(lab: Lab) -> dict[tuple[str, str], int]:
    """The numeric ids of the users and groups the lab's tap nodes name."""
    found: dict[tuple[str, str], int] = {}
    for node in lab.topology.nodes.values():
        if not isinstance(node, TapNode):
            continue
        for what, value in (("user", node.owner), ("group", node.group)):
            if not isinstance(value, str):
                continue
            try:
                found[(what, value)] = (pwd.getpwnam(value).pw_uid if what == "user"
                                        else grp.getgrnam(value).gr_gid)
            except KeyError:
                raise UnavailableError(f"{what} `{value}` does not exist on this host",
                                       f"create the {what} or give a numeric id") from None
    return found


class KernelMechanism(BaseMechanism):
    name = "kernel"

    @property
    def kinds(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset(kind for kind, _ in HANDLERS)

    def probe(self, lab: Lab, ctx: Context) -> object | None:
        return kernel_compile.KernelFacts(_ids(lab))

    def require(self, desired: DesiredState, ctx: Context) -> None:
        users = sorted(r.describe() for r in desired.resources.values()
                       if isinstance(r, LinuxBridge) and r.vlan_filtering)
        if users and not features.bridge_vlan_filtering():
            raise UnavailableError(
                "this kernel lacks bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING), which lab "
                f"{desired.lab} needs for {', '.join(users[:3])}" + (" …" if len(users) > 3 else ""),
                "use a kernel with bridge VLAN filtering, or an OVS switch for VLANs")

    def observe(self, lab: str, ctx: Context) -> Observation:
        return kernel_observe.observe(kernel_observe.lab_scan(lab, ctx))

    def match(self, desired: DesiredState | None, observed: ObservedState, own: Observation) -> None:
        kernel_observe.match(desired, observed, own)

    def driver(self, lab: str, ctx: Context, desired: DesiredState | None) -> Driver:
        return KernelDriver(lab, kernel_observe.kernel_host(ctx), teardown=desired is None)

    def labs(self, ctx: Context) -> set[str]:
        return labs_on_host(kernel_observe.kernel_host(ctx))

    def holders(self, observed: ObservedState) -> dict[int, list[str]]:
        taps = {r.origin(observed.lab) or r.key[1]: r.key[1] for r in observed.resources.values()
                if isinstance(r, Tap)}
        held: dict[int, list[str]] = {}
        if taps:
            by_device = tap.holders(set(taps.values()))
            for origin, device in sorted(taps.items()):
                for pid in by_device.get(device, ()):
                    held.setdefault(pid, []).append(f"TAP {device} ({origin})")
        return held


MECHANISM = KernelMechanism()

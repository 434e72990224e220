"""The macvlan mechanism: a netns node's interface as a macvlan (bridge mode) of a host device
the lab does not own, written `macvlan:<host device>` as a link end (README, "Links").

It builds on the kernel mechanism: its devices are read from the kernel's scan, and the kernel
driver creates and deletes them through handlers registered in driver.py. docs/architecture.md
walks through this package as the example of adding a kind.
"""

from __future__ import annotations

from vnet.errors import UnavailableError
from vnet.mechanisms.base import CONTRIBUTIONS, BaseMechanism, Context, Observation
from vnet.mechanisms.kernel.observe import CLAIMS, kernel_host, lab_scan
from vnet.mechanisms.macvlan import driver  # noqa: F401  (registers the kernel handlers)
from vnet.mechanisms.macvlan import observe as macvlan_observe
from vnet.mechanisms.macvlan.compile import node_to_macvlan
from vnet.mechanisms.macvlan.resources import Macvlan
from vnet.resources import HOST, DesiredState

CONTRIBUTIONS.links[frozenset({"node", "macvlan"})] = node_to_macvlan
CLAIMS.append(macvlan_observe.claims_macvlan)


class MacvlanMechanism(BaseMechanism):
    name = "macvlan"  # no driver of its own: the kernel driver executes its kind

    def require(self, desired: DesiredState, ctx: Context) -> None:
        parents = {r.parent for r in desired.resources.values() if isinstance(r, Macvlan)}
        if not parents:
            return
        missing = sorted(parents - set(kernel_host(ctx).links(HOST)))
        if missing:
            raise UnavailableError(f"lab {desired.lab}: host device {', '.join(missing)} does not exist "
                                   "(a macvlan link end names it)",
                                   "name an existing host device (`ip link`), e.g. `macvlan:eth0`")

    def observe(self, lab: str, ctx: Context) -> Observation:
        return macvlan_observe.observe(lab_scan(lab, ctx))


MECHANISM = MacvlanMechanism()

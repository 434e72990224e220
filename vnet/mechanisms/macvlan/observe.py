"""The lab's macvlan devices, from the kernel mechanism's scan of its namespaces."""

from __future__ import annotations

from vnet.mechanisms.base import Observation
from vnet.mechanisms.kernel.observe import Scan, device_end
from vnet.mechanisms.macvlan.resources import Macvlan
from vnet.netlink.parse import LinkMsg
from vnet.resources import HOST

KIND = "macvlan"  # the kernel's link kind


def claims_macvlan(lab: str, namespace: str, link: LinkMsg) -> bool:
    """A macvlan in a lab namespace is this mechanism's (the kernel's observer skips it)."""
    return namespace != HOST and link.kind == KIND


def observe(found: Scan) -> Observation:
    out = Observation()
    by_index = {link.index: name for name, link in found.links.items()}
    for namespace, inside in found.namespaces.items():
        names = {link.index: name for name, link in inside.links.items()}
        for link in inside.links.values():
            if not claims_macvlan(found.lab, namespace, link):
                continue
            # The parent lives in the host namespace (IFLA_LINK is its index there).
            parent = by_index.get(link.link or 0, "") if link.link_netnsid is not None else ""
            device = Macvlan(device_end(found, namespace, link, names), parent)
            out.resources[device.key] = device
    return out

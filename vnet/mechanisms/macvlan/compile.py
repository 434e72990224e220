"""A link `node:iface` — `macvlan:<host device>`: the node's interface is a macvlan of it."""

from __future__ import annotations

from vnet.marks import mark, netns_name
from vnet.mechanisms.base import Builder
from vnet.mechanisms.kernel.compile import link_mtu
from vnet.mechanisms.kernel.resources import DeviceEnd
from vnet.mechanisms.macvlan.resources import Macvlan
from vnet.topology.lab import LinkInfo
from vnet.topology.names import MacvlanEnd, NodeEnd


def node_to_macvlan(out: Builder, link: LinkInfo) -> None:
    node = next(e for e in link.ends if isinstance(e, NodeEnd))
    parent = next(e for e in link.ends if isinstance(e, MacvlanEnd))
    lab = out.lab.name
    end = DeviceEnd(netns_name(lab, node.node), node.iface, mark(lab, node.node, node.iface),
                    out.lab.interfaces[(node.node, node.iface)].mac, link_mtu(link))
    device = Macvlan(end, parent.parent)
    out.add(device)
    out.devices[(node.node, node.iface)] = (end.netns, end.name, device.key)

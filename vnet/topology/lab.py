"""A checked lab: the topology plus everything the checks resolved (endpoints, addresses, MACs)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import netaddr

from vnet.errors import Diagnostic
from vnet.topology.model import Link, Topology
from vnet.topology.names import Endpoint
from vnet.topology.source import SourceMap

InterfaceKey = tuple[str, str]  # (node, interface name)


@dataclass(frozen=True)
class Interface:
    """A node's interface: created by one link, with its deterministic MAC and its addresses."""

    node: str
    name: str
    link: int  # index of the link in `links:`
    mac: str
    addresses: tuple[netaddr.IPNetwork, ...]
    mtu: int | None

    @property
    def key(self) -> InterfaceKey:
        return (self.node, self.name)

    def __str__(self) -> str:
        return f"{self.node}:{self.name}"


@dataclass(frozen=True)
class LinkInfo:
    """One entry of `links:` with its endpoints parsed and resolved."""

    index: int
    spec: Link
    ends: tuple[Endpoint, Endpoint]


@dataclass(frozen=True)
class Lab:
    """The output of `check`: a valid topology, ready for the graph and the compiler."""

    file: str
    topology: Topology
    source: SourceMap
    links: tuple[LinkInfo, ...]
    interfaces: Mapping[InterfaceKey, Interface]
    warnings: tuple[Diagnostic, ...] = ()

    @property
    def name(self) -> str:
        return self.topology.name

    def interfaces_of(self, node: str) -> list[Interface]:
        return [i for i in self.interfaces.values() if i.node == node]

    def switch_link_id(self, link: LinkInfo) -> str:
        """`sw1~sw2#n`: the n-th link (in file order) joining these two ends (host names of the
        devices it makes derive from it)."""
        return self._link_ids[link.index]

    @cached_property
    def _link_ids(self) -> dict[int, str]:
        seen: dict[tuple[str, ...], int] = {}
        ids: dict[int, str] = {}
        for link in sorted(self.links, key=lambda other: other.index):
            names = tuple(sorted(str(e) for e in link.ends))
            ids[link.index] = f"{names[0]}~{names[1]}#{seen.get(names, 0)}"
            seen[names] = seen.get(names, 0) + 1
        return ids

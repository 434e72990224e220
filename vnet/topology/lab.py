"""A checked lab: the topology plus everything the checks resolved (endpoints, addresses, MACs)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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

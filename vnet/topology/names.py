"""Name rules and link endpoint syntax."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

IFNAMSIZ = 15  # usable characters of a Linux interface name

# `\Z`, not `$`: `$` also matches before a trailing newline (`name: "lab\n"` would pass).
LAB_NAME = re.compile(r"[a-z][a-z0-9-]{0,11}\Z")
NODE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}\Z")
SWITCH_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*\Z")
IFNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
POOL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}\Z")
VF_REF = re.compile(r"(?P<pf>[^/]+)/vf(?P<vf>[0-9]{1,4})\Z")

SRIOV_PREFIX = "sriov:"
MACVLAN_PREFIX = "macvlan:"
TUNNEL_KINDS = ("vxlan", "geneve")
RESERVED_NAMES = frozenset({"sriov", "macvlan", *TUNNEL_KINDS})

LAB_NAME_HINT = "1-12 characters: a lowercase letter, then lowercase letters, digits or `-`"
NODE_NAME_HINT = "a letter, then up to 31 letters, digits, `-` or `_`"
SWITCH_NAME_HINT = "the bridge's real name: a letter, then letters, digits, `-`, `_` or `.`, at most 15"
IFNAME_HINT = "at most 15 characters: letters, digits, `-`, `_` or `.` (not starting with `.` or `-`)"


@dataclass(frozen=True)
class NodeEnd:
    """`node:iface` — an interface of a node."""

    ROLE: ClassVar[str] = "node"  # its role for the link registries

    node: str
    iface: str

    def __str__(self) -> str:
        return f"{self.node}:{self.iface}"


@dataclass(frozen=True)
class SwitchEnd:
    """A bare name, which must name a switch (a node without interface is reported by the checks)."""

    ROLE: ClassVar[str] = "switch"  # its role for the link registries

    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class VfEnd:
    """`sriov:<pf>/vf<n>` — a virtual function of an SR-IOV physical function."""

    ROLE: ClassVar[str] = "vf"  # its role for the link registries

    pf: str
    vf: int

    def __str__(self) -> str:
        return f"{SRIOV_PREFIX}{self.pf}/vf{self.vf}"


@dataclass(frozen=True)
class TunnelEnd:
    """`vxlan:<remote-ip>` or `geneve:<remote-ip>` — a tunnel to an address outside the lab."""

    ROLE: ClassVar[str] = "tunnel"  # its role for the link registries

    kind: str
    remote: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.remote}"


@dataclass(frozen=True)
class MacvlanEnd:
    """`macvlan:<host device>` — a macvlan device (bridge mode) on a host device the lab does
    not own (a NIC, a bond): the node's interface reaches that device's network."""

    ROLE: ClassVar[str] = "macvlan"  # its role for the link registries

    parent: str

    def __str__(self) -> str:
        return f"{MACVLAN_PREFIX}{self.parent}"


Endpoint = NodeEnd | SwitchEnd | VfEnd | TunnelEnd | MacvlanEnd


class EndpointSyntaxError(ValueError):
    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def parse_endpoint(text: str) -> Endpoint:
    """Parse one link endpoint; raises EndpointSyntaxError with a hint."""
    if text.startswith(SRIOV_PREFIX):
        match = VF_REF.match(text[len(SRIOV_PREFIX):])
        if not match:
            raise EndpointSyntaxError(f"`{text}` is not a virtual function reference",
                                      "write `sriov:<pf>/vf<n>`, e.g. `sriov:enp3s0f0/vf2`")
        return VfEnd(match["pf"], int(match["vf"]))
    if text.startswith(MACVLAN_PREFIX):
        return MacvlanEnd(text[len(MACVLAN_PREFIX):])
    name, colon, iface = text.partition(":")
    if colon and name in TUNNEL_KINDS:
        return TunnelEnd(name, iface)
    if not name:
        raise EndpointSyntaxError(f"`{text}` has no node or switch name",
                                  "write `node:iface` or a switch name")
    if not colon:
        return SwitchEnd(name)
    if not iface:
        raise EndpointSyntaxError(f"`{text}` has an empty interface name",
                                  "write `node:iface`, e.g. `h1:eth0`")
    return NodeEnd(name, iface)


def ifname_problem(name: str) -> tuple[str, str] | None:
    """(code, message) if `name` cannot be a Linux interface name, else None."""
    if len(name) > IFNAMSIZ:
        return "ifname-too-long", f"interface name `{name}` is {len(name)} characters; Linux allows 15"
    if not IFNAME.match(name):
        return "ifname-invalid", f"`{name}` is not a valid interface name"
    return None

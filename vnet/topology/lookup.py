"""Nodes and interfaces named on the command line (`exec`, `trace`, `attach-info`), looked up in a lab.

A name the file does not have is a mistake in the arguments, whatever the host holds: every
command reports it the same way, as an InputError (exit 65) that names the cause and the names
the lab does have, before anything on the host is looked at.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from vnet.errors import InputError
from vnet.topology.lab import Interface, Lab
from vnet.topology.model import Node


def _choices(what: str, names: Iterable[str], wrong: str) -> str:
    known = sorted(names)
    if not known:
        return f"the lab has no {what}"
    close = difflib.get_close_matches(wrong, known, n=1)
    listed = f"{what}: {', '.join(known)}"
    return f"did you mean `{close[0]}`? ({listed})" if close else listed


def require_node(lab: Lab, name: str, hint: str | None = None) -> Node:
    """The node `name` of the lab; InputError when the file has none (a switch is not a node)."""
    found = lab.topology.nodes.get(name)
    if found is not None:
        return found
    if name in lab.topology.switches:
        raise InputError(f"`{name}` is a switch of lab {lab.name}, not a node",
                         hint or _choices("nodes", lab.topology.nodes, name))
    raise InputError(f"`{name}` is not a node of lab {lab.name}",
                     hint or _choices("nodes", lab.topology.nodes, name))


def require_interface(lab: Lab, node: str, iface: str) -> Interface:
    """Interface `iface` of node `node` (which must exist); InputError when the file gives it none."""
    require_node(lab, node)
    mine = {i.name: i for i in lab.interfaces_of(node)}
    if iface in mine:
        return mine[iface]
    if not iface:
        raise InputError(f"`{node}:` names no interface",
                         f"write `{node}` for any of its interfaces, or `{node}:IFACE` "
                         f"({_choices('interfaces', mine, iface)})")
    raise InputError(f"`{node}` has no interface `{iface}` in lab {lab.name}",
                     _choices(f"interfaces of {node}", mine, iface))

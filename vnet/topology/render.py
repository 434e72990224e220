"""Drawings of a lab graph: Graphviz DOT and Mermaid text; SVG/PNG through Graphviz `dot`."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from typing import TYPE_CHECKING

from vnet.errors import UnavailableError, VnetError

if TYPE_CHECKING:
    from vnet.topology.graph import LabGraph

_SHAPES = {  # (role, kind) -> DOT attributes
    ("switch", "ovs"): 'shape=box, style="rounded,filled", fillcolor="#cfe2ff"',
    ("switch", "linux"): 'shape=box, style="rounded,filled", fillcolor="#d1e7dd"',
    ("node", "netns"): 'shape=ellipse, style=filled, fillcolor="#f8f9fa"',
    ("node", "vm"): 'shape=box3d, style=filled, fillcolor="#fff3cd"',
    ("node", "tap"): 'shape=box3d, style="dashed,filled", fillcolor="#fff3cd"',
    ("pf", "legacy"): 'shape=component, style=filled, fillcolor="#f8d7da"',
    ("pf", "switchdev"): 'shape=component, style=filled, fillcolor="#f8d7da"',
    ("tunnel", "vxlan"): 'shape=cds, style=filled, fillcolor="#e2d9f3"',
    ("tunnel", "geneve"): 'shape=cds, style=filled, fillcolor="#e2d9f3"',
}


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _edge_label(data: dict[str, object]) -> str:
    parts = [str(i) for i in data["interfaces"]]  # type: ignore[attr-defined]
    parts += [str(a) for a in data["addresses"]]  # type: ignore[attr-defined]
    if data["vlan"] is not None:
        parts.append(f"vlan {data['vlan']}")
    if data["trunk"] is not None:
        parts.append("trunk " + ",".join(str(v) for v in data["trunk"]))  # type: ignore[attr-defined]
    if data["vf"] is not None:
        parts.append(f"vf{data['vf']}")
    return "\n".join(parts)


def to_dot(lab_graph: LabGraph) -> str:
    graph = lab_graph.graph
    lines = [f"graph {_quote(lab_graph.lab.name)} {{",
             f"  graph [rankdir=LR, labelloc=t, label={_quote('lab ' + lab_graph.lab.name)}];",
             '  node [fontname="Helvetica", fontsize=11];',
             '  edge [fontname="Helvetica", fontsize=9];']
    for vertex, data in sorted(graph.nodes(data=True)):
        shape = _SHAPES.get((data["role"], data["kind"]), "shape=ellipse")
        label = _quote(f"{vertex}\n{data['kind']}")
        lines.append(f"  {_quote(vertex)} [{shape}, label={label}];")
    for a, b, _key, data in sorted(graph.edges(keys=True, data=True), key=lambda e: e[2]):
        lines.append(f"  {_quote(a)} -- {_quote(b)} [label={_quote(_edge_label(data))}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    return '"' + text.replace('"', "#quot;").replace("\n", "<br/>") + '"'


_MERMAID_SHAPES = {"switch": "[{}]", "node": "({})", "pf": "[[{}]]", "tunnel": ">{}]"}


def to_mermaid(lab_graph: LabGraph) -> str:
    graph = lab_graph.graph
    ids = {vertex: f"v{k}" for k, vertex in enumerate(sorted(graph.nodes))}
    lines = ["graph LR"]
    for vertex, data in sorted(graph.nodes(data=True)):
        label = _mermaid_text(f"{vertex}\n{data['kind']}")
        lines.append(f"  {ids[vertex]}{_MERMAID_SHAPES[data['role']].format(label)}")
    for a, b, _key, data in sorted(graph.edges(keys=True, data=True), key=lambda e: e[2]):
        lines.append(f"  {ids[a]} ---|{_mermaid_text(_edge_label(data))}| {ids[b]}")
    return "\n".join(lines) + "\n"


def _through_dot(fmt: str) -> Callable[[LabGraph], bytes]:
    def render(lab_graph: LabGraph) -> bytes:
        dot = shutil.which("dot")
        if dot is None:
            raise UnavailableError(f"rendering {fmt} needs the Graphviz `dot` program, not found",
                                   "install it (Debian: apt-get install graphviz), or use "
                                   "--format dot / --format mermaid")
        done = subprocess.run([dot, f"-T{fmt}"], input=to_dot(lab_graph).encode(),
                              capture_output=True, check=False, timeout=60)
        if done.returncode != 0:
            raise VnetError(f"Graphviz dot failed: {done.stderr.decode(errors='replace').strip()}")
        return done.stdout
    return render


FORMATS = ("dot", "mermaid", "png", "svg")
RENDERERS: dict[str, Callable[[LabGraph], bytes]] = {
    "dot": lambda g: to_dot(g).encode(),
    "mermaid": lambda g: to_mermaid(g).encode(),
    "svg": _through_dot("svg"),
    "png": _through_dot("png"),
}

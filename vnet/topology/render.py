"""Drawings of a lab graph: Graphviz DOT and Mermaid text; SVG/PNG through Graphviz `dot`.

Both drawings show each node's interfaces with their MACs and addresses, colour every link by
its VLAN (a trunk gets one stripe per VLAN) and tint each L2 segment: the interfaces on it, and
a group around the nodes and switches that are on it alone. A legend names the colours.
"""

from __future__ import annotations

import colorsys
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING

from vnet.errors import UnavailableError, VnetError
from vnet.topology.names import NodeEnd, VfEnd

if TYPE_CHECKING:
    from vnet.topology.graph import LabGraph
    from vnet.topology.lab import Interface, Lab, LinkInfo
    from vnet.topology.names import Endpoint
    from vnet.topology.segments import Segment

# Strong colours for VLAN lines (Tableau 10 without its grey, which is "untagged"), then pastels
# for segment tints: lines must stand out on white, tints must keep black text readable.
_VLAN_COLOURS = ("#e15759", "#4e79a7", "#59a14f", "#f28e2b", "#b07aa1", "#76b7b2", "#9c755f",
                 "#ff9da7", "#c9a100")
_TINTS = ("#fde2e1", "#dbe6f1", "#ddecd9", "#fde8d4", "#ece0ea", "#e1eeee", "#ebe2dc", "#fff3c4",
          "#e8e8e8")
UNTAGGED = "#666666"
TRUNK = "#333333"  # text (and Mermaid lines) of a link that carries several VLANs

_HEADER_FILL = {"netns": "#f1f3f5", "vm": "#fff3cd", "tap": "#fff3cd"}
_SHAPES = {  # (role, kind) -> DOT attributes of the vertices that are not nodes
    ("switch", "ovs"): 'shape=box, style="rounded,filled", fillcolor="#cfe2ff"',
    ("switch", "linux"): 'shape=box, style="rounded,filled", fillcolor="#d1e7dd"',
    ("pf", "legacy"): 'shape=component, style=filled, fillcolor="#f8d7da"',
    ("pf", "switchdev"): 'shape=component, style=filled, fillcolor="#f8d7da"',
    ("tunnel", "vxlan"): 'shape=cds, style=filled, fillcolor="#e2d9f3"',
    ("tunnel", "geneve"): 'shape=cds, style=filled, fillcolor="#e2d9f3"',
    ("host-device", "macvlan"): 'shape=component, style="dashed,filled", fillcolor="#e9ecef"',
}


def _spread(k: int, saturation: float, value: float) -> str:
    """The k-th colour past a palette's end: golden-angle hues stay apart however many."""
    r, g, b = colorsys.hsv_to_rgb((k * 0.618034) % 1.0, saturation, value)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def _pick(palette: tuple[str, ...], k: int, saturation: float, value: float) -> str:
    return palette[k] if k < len(palette) else _spread(k, saturation, value)


def link_vlans(lab: Lab, link: LinkInfo) -> tuple[int, ...]:
    """The VLANs a link carries: its access VLAN, its trunk (and native) VLANs, or a legacy
    VF's VLAN; empty when it is untagged."""
    spec = link.spec
    if spec.vlan is not None:
        return (spec.vlan,)
    if spec.trunk is not None:
        return tuple(sorted({*spec.trunk, *((spec.native_vlan,) if spec.native_vlan else ())}))
    for end in link.ends:
        if isinstance(end, VfEnd):
            vf = lab.topology.sriov[end.pf].vfs.get(end.vf)
            if vf is not None and vf.vlan is not None:
                return (vf.vlan,)
    return ()


@dataclass(frozen=True)
class Style:
    """Colours and groups of one drawing, shared by DOT and Mermaid."""

    vlan_colour: dict[int, str]
    segment_tint: dict[str, str]  # segment name -> fill
    segment_label: dict[str, str]
    sole_segment: dict[str, str]  # vertex -> the segment all its interfaces (domains) are on
    group_of: dict[str, str]  # vertex -> the segment whose box it is drawn in
    untagged: bool  # some link carries no VLAN

    def colours(self, vlans: Iterable[int]) -> list[str]:
        return [self.vlan_colour[v] for v in vlans] or [UNTAGGED]

    def members(self, segment: str) -> list[str]:
        return sorted(v for v, s in self.group_of.items() if s == segment)


def _segment_label(segment: Segment) -> str:
    size = len(segment.interfaces)
    parts = [f"{size} interface{'s' if size != 1 else ''}"]
    if segment.vlans:
        parts.insert(0, "vlan " + ",".join(map(str, segment.vlans)))
    elif not segment.external:  # outside the lab (a VF's uplink, a tunnel) tags are unknown
        parts.insert(0, "untagged")
    return f"{segment.name} ({', '.join(parts)})"


def _sole_segments(segments: Iterable[Segment]) -> dict[str, str]:
    """Vertex -> segment, for the nodes whose interfaces and the switches whose VLAN domains
    are all on one segment."""
    on: dict[str, set[str]] = {}
    for segment in segments:
        for vertex in [node for node, _ in segment.interfaces] + [sw for sw, _ in segment.domains]:
            on.setdefault(vertex, set()).add(segment.name)
    return {vertex: names.pop() for vertex, names in on.items() if len(names) == 1}


def _groups(segments: Iterable[Segment], sole: dict[str, str]) -> dict[str, str]:
    """The vertices drawn inside a box for their segment: only for a segment on at most one
    switch, with two members or more. A box around a VLAN that spans several switches would
    pull each host away from its own switch and tangle the lines."""
    local = {s.name for s in segments if len({switch for switch, _ in s.domains}) <= 1}
    sizes = Counter(s for s in sole.values() if s in local)
    return {vertex: s for vertex, s in sole.items() if sizes[s] >= 2}


def style_of(lab_graph: LabGraph) -> Style:
    lab, segments = lab_graph.lab, lab_graph.segments
    vlans = sorted({v for link in lab.links for v in link_vlans(lab, link)})
    vlan_colour = {v: _pick(_VLAN_COLOURS, k, 0.65, 0.8) for k, v in enumerate(vlans)}
    tints = {s.name: _pick(_TINTS, k, 0.12, 0.98) for k, s in enumerate(segments)}
    sole = _sole_segments(segments)
    return Style(vlan_colour, tints, {s.name: _segment_label(s) for s in segments}, sole,
                 _groups(segments, sole), any(not link_vlans(lab, link) for link in lab.links))


def _edge_label(link: LinkInfo, vlans: tuple[int, ...]) -> str:
    """What the colour says, in words: access VLAN, trunk (and native) VLANs, VF; the MTU of a
    link between switches."""
    spec = link.spec
    parts = [f"vlan {spec.vlan}"] if spec.vlan is not None else []
    if spec.trunk is not None:
        parts.append("trunk " + ",".join(map(str, spec.trunk)))
        parts += [f"native {spec.native_vlan}"] if spec.native_vlan is not None else []
    parts += [f"vf{e.vf}" for e in link.ends if isinstance(e, VfEnd)]
    if spec.vlan is None and spec.trunk is None and vlans:  # a VF's own VLAN
        parts.append(f"vlan {vlans[0]}")
    if spec.mtu is not None and not any(isinstance(e, NodeEnd) for e in link.ends):
        parts.append(f"mtu {spec.mtu}")  # a node's interface row shows its own MTU
    return " ".join(parts)


def _link_ends(link: LinkInfo) -> tuple[tuple[Endpoint, str], tuple[Endpoint, str]]:
    """Each end of a link with its graph vertex, in file order."""
    from vnet.topology.graph import vertex_of  # noqa: PLC0415 (`vnet graph --help` needs no networkx)

    a, b = link.ends
    return (a, vertex_of(a)), (b, vertex_of(b))


def _interfaces(lab_graph: LabGraph, vertex: str) -> list[Interface]:
    return sorted(lab_graph.lab.interfaces_of(vertex), key=lambda i: i.name)


# --- DOT --------------------------------------------------------------------------------------------

_GRAPH_ATTRS = ('rankdir=LR, labelloc=t, fontname="Helvetica", nodesep=0.25, ranksep=0.9, '
                "splines=true, newrank=true")
_TABLE = '<table border="0" cellborder="1" cellspacing="0" cellpadding="{}">{}</table>'


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _port(iface: str) -> str:
    return "if-" + iface  # interface names are [A-Za-z0-9_.-]: a safe port name as they are


def _interface_row(interface: Interface, tint: str) -> str:
    """One line per interface: name, MAC, first address (and MTU); more addresses below."""
    addresses = [escape(str(a)) for a in interface.addresses]
    mac = f'<font face="Courier" point-size="10">{interface.mac}</font>'
    mtu = [f"mtu {interface.mtu}"] if interface.mtu else []
    first = "  ".join([f"<b>{escape(interface.name)}</b>", mac, *addresses[:1], *mtu])
    more = "".join(f'<br align="left"/>{a}' for a in addresses[1:])
    return (f'<tr><td port="{_port(interface.name)}" bgcolor="{tint}" align="left" balign="left">'
            f"{first}{more}</td></tr>")


def _node_label(lab_graph: LabGraph, style: Style, vertex: str, kind: str) -> str:
    """An HTML-like table: the node, then one row per interface (MAC, addresses, tint)."""
    header = (f'<tr><td bgcolor="{_HEADER_FILL.get(kind, "#f1f3f5")}"><b>{escape(vertex)}</b> '
              f'<font point-size="9">{escape(kind)}</font></td></tr>')
    rows = [_interface_row(i, style.segment_tint[lab_graph.segment_of[i.key].name])
            for i in _interfaces(lab_graph, vertex)]
    return "<" + _TABLE.format(3, header + "".join(rows)) + ">"


def _vertex_line(lab_graph: LabGraph, style: Style, vertex: str, data: dict[str, str]) -> str:
    if data["role"] == "node":
        return f"{_quote(vertex)} [shape=plain, label={_node_label(lab_graph, style, vertex, data['kind'])}];"
    shape = _SHAPES.get((data["role"], data["kind"]), "shape=ellipse")
    return f"{_quote(vertex)} [{shape}, label={_quote(vertex + chr(10) + data['kind'])}];"


def _end(end: Endpoint, vertex: str) -> str:
    """An edge's end: a node's interface row (its port), or the vertex itself."""
    return f"{_quote(vertex)}:{_quote(_port(end.iface))}" if isinstance(end, NodeEnd) else _quote(vertex)


def _edge_line(lab_graph: LabGraph, style: Style, link: LinkInfo) -> str:
    (end_a, a), (end_b, b) = _link_ends(link)
    vlans = link_vlans(lab_graph.lab, link)
    colours = style.colours(vlans)  # a trunk: parallel lines, one per VLAN
    attrs = [f"color={_quote(':'.join(colours))}", f"penwidth={2 if vlans else 1.2}"]
    if label := _edge_label(link, vlans):
        # a trunk's label in its first VLAN's colour would read as that VLAN alone
        font = colours[0] if len(colours) == 1 else TRUNK
        attrs += [f"label={_quote(label)}", f"fontcolor={_quote(font)}"]
    return f"{_end(end_a, a)} -- {_end(end_b, b)} [{', '.join(attrs)}];"


def _swatch(colour: str, text: str) -> str:
    return f'<tr><td bgcolor="{colour}" width="24"> </td><td align="left">{escape(text)}</td></tr>'


def _legend(style: Style) -> list[str]:
    """A table of swatches: each VLAN's line colour, each segment's tint."""
    rows = ['<tr><td colspan="2"><b>VLAN</b></td></tr>']
    rows += [_swatch(c, f"vlan {v}") for v, c in style.vlan_colour.items()]
    rows += [_swatch(UNTAGGED, "untagged")] if style.untagged else []
    rows.append('<tr><td colspan="2"><b>L2 segment</b></td></tr>')
    rows += [_swatch(t, style.segment_label[s]) for s, t in style.segment_tint.items()]
    return ["  subgraph cluster_legend {", '    label="legend"; style=dashed; color="#999999";',
            f'    "legend" [shape=plain, fontsize=9, label=<{_TABLE.format(2, "".join(rows))}>];', "  }"]


def _clusters(lab_graph: LabGraph, style: Style, lines: dict[str, str]) -> list[str]:
    """One tinted box per segment that has a group; takes its members' lines out of `lines`."""
    out: list[str] = []
    for k, segment in enumerate(lab_graph.segments):
        if members := style.members(segment.name):
            out += [f"  subgraph cluster_segment_{k} {{",
                    f"    label={_quote('segment ' + style.segment_label[segment.name])};",
                    f'    style="rounded,filled"; fillcolor="{style.segment_tint[segment.name]}"; '
                    'color="#bbbbbb";',
                    *(f"    {lines.pop(v)}" for v in members), "  }"]
    return out


def to_dot(lab_graph: LabGraph) -> str:
    graph, style = lab_graph.graph, style_of(lab_graph)
    lines = [f"graph {_quote(lab_graph.lab.name)} {{",
             f"  graph [{_GRAPH_ATTRS}, label={_quote('lab ' + lab_graph.lab.name)}];",
             '  node [fontname="Helvetica", fontsize=11];',
             '  edge [fontname="Helvetica", fontsize=9];']
    vertices = {v: _vertex_line(lab_graph, style, v, d) for v, d in sorted(graph.nodes(data=True))}
    lines += _clusters(lab_graph, style, vertices)
    lines += [f"  {line}" for line in vertices.values()]
    lines += [f"  {_edge_line(lab_graph, style, link)}" for link in lab_graph.lab.links]
    return "\n".join([*lines, *_legend(style), "}"]) + "\n"


# --- Mermaid ----------------------------------------------------------------------------------------

_MERMAID_SHAPES = {"switch": "[{}]", "node": "({})", "pf": "[[{}]]", "tunnel": ">{}]",
                   "host-device": "[[{}]]"}


def _mermaid_text(text: str) -> str:
    return '"' + text.replace('"', "#quot;").replace("\n", "<br/>") + '"'


def _mermaid_vertex(lab_graph: LabGraph, vertex: str, data: dict[str, str]) -> str:
    """The vertex's label: name, kind, then per interface its name, MAC and addresses."""
    rows = [" ".join([i.name, i.mac, *map(str, i.addresses)]) for i in _interfaces(lab_graph, vertex)]
    text = _mermaid_text("\n".join([vertex, data["kind"], *rows]))
    return _MERMAID_SHAPES.get(data["role"], "[{}]").format(text)


def _mermaid_link(lab_graph: LabGraph, ids: dict[str, str], link: LinkInfo) -> str:
    (end_a, a), (end_b, b) = _link_ends(link)
    names = [str(e) for e in (end_a, end_b) if isinstance(e, NodeEnd)]
    text = "\n".join([*names, _edge_label(link, link_vlans(lab_graph.lab, link))]).strip()
    return f"  {ids[a]} ---|{_mermaid_text(text)}| {ids[b]}" if text else f"  {ids[a]} --- {ids[b]}"


def _mermaid_legend(style: Style) -> list[str]:
    """Legend boxes: a VLAN's colour as the frame, a segment's tint as the fill."""
    boxes = [(f"legend_vlan{k}", f"vlan {v}", f"fill:#ffffff,stroke:{c},stroke-width:4px")
             for k, (v, c) in enumerate(style.vlan_colour.items())]
    boxes += [(f"legend_seg{k}", f"segment {style.segment_label[s]}", f"fill:{t},stroke:#bbbbbb")
              for k, (s, t) in enumerate(style.segment_tint.items())]
    return ["  subgraph legend[legend]", "    direction TB",
            *(f"    {box}[{_mermaid_text(text)}]" for box, text, _ in boxes), "  end",
            *(f"  style {box} {css}" for box, _, css in boxes)]


def to_mermaid(lab_graph: LabGraph) -> str:
    graph, style = lab_graph.graph, style_of(lab_graph)
    ids = {vertex: f"v{k}" for k, vertex in enumerate(sorted(graph.nodes))}
    shapes = {v: ids[v] + _mermaid_vertex(lab_graph, v, d) for v, d in sorted(graph.nodes(data=True))}
    lines, styles = ["graph LR"], []
    for k, segment in enumerate(lab_graph.segments):
        if members := style.members(segment.name):
            label = _mermaid_text("segment " + style.segment_label[segment.name])
            lines += [f"  subgraph s{k}[{label}]", *(f"    {shapes.pop(v)}" for v in members), "  end"]
            styles.append(f"  style s{k} fill:{style.segment_tint[segment.name]},stroke:#bbbbbb")
    lines += [f"  {shape}" for shape in shapes.values()]
    styles += [f"  style {ids[v]} fill:{style.segment_tint[s]}" for v, s in sorted(style.sole_segment.items())
               if graph.nodes[v]["role"] == "node" and v not in style.group_of]  # a box tints those
    for n, link in enumerate(lab_graph.lab.links):  # linkStyle counts links in this order
        lines.append(_mermaid_link(lab_graph, ids, link))
        vlans = link_vlans(lab_graph.lab, link)
        colours = style.colours(vlans)  # one colour per line here: a trunk is drawn neutral
        colour = colours[0] if len(colours) == 1 else TRUNK
        styles.append(f"  linkStyle {n} stroke:{colour},stroke-width:{3 if vlans else 1}px")
    return "\n".join([*lines, *_mermaid_legend(style), *styles]) + "\n"


# --- through Graphviz -------------------------------------------------------------------------------


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
BINARY_FORMATS = frozenset({"png"})  # never written to a terminal
SUFFIXES = {".dot": "dot", ".gv": "dot", ".mmd": "mermaid", ".mermaid": "mermaid", ".svg": "svg",
            ".png": "png"}
RENDERERS: dict[str, Callable[[LabGraph], bytes]] = {
    "dot": lambda g: to_dot(g).encode(),
    "mermaid": lambda g: to_mermaid(g).encode(),
    "svg": _through_dot("svg"),
    "png": _through_dot("png"),
}

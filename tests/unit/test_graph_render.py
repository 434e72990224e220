"""`vnet graph`: the format from `-o`'s suffix, no binary on a terminal, and a drawing that shows
MACs, VLAN colours and L2 segments, readable for a 30-node lab.

The terminal tests run the installed `vnet` with its stdout on a pseudo terminal: click's
CliRunner cannot make `isatty()` true.
"""

from __future__ import annotations

import os
import pty
import re
import select
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

import vnet
from vnet.cli import main
from vnet.topology.addressing import mac_address
from vnet.topology.graph import LabGraph, build_graph
from vnet.topology.render import to_dot, to_mermaid

VNET = Path(sys.executable).parent / "vnet"
VNET_CMD = [str(VNET)] if VNET.exists() else [sys.executable, "-m", "vnet"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

TWO_VLANS = """\
name: colours
switches:
  co-ovs: {type: ovs}
  co-br: {type: linux}
nodes:
  a1: {}
  a2: {}
  b1: {}
  c1: {}
  c2: {}
links:
  - {endpoints: [a1:eth0, co-ovs], vlan: 10, ip: 10.0.10.1/24}
  - {endpoints: [a2:eth0, co-ovs], vlan: 10, ip: 10.0.10.2/24}
  - {endpoints: [b1:eth0, co-ovs], vlan: 20, ip: 10.0.20.1/24}
  - {endpoints: [co-ovs, co-br], trunk: [10, 20]}
  - {endpoints: [c1:eth0, c2:eth0], ip: [10.0.30.1/30, 10.0.30.2/30]}
"""

WITH_VF = """\
name: vfmac
sriov:
  enp3s0f0:
    num_vfs: 2
    vfs:
      0: {mac: "02:00:00:00:10:00", vlan: 100}
nodes:
  h1: {}
links:
  - {endpoints: [h1:eth0, "sriov:enp3s0f0/vf0"], ip: 198.18.100.10/24}
"""


def campus_yaml() -> str:
    """A 30-node campus: three access switches trunked to a core, a router between the VLANs, a
    DMZ on a Linux bridge, a border router on a point-to-point link and two management nodes."""
    vlans = (10, 20, 30)
    hosts = [(f"h{a}{k}", a, vlans[k % 3]) for a in (1, 2, 3) for k in range(7)]
    lines = ["name: campus", "networks:"]
    lines += [f"  v{v}: {{subnet: 198.18.{v}.0/24, gateway: 198.18.{v}.254}}" for v in (*vlans, 40, 99)]
    lines += ["switches:", "  cp-core: {type: ovs}", "  cp-dmz: {type: linux}"]
    lines += [f"  cp-acc{a}: {{type: ovs}}" for a in (1, 2, 3)]
    lines += ["nodes:", "  r1: {forwarding: true}", "  r2: {forwarding: true}", "  mon: {kind: vm}",
              "  m1: {}", "  m2: {}", "  web1: {kind: vm}", "  web2: {kind: vm}", "  dns: {}", "  mail: {}"]
    lines += [f"  {name}: {{}}" for name, _, _ in hosts]
    lines += ["links:"]
    lines += [f"  - {{endpoints: [cp-acc{a}, cp-core], trunk: [10, 20, 30]}}" for a in (1, 2, 3)]
    lines += [f"  - {{endpoints: [r1:v{v}, cp-core], vlan: {v}, ip: 198.18.{v}.254/24}}" for v in vlans]
    lines += ["  - {endpoints: [r1:dmz, cp-dmz], ip: 198.18.40.254/24}",
              "  - {endpoints: [r1:wan, r2:wan], ip: [198.18.0.1/30, 198.18.0.2/30]}"]
    lines += [f"  - {{endpoints: [mon:v{v}, cp-core], vlan: {v}, network: v{v}}}" for v in vlans]
    lines += [f"  - {{endpoints: [{m}:eth0, cp-core], network: v99}}" for m in ("m1", "m2")]
    lines += [f"  - {{endpoints: [{d}:eth0, cp-dmz], network: v40}}" for d in ("web1", "web2", "dns", "mail")]
    lines += [f"  - {{endpoints: [{n}:eth0, cp-acc{a}], vlan: {v}, network: v{v}}}" for n, a, v in hosts]
    return "\n".join(lines) + "\n"


def _write(tmp_path: Path, text: str, name: str = "lab.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _graph(tmp_path: Path, text: str) -> LabGraph:
    return build_graph(vnet.load(_write(tmp_path, text)))


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as caught:
        main(list(args))
    return int(caught.value.code or 0), capsys.readouterr().err


@pytest.fixture
def lab_file(tmp_path: Path) -> str:
    return _write(tmp_path, TWO_VLANS)


# --- the format from -o's suffix ------------------------------------------------------------------


@pytest.mark.parametrize(("suffix", "starts", "fmt"), [
    (".dot", b'graph "colours" {', "dot"), (".gv", b'graph "colours" {', "dot"),
    (".mmd", b"graph LR", "mermaid"), (".svg", b"<?xml", "svg"), (".PNG", PNG_MAGIC, "png"),
])
def test_format_from_the_suffix(capsys: pytest.CaptureFixture[str], lab_file: str, tmp_path: Path,
                                suffix: str, starts: bytes, fmt: str) -> None:
    out = tmp_path / f"drawing{suffix}"
    code, err = _run(capsys, "graph", lab_file, "-o", str(out))
    assert code == 0, err
    assert out.read_bytes().startswith(starts)
    assert f"({fmt}, " in err


def test_an_explicit_format_wins_over_the_suffix(capsys: pytest.CaptureFixture[str], lab_file: str,
                                                 tmp_path: Path) -> None:
    out = tmp_path / "drawing.png"
    code, err = _run(capsys, "graph", lab_file, "--format", "mermaid", "-o", str(out))
    assert code == 0, err
    assert out.read_bytes().startswith(b"graph LR")


@pytest.mark.parametrize("name", ["drawing.gif", "drawing"])
def test_an_unknown_suffix_is_a_usage_error(capsys: pytest.CaptureFixture[str], lab_file: str,
                                            tmp_path: Path, name: str) -> None:
    out = tmp_path / name
    code, err = _run(capsys, "graph", lab_file, "-o", str(out))
    assert code == 2
    assert "error: cannot tell the format of" in err
    assert "(known: .dot, .gv, .mmd, .mermaid, .svg, .png)" in err
    assert "hint: end the file name in one of those, or give --format dot|mermaid|png|svg" in err
    assert not out.exists()


# --- no binary on a terminal ----------------------------------------------------------------------


def _on_a_terminal(*args: str) -> tuple[int, bytes, str]:
    """Run `vnet` with stdout on a pseudo terminal: (exit code, what reached the terminal, stderr).
    The terminal is read while the command runs: a full one would block a command writing a PNG."""
    master, slave = pty.openpty()
    try:
        process = subprocess.Popen([*VNET_CMD, *args], stdout=slave, stderr=subprocess.PIPE,
                                   stdin=subprocess.DEVNULL)
        os.close(slave)
        shown = bytearray()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 0.1)[0]:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the command has exited and the terminal is drained
                break
            shown += chunk
        process.kill()  # a no-op when it has exited
        _, err = process.communicate(timeout=60)
        return process.wait(), bytes(shown), err.decode()
    finally:
        os.close(master)


def test_png_to_a_terminal_is_refused(lab_file: str) -> None:
    code, shown, err = _on_a_terminal("graph", "--format", "png", lab_file)
    assert code == 2, err
    assert shown == b""
    assert "error: refusing to write png (binary) to a terminal" in err
    assert "hint: write it to a file with -o lab.png, or pipe it" in err


def test_text_to_a_terminal_and_png_to_a_file_are_fine(lab_file: str, tmp_path: Path) -> None:
    code, shown, err = _on_a_terminal("graph", lab_file)
    assert code == 0, err
    assert shown.startswith(b'graph "colours" {')
    out = tmp_path / "lab.png"
    code, shown, err = _on_a_terminal("graph", lab_file, "-o", str(out))
    assert code == 0, err
    assert out.read_bytes().startswith(PNG_MAGIC)


def test_png_to_a_pipe_is_written(lab_file: str) -> None:
    done = subprocess.run([*VNET_CMD, "graph", "--format", "png", lab_file], capture_output=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(PNG_MAGIC)


# --- what the drawing shows -----------------------------------------------------------------------


def test_every_interface_mac_is_drawn(tmp_path: Path) -> None:
    graph = _graph(tmp_path, TWO_VLANS)
    dot, mermaid = to_dot(graph), to_mermaid(graph)
    interfaces = graph.lab.interfaces.values()
    assert len(interfaces) == 5
    for interface in interfaces:
        assert interface.mac == mac_address("colours", interface.node, interface.name)  # vnet's own
        assert re.search(rf"<b>{interface.name}</b>  <font [^>]*>{interface.mac}</font>", dot)
        assert f"{interface.name} {interface.mac}" in mermaid


def test_a_vfs_own_mac_is_drawn(tmp_path: Path) -> None:
    graph = _graph(tmp_path, WITH_VF)
    assert ">02:00:00:00:10:00</font>" in to_dot(graph)
    assert "eth0 02:00:00:00:10:00 198.18.100.10/24" in to_mermaid(graph)


def _edge_colours(dot: str) -> dict[str, str]:
    """Edge (`a -- b`, ports dropped) -> its color attribute."""
    found = {}
    for a, b, colour in re.findall(r'^  "([^"]+)"(?::"[^"]+")? -- "([^"]+)"(?::"[^"]+")? \[color="([^"]+)"',
                                   dot, re.MULTILINE):
        found[f"{a}--{b}"] = colour
    return found


def test_vlans_have_colours(tmp_path: Path) -> None:
    dot = to_dot(_graph(tmp_path, TWO_VLANS))
    colours = _edge_colours(dot)
    assert len(colours) == 5
    vlan10, vlan20 = colours["a1--co-ovs"], colours["b1--co-ovs"]
    assert colours["a2--co-ovs"] == vlan10  # one VLAN, one colour
    assert vlan10 != vlan20
    assert colours["co-ovs--co-br"] == f"{vlan10}:{vlan20}"  # a trunk: a stripe per VLAN
    assert colours["c1--c2"] not in (vlan10, vlan20)  # untagged
    for vlan, colour in ((10, vlan10), (20, vlan20)):  # the legend says which is which
        assert f'<td bgcolor="{colour}" width="24"> </td><td align="left">vlan {vlan}</td>' in dot


def test_mermaid_colours_each_link_by_vlan(tmp_path: Path) -> None:
    mermaid = to_mermaid(_graph(tmp_path, TWO_VLANS))
    styles = dict(re.findall(r"^  linkStyle (\d+) stroke:(#[0-9a-f]{6})", mermaid, re.MULTILINE))
    assert len(styles) == 5  # in `links:` order
    assert styles["0"] == styles["1"] != styles["2"]
    assert 'legend_vlan0["vlan 10"]' in mermaid
    assert f"style legend_vlan0 fill:#ffffff,stroke:{styles['0']}" in mermaid


def _tints(dot: str) -> dict[str, str]:
    """Node -> the tint of its (first) interface row."""
    return dict(re.findall(r'^  +"([^"]+)" \[shape=plain, label=<.*?<td port="if-[^"]+" bgcolor="([^"]+)"',
                           dot, re.MULTILINE))


def test_segments_are_tinted_and_named(tmp_path: Path) -> None:
    graph = _graph(tmp_path, TWO_VLANS)
    dot = to_dot(graph)
    tints = _tints(dot)
    assert tints["a1"] == tints["a2"]  # co-ovs.10
    assert len({tints["a1"], tints["b1"], tints["c1"]}) == 3
    assert tints["c1"] == tints["c2"]  # the point-to-point segment
    for segment in graph.segments:
        assert f'<td align="left">{segment.name} (' in dot  # the legend names each one


def test_a_segment_on_one_switch_is_boxed_and_one_across_switches_is_not(tmp_path: Path) -> None:
    dot = to_dot(_graph(tmp_path, campus_yaml()))
    boxes = re.findall(r'subgraph cluster_segment_\d+ \{\n    label="segment ([^ ]+) ', dot)
    assert boxes == ["cp-core", "cp-dmz"]  # the management pair; the DMZ with its bridge
    dmz = dot.split('label="segment cp-dmz')[1].split("  }")[0]
    assert all(f'"{n}" [' in dmz for n in ("web1", "web2", "dns", "mail", "cp-dmz"))
    assert '"r1" [' not in dmz  # on five segments


def _png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG_MAGIC)
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    return width, height


def test_a_30_node_lab_renders_at_a_readable_size(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "campus.png"
    code, err = _run(capsys, "graph", _write(tmp_path, campus_yaml()), "-o", str(out))
    assert code == 0, err
    width, height = _png_size(out.read_bytes())
    # at 96 dpi with 11-point text: 1359x2175 when this was written. A box per VLAN across the
    # switches made it 1617x2687 and tangled; one cell per MAC and address made it 2972 high.
    assert width <= 1800 and height <= 2600, (width, height)
    svg = tmp_path / "campus.svg"
    code, err = _run(capsys, "graph", _write(tmp_path, campus_yaml()), "-o", str(svg))
    assert code == 0, err
    assert svg.read_text().count('class="node"') == 30 + 5 + 1  # the nodes, the switches, the legend

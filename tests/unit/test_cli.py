"""The `vnet` command: validate, graph, schema, --version; output formats and exit codes (README:
Commands).

Most tests run `vnet.cli.main` in-process (fast); a few run the installed `.venv/bin/vnet` as a
subprocess to prove the real entry point, e.g. the exit code 69 when Graphviz is not on PATH.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from vnet import __version__
from vnet.cli import main

VNET = Path(sys.executable).parent / "vnet"  # the console script installed next to this Python
VNET_CMD = [str(VNET)] if VNET.exists() else [sys.executable, "-m", "vnet"]

GOOD = """\
name: good
networks:
  lan: {subnet: 10.10.0.0/24}
switches:
  sw1: {type: ovs}
  br0: {type: linux}
nodes:
  h1: {}
  vm1: {kind: vm}
links:
  - {endpoints: [h1:eth0, sw1], vlan: 10, ip: 10.0.0.1/24}
  - {endpoints: [vm1:eth0, sw1], vlan: 10, network: lan}
  - {endpoints: [sw1, br0], trunk: [10, 20]}
"""

BAD = """\
name: bad
switches:
  sw1: {type: ovs}
nodes:
  h1: {}
links:
  - endpoints: [h1:eth0, sw1]
    vlan: 4095
  - endpoints: [h1:eth1, sw2]
"""

DIAGNOSTIC_LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<sev>error|warning)"
                             r"\[(?P<code>[a-z0-9-]+)\]: (?P<attr>\S+): (?P<message>.+)$")


class Result:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err


def vnet(capsys: pytest.CaptureFixture[str], *args: str) -> Result:
    with pytest.raises(SystemExit) as caught:
        main(list(args))
    captured = capsys.readouterr()
    return Result(int(caught.value.code or 0), captured.out, captured.err)


@pytest.fixture
def good(tmp_path: Path) -> str:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    return str(path)


@pytest.fixture
def bad(tmp_path: Path) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    return str(path)


# --- validate -------------------------------------------------------------------------------------


def test_validate_valid_file(capsys: pytest.CaptureFixture[str], good: str) -> None:
    result = vnet(capsys, "validate", good)
    assert result.code == 0
    assert result.out == f"{good}: ok (lab good: 2 nodes, 2 switches, 3 links)\n"
    assert result.err == ""


def test_validate_invalid_file(capsys: pytest.CaptureFixture[str], bad: str) -> None:
    result = vnet(capsys, "validate", bad)
    assert result.code == 65
    lines = result.err.splitlines()
    assert lines == [
        f"{bad}:8:11: error[vlan-range]: links[0].vlan: 4095 is out of range (must be ≤ 4094)",
        "    hint: VLAN ids are 1-4094",
        f"{bad}:9:26: error[endpoint-unknown]: links[1].endpoints[1]: `sw2` is not a declared switch",
        "    hint: did you mean `sw1`?",
        f"{bad}: 2 error(s)",
    ]
    match = DIAGNOSTIC_LINE.match(lines[0])
    assert match is not None
    assert (match["line"], match["col"], match["code"]) == ("8", "11", "vlan-range")
    assert result.out == ""


def test_validate_warnings_only_exits_0(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "warn.yaml"
    path.write_text(GOOD.replace("  vm1: {kind: vm}\n", "  vm1: {kind: vm}\n  idle: {}\n"))
    result = vnet(capsys, "validate", str(path))
    assert result.code == 0
    assert "warning[unlinked]: nodes.idle: `idle` is not on any link" in result.err
    assert "ok (lab good" in result.out


def test_validate_several_files(capsys: pytest.CaptureFixture[str], good: str, bad: str) -> None:
    result = vnet(capsys, "validate", good, bad, good)
    assert result.code == 65
    assert result.out.count(f"{good}: ok") == 2
    assert f"{bad}: 2 error(s)" in result.err
    assert vnet(capsys, "validate", good, good).code == 0


def test_validate_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    result = vnet(capsys, "validate", missing)
    assert result.code == 65
    assert f"{missing}: error[file-unreadable]: cannot read the file" in result.err


def test_validate_json(capsys: pytest.CaptureFixture[str], good: str, bad: str) -> None:
    result = vnet(capsys, "validate", "--json", good, bad)
    assert result.code == 65
    report: list[dict[str, Any]] = json.loads(result.out)
    assert [(r["file"], r["valid"]) for r in report] == [(good, True), (bad, False)]
    assert report[0]["diagnostics"] == []
    first = report[1]["diagnostics"][0]
    assert first == {"file": bad, "line": 8, "column": 11, "severity": "error", "code": "vlan-range",
                     "attr": "links[0].vlan", "message": "4095 is out of range (must be ≤ 4094)",
                     "hint": "VLAN ids are 1-4094"}
    assert [d["code"] for d in report[1]["diagnostics"]] == ["vlan-range", "endpoint-unknown"]
    assert result.err == ""  # nothing but JSON, and only on stdout


def test_validate_json_valid_exits_0(capsys: pytest.CaptureFixture[str], good: str) -> None:
    result = vnet(capsys, "validate", "--json", good)
    assert result.code == 0
    assert json.loads(result.out)[0]["valid"] is True


def test_validate_needs_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert vnet(capsys, "validate").code == 2


# --- graph -----------------------------------------------------------------------------------------


def test_graph_dot(capsys: pytest.CaptureFixture[str], good: str) -> None:
    result = vnet(capsys, "graph", good)
    assert result.code == 0
    dot = result.out
    assert dot.startswith('graph "good" {')
    # nodes are tables with a row (a port) per interface; MACs and colours: test_graph_render.py
    for fragment in ('"sw1" [shape=box', 'label="sw1\\novs"', 'label="br0\\nlinux"',
                     '<b>h1</b> <font point-size="9">netns</font>',
                     '<b>vm1</b> <font point-size="9">vm</font>', '<td port="if-eth0"', '10.0.0.1/24',
                     '10.10.0.1/24', '"h1":"if-eth0" -- "sw1" [', '"vm1":"if-eth0" -- "sw1" [',
                     'label="vlan 10"', '"sw1" -- "br0" [', 'label="trunk 10,20"'):
        assert fragment in dot
    assert dot.rstrip().endswith("}")


def test_graph_mermaid(capsys: pytest.CaptureFixture[str], good: str) -> None:
    result = vnet(capsys, "graph", "--format", "mermaid", good)
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0] == "graph LR"
    assert '  v2["sw1<br/>ovs"]' in lines
    assert '  v0["br0<br/>linux"]' in lines
    h1 = next(line for line in lines if line.startswith('  v1("h1<br/>netns<br/>eth0 '))
    assert h1.endswith(' 10.0.0.1/24")')  # name, kind, then each interface: name, MAC, addresses
    assert '  v1 ---|"h1:eth0<br/>vlan 10"| v2' in lines
    assert '  v2 ---|"trunk 10,20"| v0' in lines


def test_graph_to_a_file(capsys: pytest.CaptureFixture[str], good: str, tmp_path: Path) -> None:
    out = tmp_path / "lab.dot"
    result = vnet(capsys, "graph", "-o", str(out), good)
    assert result.code == 0
    assert result.out == ""
    assert out.read_text().startswith('graph "good"')
    assert f"wrote {out} (dot," in result.err


def test_graph_svg(capsys: pytest.CaptureFixture[str], good: str, tmp_path: Path) -> None:
    out = tmp_path / "lab.svg"
    result = vnet(capsys, "graph", "--format", "svg", "-o", str(out), good)
    assert result.code == 0, result.err
    svg = out.read_text()
    assert "<svg" in svg
    assert "sw1" in svg
    assert "10.0.0.1/24" in svg


def test_graph_of_an_invalid_file(capsys: pytest.CaptureFixture[str], bad: str) -> None:
    result = vnet(capsys, "graph", bad)
    assert result.code == 65
    assert "error[vlan-range]" in result.err
    assert result.out == ""


def test_graph_unknown_format(capsys: pytest.CaptureFixture[str], good: str) -> None:
    assert vnet(capsys, "graph", "--format", "gif", good).code == 2


def test_graph_svg_without_graphviz_exits_69(good: str, tmp_path: Path) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    done = subprocess.run([*VNET_CMD, "graph", "--format", "svg", good], capture_output=True, text=True,
                          env={"PATH": str(empty_bin), "LC_ALL": "C.UTF-8"}, timeout=60, check=False)
    assert done.returncode == 69, done.stderr
    assert "Graphviz `dot`" in done.stderr
    assert "hint: install it (Debian: apt-get install graphviz)" in done.stderr
    assert done.stdout == ""


# --- schema and version -------------------------------------------------------------------------------


def _objects(node: Any) -> list[dict[str, Any]]:
    """Every JSON Schema object definition (a dict with `properties`) inside `node`."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if "properties" in node:
            found.append(node)
        for value in node.values():
            found.extend(_objects(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_objects(value))
    return found


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def test_schema_is_a_usable_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    result = vnet(capsys, "schema")
    assert result.code == 0
    schema = json.loads(result.out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    assert schema["required"] == ["name"]
    assert "$defs" in schema
    assert schema["properties"]["links"]["items"] == {"$ref": "#/$defs/Link"}
    assert set(schema["properties"]) >= {"name", "defaults", "networks", "switches", "nodes", "links",
                                        "sriov", "expect"}
    objects = _objects(schema)
    assert len(objects) >= 10
    assert all(o.get("additionalProperties") is False for o in objects)
    for ref in _refs(schema):
        assert ref.startswith("#/$defs/")
        assert ref.removeprefix("#/$defs/") in schema["$defs"]
    assert "from" in schema["$defs"]["Expectation"]["properties"]  # the YAML spelling, not `source`
    assert {"impair", "state"} <= set(schema["$defs"]["Link"]["properties"])
    vlan = schema["$defs"]["Link"]["properties"]["vlan"]
    assert {"minimum": 1, "maximum": 4094, "type": "integer"}.items() <= vlan["anyOf"][0].items()


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    result = vnet(capsys, "--version")
    assert result.code == 0
    assert result.out == f"vnet, version {__version__}\n"


def test_installed_entry_point(good: str, bad: str) -> None:
    done = subprocess.run([*VNET_CMD, "validate", good, bad], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 65
    assert f"{good}: ok" in done.stdout
    assert f"{bad}:8:11: error[vlan-range]: links[0].vlan:" in done.stderr
    version = subprocess.run([*VNET_CMD, "--version"], capture_output=True, text=True, timeout=60,
                             check=False)
    assert (version.returncode, version.stdout) == (0, f"vnet, version {__version__}\n")


def test_status_table_prints_values_as_they_are(capsys: pytest.CaptureFixture[str]) -> None:
    """A MAC holds rich's emoji codes (`:ab:`) and an address may hold `[`: printed unchanged."""
    from vnet.cli.lab import _node_table  # noqa: PLC0415
    from vnet.cli.output import console  # noqa: PLC0415

    row = {"lab": "t", "nodes": [{"name": "h1", "kind": "netns", "facts": {"route": ["[x] via y"]},
                                  "interfaces": [{"name": "eth0", "facts": {"mac": ["26:50:90:ab:6a:e8"]}}]}]}
    console.print(_node_table(row))
    shown = capsys.readouterr().out
    assert "26:50:90:ab:6a:e8" in shown and "[x] via y" in shown, shown

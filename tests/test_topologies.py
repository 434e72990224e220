"""The reference labs in topologies/: valid without warnings, and their graph summaries frozen.

Each `topologies/<name>.yaml` has a golden `tests/golden/good/<name>.json` holding
`LabGraph.summary()`: nodes, switches, interfaces with MACs and addresses, L2 segments and the
listed or derived reachability probes. Rewrite them with `pytest --update-golden`, then read the
diff: a golden file that freezes a wrong answer is a bug.
"""

from __future__ import annotations

import json
from pathlib import Path

import netaddr
import pytest

import vnet
from vnet.topology.graph import build_graph

REPO = Path(__file__).resolve().parent.parent
TOPOLOGIES = sorted((REPO / "topologies").glob("*.yaml"))
GOLDEN = REPO / "tests" / "golden" / "good"
REQUIRED = {"quickstart", "vlan-tenants", "routed", "interconnect", "tap-external", "sriov", "linear"}
# Labs are applied for real in CI: only benchmarking (RFC 2544) and unique-local addresses.
ALLOWED = (netaddr.IPNetwork("198.18.0.0/15"), netaddr.IPNetwork("fd00::/8"))


def _ids(path: Path) -> str:
    return path.stem


def test_reference_labs_exist() -> None:
    assert {p.stem for p in TOPOLOGIES} >= REQUIRED


def test_every_golden_file_has_a_topology() -> None:
    stale = {p.stem for p in GOLDEN.glob("*.json")} - {p.stem for p in TOPOLOGIES}
    assert not stale, f"golden files without a topology: {sorted(stale)}"


@pytest.mark.parametrize("path", TOPOLOGIES, ids=_ids)
def test_valid_without_warnings(path: Path) -> None:
    lab, diagnostics = vnet.diagnose(str(path))
    shown = "\n".join(d.format() for d in diagnostics)
    assert lab is not None, shown
    assert not diagnostics, shown


@pytest.mark.parametrize("path", TOPOLOGIES, ids=_ids)
def test_starts_with_a_comment_block(path: Path) -> None:
    lines = path.read_text().splitlines()
    head = [line for line in lines[:5] if line.startswith("#")]
    assert len(head) >= 3, f"{path.name} should start with a comment saying what it shows"
    assert "vnet validate" in path.read_text(), f"{path.name} should say how to use it"


@pytest.mark.parametrize("path", TOPOLOGIES, ids=_ids)
def test_addresses_stay_in_test_ranges(path: Path) -> None:
    lab = vnet.load(str(path))
    subnets = [netaddr.IPNetwork(n.subnet) for n in lab.topology.networks.values()]
    addresses = [a for i in lab.interfaces.values() for a in i.addresses]
    gateways = [netaddr.IPAddress(r.via) for node in lab.topology.nodes.values()
                for r in getattr(node, "routes", ())]
    for value in [*subnets, *addresses, *gateways]:
        assert any(value in allowed for allowed in ALLOWED), f"{path.name}: {value} is outside {ALLOWED}"


@pytest.mark.parametrize("path", TOPOLOGIES, ids=_ids)
def test_summary_matches_golden(path: Path, update_golden: bool) -> None:
    summary = build_graph(vnet.load(str(path))).summary()
    golden = GOLDEN / f"{path.stem}.json"
    if update_golden:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        golden.write_text(json.dumps(summary, indent=2) + "\n")
        return
    assert golden.exists(), f"no {golden.relative_to(REPO)}; run pytest --update-golden"
    assert json.loads(golden.read_text()) == summary, (
        f"{path.name}: the summary differs from {golden.relative_to(REPO)}; if the change is right, "
        "rerun with --update-golden and review the diff")


def test_quickstart_shape() -> None:
    """What the README and tools/quickstart.sh promise about the quickstart lab."""
    lab = vnet.load(str(REPO / "topologies" / "quickstart.yaml"))
    graph = build_graph(lab)
    assert lab.name == "quickstart"
    kinds = [n.kind for n in lab.topology.nodes.values()]
    assert kinds.count("vm") == 3 and "netns" in kinds
    shared = max(graph.segments, key=lambda s: len(s.interfaces))
    assert len(shared.interfaces) == 4 and shared.vlans == (10,)
    probes = graph.expectations()
    assert any(not p.reach for p in probes)
    assert lab.topology.expect is not None

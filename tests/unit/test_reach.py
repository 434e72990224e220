"""The reachability matrix: derived from segments and subnets, or taken from `expect`."""

from __future__ import annotations

from pathlib import Path

import vnet
from vnet.topology.graph import build_graph
from vnet.topology.reach import Probe


def probes(tmp_path: Path, nodes: str, links: str, switches: str = "  sw1: {type: ovs}\n",
           expect: str = "") -> list[Probe]:
    text = f"name: reach\nswitches:\n{switches}nodes:\n{nodes}links:\n{links}{expect}"
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    return build_graph(vnet.load(str(path))).expectations()


def pairs(found: list[Probe], reach: bool) -> set[tuple[str, str]]:
    return {(p.source, p.target) for p in found if p.reach is reach}


def hosts(*names: str) -> str:
    return "".join(f"  {n}: {{}}\n" for n in names)


def test_same_segment_and_subnet_must_reach_both_ways(tmp_path: Path) -> None:
    found = probes(tmp_path, hosts("a", "b"),
                   "  - {endpoints: [a:eth0, sw1], ip: 10.0.0.1/24}\n"
                   "  - {endpoints: [b:eth0, sw1], ip: 10.0.0.2/24}\n")
    assert pairs(found, True) == {("a", "b"), ("b", "a")}
    assert pairs(found, False) == set()
    a_to_b = next(p for p in found if p.source == "a")
    assert [str(x.ip) for x in a_to_b.addresses] == ["10.0.0.2"]
    assert "sw1" in a_to_b.reason
    assert str(a_to_b) == "a -> b (10.0.0.2)"


def test_same_segment_different_subnets_is_not_listed(tmp_path: Path) -> None:
    found = probes(tmp_path, hosts("a", "b", "c"),
                   "  - {endpoints: [a:eth0, sw1], ip: 10.0.0.1/24}\n"
                   "  - {endpoints: [b:eth0, sw1], ip: 10.0.1.2/24}\n"
                   "  - {endpoints: [c:eth0, sw1], ip: 10.0.0.3/24}\n")
    assert pairs(found, True) == {("a", "c"), ("c", "a")}
    assert pairs(found, False) == set()  # b shares the segment: not isolated either


def test_vlans_on_one_switch_are_isolated(tmp_path: Path) -> None:
    found = probes(tmp_path, hosts("a", "b"),
                   "  - {endpoints: [a:eth0, sw1], vlan: 10, ip: 10.0.0.1/24}\n"
                   "  - {endpoints: [b:eth0, sw1], vlan: 20, ip: 10.0.0.2/24}\n")
    assert pairs(found, True) == set()
    assert pairs(found, False) == {("a", "b"), ("b", "a")}
    a_to_b = next(p for p in found if p.source == "a")
    assert str(a_to_b) == "a -x b (10.0.0.2)"


def test_segments_joined_by_a_router_are_not_isolated(tmp_path: Path) -> None:
    found = probes(tmp_path, hosts("a", "b") + "  r1: {forwarding: true}\n",
                   "  - {endpoints: [a:eth0, sw1], vlan: 10, ip: 10.0.10.1/24}\n"
                   "  - {endpoints: [r1:eth0, sw1], vlan: 10, ip: 10.0.10.254/24}\n"
                   "  - {endpoints: [b:eth0, sw1], vlan: 20, ip: 10.0.20.1/24}\n"
                   "  - {endpoints: [r1:eth1, sw1], vlan: 20, ip: 10.0.20.254/24}\n")
    assert pairs(found, False) == set()
    # Routed pairs are only checked when listed: a -> b is not derived.
    assert pairs(found, True) == {("a", "r1"), ("r1", "a"), ("b", "r1"), ("r1", "b")}


def test_a_node_that_does_not_forward_does_not_join_segments(tmp_path: Path) -> None:
    found = probes(tmp_path, hosts("a", "b", "m"),
                   "  - {endpoints: [a:eth0, sw1], vlan: 10, ip: 10.0.10.1/24}\n"
                   "  - {endpoints: [m:eth0, sw1], vlan: 10, ip: 10.0.10.254/24}\n"
                   "  - {endpoints: [b:eth0, sw1], vlan: 20, ip: 10.0.20.1/24}\n"
                   "  - {endpoints: [m:eth1, sw1], vlan: 20, ip: 10.0.20.254/24}\n")
    assert pairs(found, False) == {("a", "b"), ("b", "a")}


def test_tap_nodes_are_never_sources_nor_derived_reach_targets(tmp_path: Path) -> None:
    # The guest behind a tap node is started by someone else: vnet cannot probe from it, and
    # the derived matrix does not demand it answers (list it in `expect` to check it).
    found = probes(tmp_path, hosts("a", "c") + "  ext1: {kind: tap}\n",
                   "  - {endpoints: [a:eth0, sw1], ip: 10.0.0.1/24}\n"
                   "  - {endpoints: [ext1:eth0, sw1], ip: 10.0.0.2/24}\n"
                   "  - {endpoints: [c:eth0, sw1], vlan: 30, ip: 10.0.30.1/24}\n")
    assert ("a", "ext1") not in pairs(found, True)
    assert all(p.source != "ext1" for p in found)
    assert ("a", "c") in pairs(found, False)


def test_tap_nodes_may_forward_so_they_join_segments(tmp_path: Path) -> None:
    found = probes(tmp_path, hosts("a", "b") + "  ext1: {kind: tap}\n",
                   "  - {endpoints: [a:eth0, sw1], vlan: 10, ip: 10.0.10.1/24}\n"
                   "  - {endpoints: [ext1:eth0, sw1], vlan: 10, ip: 10.0.10.2/24}\n"
                   "  - {endpoints: [ext1:eth1, sw1], vlan: 20, ip: 10.0.20.2/24}\n"
                   "  - {endpoints: [b:eth0, sw1], vlan: 20, ip: 10.0.20.1/24}\n")
    assert pairs(found, False) == set()


def test_isolation_pairs_use_only_address_families_the_source_has(tmp_path: Path) -> None:
    found = probes(tmp_path, hosts("a", "b", "c"),
                   "  - {endpoints: [a:eth0, sw1], vlan: 10, ip: 10.0.10.1/24}\n"
                   "  - {endpoints: [b:eth0, sw1], vlan: 20, ip: [10.0.20.1/24, 'fd00:20::1/64']}\n"
                   "  - {endpoints: [c:eth0, sw1], vlan: 30, ip: 'fd00:30::1/64'}\n")
    by_pair = {(p.source, p.target): [str(x.ip) for x in p.addresses] for p in found if not p.reach}
    assert by_pair[("a", "b")] == ["10.0.20.1"]
    assert by_pair[("c", "b")] == ["fd00:20::1"]
    assert ("a", "c") not in by_pair  # no common family: nothing to probe
    assert ("c", "a") not in by_pair
    assert by_pair[("b", "a")] == ["10.0.10.1"]


def test_nodes_without_addresses_are_not_sources(tmp_path: Path) -> None:
    found = probes(tmp_path, hosts("a", "b", "c"),
                   "  - {endpoints: [a:eth0, sw1], ip: 10.0.0.1/24}\n"
                   "  - {endpoints: [b:eth0, sw1]}\n"
                   "  - {endpoints: [c:eth0, sw1], vlan: 5, ip: 10.0.5.1/24}\n")
    assert all(p.source != "b" and p.target != "b" for p in found)


def test_listed_expect_replaces_the_derived_matrix(tmp_path: Path) -> None:
    found = probes(tmp_path, hosts("a", "b", "c") + "  r1: {forwarding: true}\n",
                   "  - {endpoints: [a:eth0, sw1], vlan: 10, ip: 10.0.10.1/24}\n"
                   "  - {endpoints: [r1:eth0, sw1], vlan: 10, ip: 10.0.10.254/24}\n"
                   "  - {endpoints: [b:eth0, sw1], vlan: 20, ip: [10.0.20.1/24, 'fd00::1/64']}\n"
                   "  - {endpoints: [r1:eth1, sw1], vlan: 20, ip: 10.0.20.254/24}\n"
                   "  - {endpoints: [c:eth0, sw1], vlan: 30, ip: 10.0.30.1/24}\n",
                   expect="expect:\n  - {from: a, to: b}\n  - {from: a, to: c, reach: false}\n"
                          "  - {from: b, to: 'r1:eth1'}\n")
    assert [str(p) for p in found] == ["a -> b (10.0.20.1)", "a -x c (10.0.30.1)",
                                      "b -> r1:eth1 (10.0.20.254)"]
    assert all(p.reason == "listed in expect" for p in found)


def test_listed_reach_prefers_the_address_on_a_shared_subnet(tmp_path: Path) -> None:
    found = probes(tmp_path, hosts("a", "b"),
                   "  - {endpoints: [a:eth0, b:eth0], ip: [10.0.0.1/30, 10.0.0.2/30]}\n"
                   "  - {endpoints: [a:eth1, b:eth1], ip: [10.0.1.1/30, 10.0.1.2/30]}\n"
                   "  - {endpoints: [b:eth2, sw1], ip: 10.0.9.1/24}\n",
                   expect="expect:\n  - {from: a, to: b}\n  - {from: a, to: b:eth2}\n")
    assert [str(p) for p in found] == ["a -> b (10.0.0.2)", "a -> b:eth2 (10.0.9.1)"]


def test_empty_expect_means_nothing_to_prove(tmp_path: Path) -> None:
    found = probes(tmp_path, hosts("a", "b"),
                   "  - {endpoints: [a:eth0, sw1], ip: 10.0.0.1/24}\n"
                   "  - {endpoints: [b:eth0, sw1], vlan: 7, ip: 10.0.0.2/24}\n",
                   expect="expect: []\n")
    assert found == []


def test_summary_says_where_the_expectations_come_from(tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    base = ("name: sum\nswitches:\n  sw1: {type: ovs}\nnodes:\n  a: {}\n  b: {}\nlinks:\n"
            "  - {endpoints: [a:eth0, sw1], ip: 10.0.0.1/24}\n"
            "  - {endpoints: [b:eth0, sw1], ip: 10.0.0.2/24}\n")
    path.write_text(base)
    derived = build_graph(vnet.load(str(path))).summary()["expect"]
    assert derived == {"source": "derived", "probes": ["a -> b (10.0.0.2)", "b -> a (10.0.0.1)"]}
    path.write_text(base + "expect:\n  - {from: b, to: a, reach: false}\n")
    listed = build_graph(vnet.load(str(path))).summary()["expect"]
    assert listed == {"source": "listed", "probes": ["b -x a (10.0.0.1)"]}

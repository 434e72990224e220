"""The rows verify proves: derived from segments, subnets and routes, or taken from `expect`."""

from __future__ import annotations

from pathlib import Path

import vnet
from vnet.topology.graph import build_graph
from vnet.topology.reach import DEFAULT_PORT, Probe


def probes(tmp_path: Path, nodes: str, links: str, switches: str = "  sw1: {type: ovs}\n",
           expect: str = "") -> list[Probe]:
    text = f"name: reach\nswitches:\n{switches}nodes:\n{nodes}links:\n{links}{expect}"
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    return build_graph(vnet.load(str(path))).expectations()


def pairs(found: list[Probe], reach: bool, what: str = "icmp") -> set[tuple[str, str]]:
    return {(p.source, p.target) for p in found if p.reach is reach and p.what == what}


def rows(found: list[Probe], source: str, target: str) -> list[str]:
    return [f"{p.what} {p.address.ip}" for p in found if (p.source, p.target) == (source, target)]


def hosts(*names: str) -> str:
    return "".join(f"  {n}: {{}}\n" for n in names)


def test_same_segment_and_subnet_prove_icmp_tcp_and_the_mtu_both_ways(tmp_path: Path) -> None:
    found = probes(tmp_path, hosts("a", "b"),
                   "  - {endpoints: [a:eth0, sw1], ip: 10.0.0.1/24}\n"
                   "  - {endpoints: [b:eth0, sw1], ip: 10.0.0.2/24}\n")
    assert pairs(found, True) == {("a", "b"), ("b", "a")}
    assert pairs(found, True, f"tcp/{DEFAULT_PORT}") == {("a", "b"), ("b", "a")}
    assert pairs(found, True, "mtu 1500") == {("a", "b"), ("b", "a")}
    assert pairs(found, False) == set()
    assert rows(found, "a", "b") == ["icmp 10.0.0.2", "tcp/7 10.0.0.2", "mtu 1500 10.0.0.2"]
    a_to_b = next(p for p in found if p.source == "a")
    assert "sw1" in a_to_b.reason and "10.0.0.0/24" in a_to_b.reason
    assert str(a_to_b) == "a -> b (10.0.0.2)" and a_to_b.family == "ipv4"


def test_the_mtu_row_is_the_largest_frame_both_ends_allow(tmp_path: Path) -> None:
    found = probes(tmp_path, hosts("a", "b"),
                   "  - {endpoints: [a:eth0, sw1], ip: 10.0.0.1/24, mtu: 9000}\n"
                   "  - {endpoints: [b:eth0, sw1], ip: 10.0.0.2/24, mtu: 4000}\n",
                   switches="  sw1: {type: ovs, mtu: 9000}\n")
    assert {p.size for p in found if p.size} == {4000}


def test_every_subnet_a_pair_shares_is_proved(tmp_path: Path) -> None:
    """Two hosts on a bridge subnet and on a /30: both paths are rows (isolating the bridge
    ports by hand must fail verify although the /30 still works)."""
    found = probes(tmp_path, hosts("a", "b"),
                   "  - {endpoints: [a:eth0, br1], ip: 198.18.0.1/24}\n"
                   "  - {endpoints: [b:eth0, br1], ip: 198.18.0.2/24}\n"
                   "  - {endpoints: [a:eth1, b:eth1], ip: [198.18.1.1/30, 198.18.1.2/30]}\n",
                   switches="  br1: {type: linux}\n")
    assert sorted(rows(found, "a", "b")) == ["icmp 198.18.0.2", "icmp 198.18.1.2", "mtu 1500 198.18.0.2",
                                             "mtu 1500 198.18.1.2", "tcp/7 198.18.0.2", "tcp/7 198.18.1.2"]


def test_each_family_is_its_own_row(tmp_path: Path) -> None:
    found = probes(tmp_path, hosts("a", "b"),
                   "  - {endpoints: [a:eth0, sw1], ip: [10.0.0.1/24, 'fd00::1/64']}\n"
                   "  - {endpoints: [b:eth0, sw1], ip: [10.0.0.2/24, 'fd00::2/64']}\n")
    icmp = [p for p in found if (p.source, p.what) == ("a", "icmp")]
    assert [(p.family, str(p.address.ip)) for p in icmp] == [("ipv4", "10.0.0.2"), ("ipv6", "fd00::2")]


def test_same_segment_different_subnets_is_not_listed(tmp_path: Path) -> None:
    found = probes(tmp_path, hosts("a", "b", "c"),
                   "  - {endpoints: [a:eth0, sw1], ip: 10.0.0.1/24}\n"
                   "  - {endpoints: [b:eth0, sw1], ip: 10.0.1.2/24}\n"
                   "  - {endpoints: [c:eth0, sw1], ip: 10.0.0.3/24}\n")
    assert pairs(found, True) == {("a", "c"), ("c", "a")}
    assert pairs(found, False) == set()  # b shares the segment: not isolated either


def test_vlans_on_one_switch_are_isolated_by_icmp_and_tcp(tmp_path: Path) -> None:
    found = probes(tmp_path, hosts("a", "b", "a2", "b2"),
                   "  - {endpoints: [a:eth0, sw1], vlan: 10, ip: 10.0.0.1/24}\n"
                   "  - {endpoints: [a2:eth0, sw1], vlan: 10, ip: 10.0.0.11/24}\n"
                   "  - {endpoints: [b:eth0, sw1], vlan: 20, ip: 10.0.0.2/24}\n"
                   "  - {endpoints: [b2:eth0, sw1], vlan: 20, ip: 10.0.0.12/24}\n")
    assert ("a", "b") in pairs(found, False) and ("b", "a") in pairs(found, False)
    assert ("a", "b") in pairs(found, False, "tcp/7")
    a_to_b = next(p for p in found if (p.source, p.target, p.what) == ("a", "b", "icmp"))
    assert str(a_to_b) == "a -x b (10.0.0.2)"
    assert not any(p.control for p in found)  # every isolated source has a reach row already


def test_an_isolated_source_without_reach_rows_gets_a_positive_control(tmp_path: Path) -> None:
    found = probes(tmp_path, hosts("a", "b", "c"),
                   "  - {endpoints: [a:eth0, sw1], vlan: 10, ip: 10.0.0.1/24}\n"
                   "  - {endpoints: [b:eth0, sw1], vlan: 10, ip: 10.0.0.2/24}\n"
                   "  - {endpoints: [c:eth0, sw1], vlan: 20, ip: 10.0.0.3/24}\n",
                   expect="expect:\n  - {from: a, to: c, reach: false}\n"
                          "  - {from: a, to: c, proto: tcp, reach: false}\n")
    controls = [(p.source, p.target, p.what) for p in found if p.control]
    assert controls == [("a", "b", "icmp"), ("a", "b", "tcp/7")]
    assert all(p.reach for p in found if p.control)


def test_an_isolated_loner_gets_no_control(tmp_path: Path) -> None:
    found = probes(tmp_path, hosts("a", "c"),
                   "  - {endpoints: [a:eth0, sw1], vlan: 10, ip: 10.0.0.1/24}\n"
                   "  - {endpoints: [c:eth0, sw1], vlan: 20, ip: 10.0.0.3/24}\n")
    assert not any(p.control for p in found)  # verify reports its isolation rows `unproven`


def test_routed_pairs_with_routes_both_ways_must_reach(tmp_path: Path) -> None:
    found = probes(tmp_path, "  a: {routes: [{to: default, via: 10.0.10.254}]}\n"
                             "  b: {routes: [{to: 10.0.10.0/24, via: 10.0.20.254}]}\n"
                             "  c: {}\n  r1: {forwarding: true}\n",
                   "  - {endpoints: [a:eth0, sw1], vlan: 10, ip: 10.0.10.1/24}\n"
                   "  - {endpoints: [r1:eth0, sw1], vlan: 10, ip: 10.0.10.254/24}\n"
                   "  - {endpoints: [b:eth0, sw1], vlan: 20, ip: 10.0.20.1/24}\n"
                   "  - {endpoints: [c:eth0, sw1], vlan: 20, ip: 10.0.20.2/24}\n"
                   "  - {endpoints: [r1:eth1, sw1], vlan: 20, ip: 10.0.20.254/24}\n")
    assert pairs(found, False) == set()
    routed = {(p.source, p.target) for p in found if "routed" in p.reason}
    # a <-> b: a route there and back through r1; c has no route back to a's LAN: not derived
    assert routed == {("a", "b"), ("b", "a")}
    assert rows(found, "a", "b") == ["icmp 10.0.20.1", "tcp/7 10.0.20.1"]
    assert "r1" in next(p.reason for p in found if (p.source, p.target) == ("a", "b"))


def test_a_router_that_does_not_forward_routes_nothing(tmp_path: Path) -> None:
    found = probes(tmp_path, "  a: {routes: [{to: default, via: 10.0.10.254}]}\n"
                             "  b: {routes: [{to: default, via: 10.0.20.254}]}\n  m: {}\n",
                   "  - {endpoints: [a:eth0, sw1], vlan: 10, ip: 10.0.10.1/24}\n"
                   "  - {endpoints: [m:eth0, sw1], vlan: 10, ip: 10.0.10.254/24}\n"
                   "  - {endpoints: [b:eth0, sw1], vlan: 20, ip: 10.0.20.1/24}\n"
                   "  - {endpoints: [m:eth1, sw1], vlan: 20, ip: 10.0.20.254/24}\n")
    assert not any("routed" in p.reason for p in found)
    assert {("a", "b"), ("b", "a")} <= pairs(found, False)


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


def test_isolation_rows_use_only_address_families_the_source_has(tmp_path: Path) -> None:
    found = probes(tmp_path, hosts("a", "b", "c"),
                   "  - {endpoints: [a:eth0, sw1], vlan: 10, ip: 10.0.10.1/24}\n"
                   "  - {endpoints: [b:eth0, sw1], vlan: 20, ip: [10.0.20.1/24, 'fd00:20::1/64']}\n"
                   "  - {endpoints: [c:eth0, sw1], vlan: 30, ip: 'fd00:30::1/64'}\n")
    by_pair: dict[tuple[str, str], list[str]] = {}
    for p in found:
        if not p.reach and p.what == "icmp":
            by_pair.setdefault((p.source, p.target), []).append(str(p.address.ip))
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


def test_listed_protocols_ports_and_mtu(tmp_path: Path) -> None:
    found = probes(tmp_path, hosts("a", "b"),
                   "  - {endpoints: [a:eth0, sw1], ip: [10.0.0.1/24, 'fd00::1/64'], mtu: 9000}\n"
                   "  - {endpoints: [b:eth0, sw1], ip: [10.0.0.2/24, 'fd00::2/64'], mtu: 9000}\n",
                   expect="expect:\n  - {from: a, to: b, proto: tcp, port: 80}\n"
                          "  - {from: a, to: b, proto: udp}\n"
                          "  - {from: a, to: b, mtu: 9000}\n"
                          "  - {from: b, to: a, proto: udp, port: 53, reach: false}\n")
    assert [str(p) for p in found] == [
        "a -> b tcp/80 (10.0.0.2)", "a -> b tcp/80 (fd00::2)", "a -> b udp/7 (10.0.0.2)",
        "a -> b udp/7 (fd00::2)", "a -> b mtu 9000 (10.0.0.2)", "a -> b mtu 9000 (fd00::2)",
        "b -x a udp/53 (10.0.0.1)", "b -x a udp/53 (fd00::1)",
        "b -> a udp/7 (10.0.0.1) [control]", "b -> a udp/7 (fd00::1) [control]"]


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

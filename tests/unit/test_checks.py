"""Semantic checks: what is accepted at the edges, what is reported, and what is not reported twice.

The golden files (tests/golden/bad) pin the exact text of each diagnostic; these tests pin the
behaviour around them: boundary values that must pass, warnings that must not fail a lab, and
consequences of one mistake that must not be reported as further mistakes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import vnet
from vnet.errors import Diagnostic, Severity, TopologyError, sort_diagnostics
from vnet.topology import diagnose, loader

HEAD = ("name: chk\nswitches:\n  sw1: {type: ovs}\n  br0: {type: linux}\n"
        "  brf: {type: linux, vlan_filtering: true}\n")


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    return str(path)


def run(tmp_path: Path, text: str) -> tuple[vnet.Lab | None, list[Diagnostic]]:
    return diagnose(write(tmp_path, text))


def codes(diagnostics: list[Diagnostic]) -> list[str]:
    return [d.code for d in sort_diagnostics(diagnostics)]


def ok(tmp_path: Path, text: str) -> vnet.Lab:
    lab, diagnostics = run(tmp_path, text)
    assert lab is not None, [d.format() for d in diagnostics]
    return lab


# --- boundaries that are valid ---------------------------------------------------------------------


def test_the_design_example_is_valid_once_ext1_is_linked(tmp_path: Path) -> None:
    lab = ok(tmp_path, """\
name: demo
defaults:
  mtu: 1500
  ovs_datapath: auto
networks:
  lan10: {subnet: 10.10.0.0/24}
switches:
  sw1: {type: ovs, fail_mode: standalone, stp: false}
  sw2: {type: linux, stp: false}
nodes:
  h1: {kind: netns, routes: [{to: default, via: 10.10.0.254}]}
  r1: {kind: netns, forwarding: true}
  vm1: {kind: vm, memory: 256, vcpus: 1, image: tiny}
  ext1: {kind: tap}
links:
  - endpoints: [h1:eth0, sw1]
    vlan: 10
    ip: 10.10.0.1/24
  - endpoints: [vm1:eth0, sw1]
    vlan: 10
    network: lan10
  - endpoints: [sw1, sw2]
    trunk: [10, 20]
  - endpoints: [h1:eth1, r1:eth0]
    ip: [10.0.0.1/30, 10.0.0.2/30]
    mtu: 9000
  - endpoints: [ext1:eth0, sw2]
    ip: 10.20.0.9/24
expect:
  - {from: h1, to: vm1}
  - {from: h1, to: ext1, reach: false}
""")
    assert lab.warnings == ()
    assert [str(a) for a in lab.interfaces[("vm1", "eth0")].addresses] == ["10.10.0.2/24"]
    assert len(lab.links) == 5


@pytest.mark.parametrize("vlan", [1, 4094])
def test_vlan_bounds_are_valid(tmp_path: Path, vlan: int) -> None:
    ok(tmp_path, HEAD + f"nodes:\n  h1: {{}}\nlinks:\n  - {{endpoints: [h1:eth0, sw1], vlan: {vlan}}}\n"
                        "  - {endpoints: [br0, brf]}\n")


def test_fifteen_character_interface_name_is_valid(tmp_path: Path) -> None:
    lab = ok(tmp_path, HEAD + "nodes:\n  h1: {}\nlinks:\n  - {endpoints: [h1:abcdefghijklmno, sw1]}\n"
                              "  - {endpoints: [br0, brf]}\n")
    assert ("h1", "abcdefghijklmno") in lab.interfaces


def test_vlan_on_a_link_with_one_vlan_aware_end_is_valid(tmp_path: Path) -> None:
    ok(tmp_path, HEAD + "links:\n  - {endpoints: [sw1, br0], vlan: 30}\n"
                        "  - {endpoints: [brf, br0], trunk: [5]}\n")


def test_trunk_on_vlan_filtering_bridge_is_valid(tmp_path: Path) -> None:
    ok(tmp_path, HEAD + "links:\n  - {endpoints: [sw1, brf], trunk: [10, 20]}\n  - {endpoints: [br0, sw1]}\n")


def test_route_through_a_connected_gateway_has_no_warning(tmp_path: Path) -> None:
    lab = ok(tmp_path, HEAD + "nodes:\n  h1:\n    routes:\n      - {to: default, via: 10.0.0.254}\n"
                              "      - {to: 'fd00:9::/64', via: 'fd00::fe', metric: 10}\n"
                              "links:\n  - {endpoints: [h1:eth0, sw1], ip: [10.0.0.1/24, 'fd00::1/64']}\n"
                              "  - {endpoints: [br0, brf]}\n")
    assert lab.warnings == ()


def test_sriov_vf_settings_are_valid(tmp_path: Path) -> None:
    ok(tmp_path, "name: vf\nsriov:\n  enp3s0f0:\n    num_vfs: 2\n    vfs:\n"
                 "      0: {mac: '02:00:00:00:00:01', vlan: 10, qos: 3, spoofchk: true, trust: false,\n"
                 "          min_tx_rate: 10, max_tx_rate: 100, link_state: auto}\n"
                 "nodes:\n  h1: {}\nlinks:\n"
                 "  - {endpoints: ['sriov:enp3s0f0/vf0', h1:eth0], ip: 10.0.0.1/24}\n")


# --- warnings do not fail a lab ------------------------------------------------------------------


def test_warnings_are_kept_on_a_valid_lab(tmp_path: Path) -> None:
    lab = ok(tmp_path, HEAD + "nodes:\n  h1:\n    routes: [{to: default, via: 192.168.1.1}]\n  idle: {}\n"
                              "links:\n  - {endpoints: [h1:eth0, sw1], ip: 10.0.0.1/24}\n"
                              "  - {endpoints: [br0, brf]}\n")
    assert {(w.code, w.attr) for w in lab.warnings} == {
        ("route-gateway-unreachable", "nodes.h1.routes[0].via"), ("unlinked", "nodes.idle")}
    assert all(w.severity is Severity.WARNING for w in lab.warnings)


def test_duplicate_expectation_is_a_warning(tmp_path: Path) -> None:
    lab = ok(tmp_path, HEAD + "nodes:\n  a: {}\n  b: {}\nlinks:\n"
                              "  - {endpoints: [a:eth0, sw1], ip: 10.0.0.1/24}\n"
                              "  - {endpoints: [b:eth0, sw1], ip: 10.0.0.2/24}\n  - {endpoints: [br0, brf]}\n"
                              "expect:\n  - {from: a, to: b}\n  - {from: a, to: b}\n")
    assert [(w.code, w.attr) for w in lab.warnings] == [("expect-duplicate", "expect[1]")]


def test_tap_node_can_be_a_target(tmp_path: Path) -> None:
    ok(tmp_path, HEAD + "nodes:\n  a: {}\n  t: {kind: tap}\nlinks:\n"
                        "  - {endpoints: [a:eth0, sw1], ip: 10.0.0.1/24}\n"
                        "  - {endpoints: [t:eth0, sw1], ip: 10.0.0.2/24}\n  - {endpoints: [br0, brf]}\n"
                        "expect:\n  - {from: a, to: t}\n")


# --- one mistake, one diagnostic ----------------------------------------------------------------------


def test_broken_node_does_not_make_its_links_dangling(tmp_path: Path) -> None:
    _, diagnostics = run(tmp_path, HEAD + "nodes:\n  h1: {kind: netns, colour: red}\n  h2: {}\nlinks:\n"
                                          "  - {endpoints: [h1:eth0, sw1], ip: 10.0.0.1/24}\n"
                                          "  - {endpoints: [h2:eth0, sw1], ip: 10.0.0.2/24}\n"
                                          "  - {endpoints: [br0, brf]}\n"
                                          "expect:\n  - {from: h2, to: h1}\n  - {from: h1, to: h2}\n")
    assert codes(diagnostics) == ["unknown-key"]


def test_broken_switch_does_not_make_its_links_dangling(tmp_path: Path) -> None:
    _, diagnostics = run(tmp_path, "name: x\nswitches:\n  sw1: {type: ovs, stp: perhaps}\nnodes:\n  h1: {}\n"
                                   "links:\n  - {endpoints: [h1:eth0, sw1]}\n")
    assert codes(diagnostics) == ["type"]


def test_broken_pool_is_not_also_unknown(tmp_path: Path) -> None:
    _, diagnostics = run(tmp_path, HEAD + "networks:\n  lan: {gateway: 10.0.0.1}\n  dmz: {subnet: nonsense}\n"
                                          "nodes:\n  h1: {}\n  h2: {}\nlinks:\n"
                                          "  - {endpoints: [h1:eth0, sw1], network: lan}\n"
                                          "  - {endpoints: [h2:eth0, sw1], network: dmz}\n"
                                          "  - {endpoints: [br0, brf]}\n")
    assert codes(diagnostics) == ["missing-field", "cidr-invalid"]


def test_name_conflict_is_reported_once(tmp_path: Path) -> None:
    _, diagnostics = run(tmp_path, "name: x\nswitches:\n  core: {type: ovs}\nnodes:\n  core: {}\n  h1: {}\n"
                                   "links:\n  - {endpoints: [h1:eth0, core]}\n"
                                   "  - {endpoints: [h1:eth1, core:eth0]}\n")
    assert codes(diagnostics) == ["name-conflict"]


def test_broken_expectation_does_not_silence_the_others(tmp_path: Path) -> None:
    _, diagnostics = run(tmp_path, HEAD + "nodes:\n  a: {}\n  b: {}\nlinks:\n"
                                          "  - {endpoints: [a:eth0, sw1], ip: 10.0.0.1/24}\n"
                                          "  - {endpoints: [b:eth0, sw1], ip: 10.0.0.2/24}\n"
                                          "  - {endpoints: [br0, brf]}\n"
                                          "expect:\n  - {from: a, to: b, via: x}\n"
                                          "  - {from: a, to: 'b:eth9'}\n"
                                          "  - {from: a, to: a}\n")
    assert codes(diagnostics) == ["unknown-key", "expect-unknown-iface", "expect-self"]


def test_broken_link_keeps_its_nodes_quiet_but_not_others(tmp_path: Path) -> None:
    # h1's only link is broken, so "h1 has no address" would be a consequence: not reported.
    # h2 really has no address: reported.
    _, diagnostics = run(tmp_path, HEAD + "nodes:\n  h1: {}\n  h2: {}\n  h3: {}\nlinks:\n"
                                          "  - {endpoints: [h1:eth0, sw1], ip: 10.0.0.1/24, vlan: 9999}\n"
                                          "  - {endpoints: [h2:eth0, sw1]}\n"
                                          "  - {endpoints: [h3:eth0, sw1], ip: 10.0.0.3/24}\n"
                                          "  - {endpoints: [br0, brf]}\n"
                                          "expect:\n  - {from: h3, to: h1}\n  - {from: h3, to: h2}\n")
    assert [(d.code, d.attr) for d in sort_diagnostics(diagnostics)] == [
        ("vlan-range", "links[0].vlan"), ("expect-no-address", "expect[1].to")]


def test_every_problem_is_reported_in_one_run(tmp_path: Path) -> None:
    _, diagnostics = run(tmp_path, "name: Bad\nswitches:\n  sw1: {type: ovs}\nnodes:\n  h1: {}\n  h2: {}\n"
                                   "links:\n  - {endpoints: [h1:eth0, sw1], vlan: 0}\n"
                                   "  - {endpoints: [h2:eth0, sw2]}\n  - {endpoints: [h1:eth0, sw1]}\n"
                                   "  - {endpoints: [h2:eth1, sw1], ip: 10.0.0.1}\n")
    assert codes(diagnostics) == ["lab-name", "vlan-range", "endpoint-unknown", "cidr-invalid"]


def test_iface_reuse_points_at_the_second_use(tmp_path: Path) -> None:
    _, diagnostics = run(tmp_path, HEAD + "nodes:\n  h1: {}\nlinks:\n  - {endpoints: [h1:eth0, sw1]}\n"
                                          "  - {endpoints: [br0, brf]}\n  - {endpoints: [brf, h1:eth0]}\n")
    [diagnostic] = diagnostics
    assert (diagnostic.code, diagnostic.attr) == ("iface-reused", "links[2].endpoints[1]")
    assert diagnostic.line == 11
    assert "links[0]" in diagnostic.message


def test_vf_used_twice_for_nodes(tmp_path: Path) -> None:
    _, diagnostics = run(tmp_path, "name: vf\nsriov:\n  pf0: {num_vfs: 1}\nnodes:\n  a: {}\n  b: {}\nlinks:\n"
                                   "  - {endpoints: ['sriov:pf0/vf0', a:eth0]}\n"
                                   "  - {endpoints: ['sriov:pf0/vf0', b:eth0]}\n")
    assert [(d.code, d.attr) for d in diagnostics] == [("iface-reused", "links[1].endpoints[0]")]


def test_vlan_on_a_vf_link_points_at_the_vf_settings(tmp_path: Path) -> None:
    _, diagnostics = run(tmp_path, "name: vf\nsriov:\n  pf0: {num_vfs: 1}\nnodes:\n  a: {}\nlinks:\n"
                                   "  - {endpoints: ['sriov:pf0/vf0', a:eth0], vlan: 10}\n")
    [diagnostic] = diagnostics
    assert diagnostic.code == "vlan-no-switch"
    assert "sriov.<pf>.vfs.<n>.vlan" in diagnostic.hint


def test_unreadable_file_is_a_diagnostic_not_an_exception(tmp_path: Path) -> None:
    lab, diagnostics = diagnose(str(tmp_path / "missing.yaml"))
    assert lab is None
    assert codes(diagnostics) == ["file-unreadable"]
    with pytest.raises(TopologyError):
        vnet.load(str(tmp_path / "missing.yaml"))


def test_loading_stops_after_max_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "MAX_ERRORS", 5)
    links = "".join("  - {endpoints: [a, b], vlan: 5000}\n" for _ in range(20))
    lab, diagnostics = run(tmp_path, HEAD + "links:\n" + links)
    assert lab is None
    assert sorted(codes(diagnostics)) == ["too-many-errors"] + ["vlan-range"] * 5
    assert diagnostics[-1].code == "too-many-errors"
    assert diagnostics[-1].line == diagnostics[-2].line == 11  # where it stopped: the 5th link


def test_checks_stop_after_max_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "MAX_ERRORS", 5)
    links = "".join(f"  - {{endpoints: [h{k}:eth0, nowhere]}}\n" for k in range(20))
    lab, diagnostics = run(tmp_path, "name: chk\nnodes: {h0: {}}\nlinks:\n" + links)
    assert lab is None
    assert diagnostics[-1].code == "too-many-errors"
    assert sorted(codes(diagnostics)) == ["endpoint-unknown"] * 5 + ["too-many-errors"]
    assert "stopped after 5 errors" in diagnostics[-1].message


# --- Diagnostic ------------------------------------------------------------------------------------


def test_diagnostic_format_and_order() -> None:
    late = Diagnostic("f.yaml", 9, 3, "vlan-range", "0 is out of range", "links[1].vlan",
                      "VLAN ids are 1-4094")
    early = Diagnostic("f.yaml", 2, 7, "lab-name", "bad name", "name")
    whole = Diagnostic("f.yaml", 0, 0, "file-encoding", "not UTF-8")
    warning = Diagnostic("f.yaml", 5, 1, "unlinked", "idle", "nodes.x", severity=Severity.WARNING)
    assert late.format() == ("f.yaml:9:3: error[vlan-range]: links[1].vlan: 0 is out of range\n"
                             "    hint: VLAN ids are 1-4094")
    assert early.format() == "f.yaml:2:7: error[lab-name]: name: bad name"
    assert whole.format() == "f.yaml: error[file-encoding]: not UTF-8"
    assert warning.format() == "f.yaml:5:1: warning[unlinked]: nodes.x: idle"
    error = TopologyError([late, warning, early, whole, late])
    assert error.diagnostics == [whole, early, warning, late]  # sorted, duplicates merged
    assert error.message == "3 error(s) in topology"
    assert late.to_json()["attr"] == "links[1].vlan"


# --- issue 14: inputs apply cannot handle ---------------------------------------------------------


def _loop_lab(switches: str, links: str) -> str:
    return f"name: loops\nswitches:\n{switches}nodes:\n  h1: {{}}\nlinks:\n{links}"


@pytest.mark.parametrize(("switches", "links"), [
    # a tree of switches, whatever their VLANs
    ("  a: {type: ovs}\n  b: {type: ovs}\n  c: {type: linux}\n",
     "  - {endpoints: [a, b], trunk: [10, 20]}\n  - {endpoints: [b, c], vlan: 10}\n"),
    # two access links of different VLANs between two OVS switches: two segments, no loop
    ("  a: {type: ovs}\n  b: {type: ovs}\n",
     "  - {endpoints: [a, b], vlan: 10}\n  - {endpoints: [a, b], vlan: 20}\n"),
    # native VLANs through a VLAN-unaware bridge: VLAN 10 leaves untagged, never tagged
    ("  a: {type: ovs}\n  br: {type: linux}\n  c: {type: ovs}\n",
     "  - {endpoints: [a, br], trunk: [10, 20], native_vlan: 10}\n"
     "  - {endpoints: [br, c], trunk: [10, 20], native_vlan: 10}\n"),
    # a ring whose every switch runs spanning tree (RSTP on OVS counts)
    ("  a: {type: linux, stp: true}\n  b: {type: linux, stp: true}\n  c: {type: ovs, rstp: true}\n",
     "  - {endpoints: [a, b]}\n  - {endpoints: [b, c]}\n  - {endpoints: [c, a]}\n"),
])
def test_loop_free_or_spanning_tree_switches_pass(tmp_path: Path, switches: str, links: str) -> None:
    ok(tmp_path, _loop_lab(switches, links + "  - {endpoints: [h1:eth0, a]}\n"))


def test_a_loop_with_one_switch_without_spanning_tree_is_an_error(tmp_path: Path) -> None:
    _, diagnostics = run(tmp_path, _loop_lab(
        "  a: {type: linux, stp: true}\n  b: {type: linux}\n  c: {type: ovs, rstp: true}\n",
        "  - {endpoints: [h1:eth0, a]}\n  - {endpoints: [a, b]}\n  - {endpoints: [b, c]}\n"
        "  - {endpoints: [c, a]}\n"))
    [loop] = [d for d in diagnostics if d.code == "l2-loop"]
    assert loop.attr == "links[3]" and "b runs no spanning tree" in loop.message
    assert "`stp: true` on b" in loop.hint


def test_parallel_trunks_loop_only_in_the_vlans_they_share(tmp_path: Path) -> None:
    _, diagnostics = run(tmp_path, _loop_lab(
        "  a: {type: ovs}\n  b: {type: ovs}\n",
        "  - {endpoints: [h1:eth0, a]}\n  - {endpoints: [a, b], trunk: [10, 20]}\n"
        "  - {endpoints: [a, b], trunk: [20, 30]}\n"))
    [loop] = [d for d in diagnostics if d.code == "l2-loop"]
    assert "in VLAN 20" in loop.message


@pytest.mark.parametrize(("image", "memory", "valid"), [
    ("tiny", 96, True), ("tiny", 95, False), ("tiny", "96M", True), ("tiny", "0.09375G", True),
    ("{kernel: vmlinuz}", 128, True), ("{kernel: vmlinuz}", 127, False), ("{disk: disk.img}", 100, False),
])
def test_memory_floor_per_image(tmp_path: Path, image: str, memory: object, valid: bool) -> None:
    (tmp_path / "vmlinuz").write_bytes(b"k")
    (tmp_path / "disk.img").write_bytes(b"\0" * 512)
    vm1 = f"  vm1: {{kind: vm, image: {image}, memory: {memory}}}\n"
    lab, diagnostics = run(tmp_path, f"name: mem\nnodes:\n{vm1}  h1: {{}}\nlinks:\n"
                                     "  - endpoints: [vm1:eth0, h1:eth0]\n")
    assert (lab is not None) == valid, [d.format() for d in diagnostics]
    assert valid or codes(diagnostics) == ["memory-too-small"]


def test_the_default_memory_boots_every_image(tmp_path: Path) -> None:
    (tmp_path / "vmlinuz").write_bytes(b"k")
    ok(tmp_path, "name: mem\nnodes:\n  vm1: {kind: vm}\n  vm2: {kind: vm, image: {kernel: vmlinuz}}\n"
                 "links:\n  - endpoints: [vm1:eth0, vm2:eth0]\n")


@pytest.mark.parametrize(("ip", "code"), [
    ("169.254.0.1/16", None), ("fd00::1/64", None), ("198.18.0.1/32", None),
    ("fe80::1/64", "address-link-local"), ("febf::1/64", "address-link-local"),
    ("ff02::1/64", "address-multicast"), ("239.1.1.1/24", "address-multicast"),
    ("::1/128", "address-loopback"), ("127.0.0.1/8", "address-loopback"),
    ("0.0.0.0/24", "address-unspecified"), ("0.0.0.0/32", "address-unspecified"),
])
def test_special_use_addresses_on_interfaces(tmp_path: Path, ip: str, code: str | None) -> None:
    _, diagnostics = run(tmp_path, HEAD + "nodes:\n  h1: {}\nlinks:\n"
                                          f"  - {{endpoints: [h1:eth0, br0], ip: '{ip}'}}\n")
    assert codes([d for d in diagnostics if d.is_error]) == ([code] if code else [])


def test_a_pool_that_hands_out_loopback_is_refused(tmp_path: Path) -> None:
    _, diagnostics = run(tmp_path, HEAD + "networks:\n  p6: {subnet: '::/64'}\nnodes:\n  h1: {}\n"
                                          "links:\n  - {endpoints: [h1:eth0, br0], network: p6}\n")
    errors = [d for d in diagnostics if d.is_error]
    assert codes(errors) == ["address-loopback"]
    assert "hands out ::1" in errors[0].message


@pytest.mark.parametrize(("subnet", "gateway", "valid"), [
    ("198.18.0.0/24", "198.18.0.254", True), ("198.18.0.0/24", "198.18.0.1", True),
    ("198.18.0.0/24", "198.18.0.0", False), ("198.18.0.0/24", "198.18.0.255", False),
    ("198.18.0.0/31", "198.18.0.0", True), ("fd00::/64", "fd00::", False),
    ("fd00::/64", "fd00::1", True),
])
def test_pool_gateway_is_a_host_address(tmp_path: Path, subnet: str, gateway: str, valid: bool) -> None:
    pool = f"networks:\n  p: {{subnet: '{subnet}', gateway: '{gateway}'}}\n"
    lab, diagnostics = run(tmp_path, HEAD + pool + "nodes:\n  h1: {}\nlinks:\n"
                                                 "  - {endpoints: [h1:eth0, br0], network: p}\n")
    assert (lab is not None) == valid, [d.format() for d in diagnostics]
    assert valid or codes([d for d in diagnostics if d.is_error]) == ["pool-gateway-not-host"]


def test_route_via_own_address_but_not_via_a_neighbour(tmp_path: Path) -> None:
    text = HEAD + ("nodes:\n  h1:\n    routes:\n      - {to: 198.18.9.0/24, via: 198.18.0.2}\n"
                   "      - {to: default, via: 198.18.0.1}\nlinks:\n"
                   "  - {endpoints: [h1:eth0, br0], ip: 198.18.0.1/24}\n")
    _, diagnostics = run(tmp_path, text)
    errors = [(d.code, d.attr) for d in diagnostics if d.is_error]
    assert errors == [("route-via-self", "nodes.h1.routes[1].via")]


def test_vf_macs_are_unique_across_pfs_and_spellings(tmp_path: Path) -> None:
    text = ("name: vfs\nsriov:\n  p0:\n    num_vfs: 2\n    vfs: {0: {mac: '02:00:00:00:00:01'}, "
            "1: {mac: '02:00:00:00:00:02'}}\n  p1:\n    num_vfs: 1\n"
            "    vfs: {0: {mac: '02-00-00-00-00-01'}}\n"
            "nodes: {h1: {}}\nlinks:\n  - {endpoints: [h1:eth0, 'sriov:p0/vf0']}\n")
    _, diagnostics = run(tmp_path, text)
    errors = [(d.code, d.attr) for d in diagnostics if d.is_error]
    assert errors == [("sriov-mac-duplicate", "sriov.p1.vfs.0.mac")]


@pytest.mark.parametrize(("text", "code"), [
    ("nodes:\n  ext1:\n    kind: tap\n    forwarding: true\n", "netns-vm-only-option"),  # other kinds' option
    ("nodes:\n  h1: {}\nexpect:\n  - {from: h1, to: h1, via: x}\n", "unknown-key"),  # not a place for it
    ("defaults:\n  vlan: 10\n", "unknown-key"),  # a field with no default
    ("nodes:\n  h1:\n    kind: netns\n  routes: []\n", "key-misplaced"),
    ("nodes:\n  h1:\n    kind: netns\n    links: []\n", "key-misplaced"),
    ("forwarding: true\n", "key-misplaced"),
])
def test_misplaced_keys(tmp_path: Path, text: str, code: str) -> None:
    _, diagnostics = run(tmp_path, "name: mis\n" + text)
    assert code in codes(diagnostics)

"""The typed model and the loader: `defaults:`, kinds, locations of defaulted values, partial models."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

import vnet
from vnet.errors import TopologyError
from vnet.topology import diagnose, model
from vnet.topology.loader import load_document
from vnet.topology.model import KernelImage, LinuxSwitch, NetnsNode, OvsSwitch, TapNode, VmNode
from vnet.topology.source import Mark

DEFAULTS_LAB = """\
name: defs
defaults:
  mtu: 9000
  stp: true
  vlan_filtering: true
  fail_mode: secure
  ovs_datapath: netdev
  rstp: true
  memory: 512
  forwarding: true
  multi_queue: true
switches:
  ovs1: {type: ovs}
  br1: {type: linux}
  br2: {type: linux, vlan_filtering: false, mtu: 1500, stp: false}
nodes:
  h1: {}
  vm1: {kind: vm}
  vm2: {kind: vm, memory: 96, forwarding: false}
  t1: {kind: tap}
links:
  - endpoints: [h1:eth0, ovs1]
  - endpoints: [vm1:eth0, br1]
  - endpoints: [vm2:eth0, br1]
  - endpoints: [t1:eth0, br2]
    mtu: 1400
"""


def write(tmp_path: Path, text: str, name: str = "lab.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.fixture
def defaults_lab(tmp_path: Path) -> vnet.Lab:
    return vnet.load(write(tmp_path, DEFAULTS_LAB))


def test_defaults_reach_the_switches_that_have_the_field(defaults_lab: vnet.Lab) -> None:
    switches = defaults_lab.topology.switches
    ovs, br1 = switches["ovs1"], switches["br1"]
    assert isinstance(ovs, OvsSwitch)
    assert (ovs.mtu, ovs.stp, ovs.fail_mode, ovs.rstp) == (9000, True, "secure", True)
    assert isinstance(br1, LinuxSwitch)
    assert (br1.mtu, br1.stp, br1.vlan_filtering) == (9000, True, True)
    assert not hasattr(br1, "fail_mode")  # an OVS-only default is not forced on a Linux bridge


def test_ovs_datapath_default_fills_the_ovs_datapath_field(defaults_lab: vnet.Lab) -> None:
    ovs = defaults_lab.topology.switches["ovs1"]
    assert isinstance(ovs, OvsSwitch)
    assert ovs.datapath == "netdev"


def test_explicit_values_win_over_defaults(defaults_lab: vnet.Lab) -> None:
    br2 = defaults_lab.topology.switches["br2"]
    assert isinstance(br2, LinuxSwitch)
    assert (br2.mtu, br2.stp, br2.vlan_filtering) == (1500, False, False)
    vm2 = defaults_lab.topology.nodes["vm2"]
    assert isinstance(vm2, VmNode)
    assert (vm2.memory, vm2.forwarding) == (96, False)
    assert defaults_lab.topology.links[3].mtu == 1400


def test_defaults_reach_the_nodes_that_have_the_field(defaults_lab: vnet.Lab) -> None:
    nodes = defaults_lab.topology.nodes
    h1, vm1, t1 = nodes["h1"], nodes["vm1"], nodes["t1"]
    assert isinstance(h1, NetnsNode)  # no kind and no default kind: netns
    assert h1.forwarding is True
    assert not hasattr(h1, "memory")  # a vm-only default does not make h1 invalid
    assert isinstance(vm1, VmNode)
    assert (vm1.memory, vm1.forwarding) == (512, True)
    assert isinstance(t1, TapNode)
    assert t1.multi_queue is True
    assert not hasattr(t1, "forwarding")


def test_mtu_default_reaches_links(defaults_lab: vnet.Lab) -> None:
    assert [link.mtu for link in defaults_lab.topology.links] == [9000, 9000, 9000, 1400]
    assert defaults_lab.interfaces[("vm1", "eth0")].mtu == 9000


def test_without_defaults_the_model_defaults_apply(tmp_path: Path) -> None:
    lab = vnet.load(write(tmp_path, "name: plain\nswitches:\n  s: {type: ovs}\n  b: {type: linux}\n"
                                    "links:\n  - endpoints: [s, b]\n"))
    s, b = lab.topology.switches["s"], lab.topology.switches["b"]
    assert isinstance(s, OvsSwitch)
    assert (s.datapath, s.fail_mode, s.stp, s.rstp, s.mtu) == ("auto", "standalone", False, False, None)
    assert isinstance(b, LinuxSwitch)
    assert b.vlan_filtering is False


def test_default_kind_and_type(tmp_path: Path) -> None:
    lab = vnet.load(write(tmp_path, "name: kinds\ndefaults: {kind: vm, type: linux}\n"
                                    "switches:\n  br0: {}\nnodes:\n  a: {}\n  b: {kind: netns}\n"
                                    "links:\n  - endpoints: [a:eth0, br0]\n  - endpoints: [b:eth0, br0]\n"))
    assert isinstance(lab.topology.switches["br0"], LinuxSwitch)
    assert isinstance(lab.topology.nodes["a"], VmNode)
    assert isinstance(lab.topology.nodes["b"], NetnsNode)


def test_defaulted_value_is_located_at_the_defaults_entry(tmp_path: Path) -> None:
    path = write(tmp_path, "name: loc\ndefaults:\n  ovs_datapath: system\n  mtu: 1400\n"
                           "switches:\n  sw1: {type: ovs}\nlinks:\n  - endpoints: [sw1, sw1]\n")
    loaded = load_document(path)
    assert loaded.source.locate(("switches", "sw1", "datapath")) == Mark(3, 17)
    assert loaded.source.locate(("switches", "sw1", "mtu")) == Mark(4, 8)
    assert loaded.source.locate(("links", 0, "mtu")) == Mark(4, 8)
    # An explicit value keeps its own location.
    assert loaded.source.locate(("switches", "sw1", "type")) == Mark(6, 15)


def test_diagnostic_about_a_defaulted_value_points_at_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "name: loc\ndefaults:\n  image: {kernel: missing-kernel}\n"
                           "switches:\n  sw1: {type: ovs}\nnodes:\n  vm1: {kind: vm}\n"
                           "links:\n  - endpoints: [vm1:eth0, sw1]\n")
    _, diagnostics = diagnose(path)
    [diagnostic] = diagnostics
    assert diagnostic.code == "image-missing"
    assert diagnostic.attr == "nodes.vm1.image.kernel"
    assert (diagnostic.line, diagnostic.column) == (3, 10)


def test_image_forms(tmp_path: Path) -> None:
    (tmp_path / "vmlinuz").write_text("k")
    lab = vnet.load(write(tmp_path, "name: img\nswitches:\n  sw1: {type: ovs}\nnodes:\n"
                                    "  a: {kind: vm}\n  b: {kind: vm, image: {kernel: vmlinuz}}\n"
                                    "links:\n  - endpoints: [a:eth0, sw1]\n  - endpoints: [b:eth0, sw1]\n"))
    a, b = lab.topology.nodes["a"], lab.topology.nodes["b"]
    assert isinstance(a, VmNode)
    assert a.image == "tiny"
    assert isinstance(b, VmNode)
    assert b.image == KernelImage(kernel="vmlinuz")


def test_specs_are_frozen_and_forbid_unknown_keys() -> None:
    route = model.Route(to="default", via="10.0.0.1")
    with pytest.raises(ValidationError):
        route.via = "10.0.0.2"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        model.Route(to="default", via="10.0.0.1", gw="x")  # type: ignore[call-arg]


def test_expectation_is_written_with_from() -> None:
    entry = model.Expectation.model_validate({"from": "h1", "to": "h2"})
    assert (entry.source, entry.to, entry.reach) == ("h1", "h2", True)


def test_registries_name_every_kind() -> None:
    assert set(model.SWITCH_TYPES) == {"linux", "ovs"}
    assert set(model.NODE_KINDS) == {"netns", "vm", "tap"}
    assert set(model.DEFAULT_KEY_FIELDS.values()) <= set(OvsSwitch.model_fields)
    # Every defaults key fills a field of some switch, node or link.
    targets = [*model.SWITCH_TYPES.values(), *model.NODE_KINDS.values(), model.Link]
    for key in model.Defaults.model_fields:
        field = model.DEFAULT_KEY_FIELDS.get(key, key)
        assert any(field in cls.model_fields for cls in targets), key


def test_one_broken_entry_does_not_hide_the_others(tmp_path: Path) -> None:
    path = write(tmp_path, "name: part\nswitches:\n  sw1: {type: ovs, bogus: 1}\n  sw2: {type: ovs}\n"
                           "nodes:\n  h1: {kind: netns, bad: 2}\n  h2: {}\nlinks:\n"
                           "  - endpoints: [h2:eth0, sw2]\n    vlan: 0\n  - endpoints: [sw2, sw2]\n")
    loaded = load_document(path)
    assert loaded.topology is not None
    assert set(loaded.topology.switches) == {"sw2"}
    assert set(loaded.topology.nodes) == {"h2"}
    assert loaded.broken == {"sw1", "h1"}
    assert loaded.link_index == (1,)  # links[0] is broken, links[1] is kept at its file position
    codes = sorted(d.code for d in loaded.diagnostics)
    assert codes == ["unknown-key", "unknown-key", "vlan-range"]


def test_bad_name_still_checks_the_rest(tmp_path: Path) -> None:
    path = write(tmp_path, "name: [x]\nversion: 3\nswitches:\n  sw1: {type: ovs}\n"
                           "links:\n  - endpoints: [sw1, sw9]\n")
    with pytest.raises(TopologyError) as caught:
        vnet.load(path)
    attrs = [(d.code, d.attr) for d in caught.value.diagnostics]
    assert attrs == [("type", "name"), ("invalid-value", "version"),
                     ("endpoint-unknown", "links[0].endpoints[1]")]


def test_valid_name_with_bad_version_is_still_name_checked(tmp_path: Path) -> None:
    _, diagnostics = diagnose(write(tmp_path, "name: Bad_Name\nversion: 2\n"))
    assert sorted(d.code for d in diagnostics) == ["invalid-value", "lab-name"]


def test_version_1_is_accepted(tmp_path: Path) -> None:
    lab = vnet.load(write(tmp_path, "name: v\nversion: 1\n"))
    assert lab.topology.version == 1
    assert lab.topology.expect is None


# --- memory with units ------------------------------------------------------------------------


@pytest.mark.parametrize(("written", "mib"), [
    ("512", 512), ("512M", 512), ("512m", 512), ("512MiB", 512), ('"512 MiB"', 512), ("2G", 2048),
    ("2GiB", 2048), ("1.5G", 1536), ("131072K", 128), ("131072KiB", 128), ("1T", 1_048_576),
])
def test_memory_takes_mib_or_a_binary_unit(tmp_path: Path, written: str, mib: int) -> None:
    lab = vnet.load(write(tmp_path, "name: mem\nnodes:\n  vm1: {kind: vm, memory: " + written + "}\n"
                                    "  h1: {}\nlinks:\n  - endpoints: [vm1:eth0, h1:eth0]\n"))
    vm1 = lab.topology.nodes["vm1"]
    assert isinstance(vm1, VmNode) and vm1.memory == mib


@pytest.mark.parametrize("written", ["512MB", '"512"', "lots", "1000K", "1.5", "2048G", "16M", "true"])
def test_memory_refuses_ambiguous_or_odd_sizes(tmp_path: Path, written: str) -> None:
    _, diagnostics = diagnose(write(tmp_path, f"name: mem\nnodes:\n  vm1: {{kind: vm, memory: {written}}}\n"))
    found = [d for d in diagnostics if d.attr == "nodes.vm1.memory"]
    assert len(found) == 1 and found[0].is_error
    assert found[0].code in ("memory-size", "type", "value-range")
    assert "MiB" in found[0].hint


def test_memory_units_work_in_defaults(tmp_path: Path) -> None:
    lab = vnet.load(write(tmp_path, "name: mem\ndefaults: {memory: 1G}\nnodes:\n  vm1: {kind: vm}\n"
                                    "  h1: {}\nlinks:\n  - endpoints: [vm1:eth0, h1:eth0]\n"))
    vm1 = lab.topology.nodes["vm1"]
    assert isinstance(vm1, VmNode) and vm1.memory == 1024

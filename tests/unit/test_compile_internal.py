"""`attach: internal` compiles to an OVS internal port and its moved device, planned in that order."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from vnet.mechanisms.base import HostFacts
from vnet.mechanisms.ovs.resources import OvsInternal, OvsPort
from vnet.pipeline.compile import compile_lab
from vnet.pipeline.plan import make_plan
from vnet.resources import Action, DesiredState, ObservedState, Resource
from vnet.topology import load

LAB = """
name: itl
switches:
  s1: {type: ovs, datapath: netdev}
nodes:
  h1: {kind: netns}
  h2: {kind: netns}
links:
  - {endpoints: [h1:eth0, s1], attach: internal, vlan: 5, ip: 198.18.0.1/24, mtu: 1400}
  - {endpoints: [h2:eth0, s1], vlan: 5, ip: 198.18.0.2/24}
"""


def compiled(tmp_path: Path) -> DesiredState:
    path = tmp_path / "lab.yaml"
    path.write_text(LAB)
    return compile_lab(load(str(path)), HostFacts())


def test_internal_attach_is_a_port_and_a_moved_device(tmp_path: Path) -> None:
    desired = compiled(tmp_path)
    moved = desired.resources[("ovs-internal", "vnet-itl-h1/eth0")]
    assert isinstance(moved, OvsInternal)
    assert moved.end.name == "eth0" and moved.end.mtu == 1400 and moved.end.alias == "vnet:itl:h1:eth0"
    port = desired.resources[("ovs-port", moved.port)]
    assert isinstance(port, OvsPort)
    assert port.type == "internal" and port.tag == 5 and port.device_key is None
    assert len(port.name) <= 15 and port.name.startswith("vi")
    assert ("ovs-port", port.name) in moved.depends_on()
    address = desired.resources[("address", "vnet-itl-h1/eth0/198.18.0.1/24")]
    assert address.depends_on()[0] == moved.key
    assert not any(k[0] == "veth" and "h1" in k[1] for k in desired.resources), "no veth for h1"


def test_plan_creates_port_then_moves_device_then_addresses(tmp_path: Path) -> None:
    desired = compiled(tmp_path)
    plan = make_plan(desired, ObservedState("itl", {}, {}, {}))
    wave_of = {c.key: n for n, wave in enumerate(plan.waves) for c in wave}
    moved = desired.resources[("ovs-internal", "vnet-itl-h1/eth0")]
    assert isinstance(moved, OvsInternal)
    address = ("address", "vnet-itl-h1/eth0/198.18.0.1/24")
    assert wave_of[("ovs-port", moved.port)] < wave_of[moved.key] < wave_of[address]
    assert wave_of[("netns", "vnet-itl-h1")] < wave_of[moved.key]


def test_a_device_left_in_the_host_is_moved_in_place(tmp_path: Path) -> None:
    """Observed moved=False (made again by a restarted vswitchd): an update, not a recreate."""
    desired = compiled(tmp_path)
    moved = desired.resources[("ovs-internal", "vnet-itl-h1/eth0")]
    assert isinstance(moved, OvsInternal)
    observed: dict[tuple[str, str], Resource] = dict(desired.resources)
    observed[moved.key] = dataclasses.replace(moved, moved=False)
    plan = make_plan(desired, ObservedState("itl", observed, {}, {}))
    assert [(c.action, c.key) for c in plan.changes] == [(Action.UPDATE, moved.key)]


def test_a_lost_device_recreates_its_port(tmp_path: Path) -> None:
    """The device is gone (deleted inside the namespace): only a new port brings a new one."""
    desired = compiled(tmp_path)
    moved = desired.resources[("ovs-internal", "vnet-itl-h1/eth0")]
    assert isinstance(moved, OvsInternal)
    port = desired.resources[("ovs-port", moved.port)]
    assert isinstance(port, OvsPort)
    observed = {k: r for k, r in desired.resources.items() if "h1/eth0" not in k[1]}  # device, address
    observed[port.key] = dataclasses.replace(port, device_key=moved.key, device_present=False)
    plan = make_plan(desired, ObservedState("itl", observed, {}, {}))
    steps = [(c.action, c.key) for c in plan.changes]
    assert steps.index((Action.DELETE, port.key)) < steps.index((Action.CREATE, port.key)) \
        < steps.index((Action.CREATE, moved.key))

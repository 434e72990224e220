"""diff and plan ordering on hand-made desired/observed states (no host access)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import vnet
from vnet.mechanisms.base import HostFacts
from vnet.mechanisms.kernel.resources import Address, DeviceEnd, LinuxBridge, Netns, VethPair
from vnet.mechanisms.ovs.compile import OvsFacts
from vnet.mechanisms.ovs.resources import OvsBridge, OvsPort
from vnet.mechanisms.qemu.resources import Vm
from vnet.pipeline.compile import compile_lab
from vnet.pipeline.plan import make_plan
from vnet.resources import HOST, Action, Change, DesiredState, ObservedState, Resource, ResourceKey


def state(*resources: Resource) -> dict[ResourceKey, Resource]:
    return {r.key: r for r in resources}


NS = Netns("vnet-t-h1", "vnet:t:h1")
BR = LinuxBridge("tbr", "vnet:t:tbr")
PAIR = VethPair(DeviceEnd("vnet-t-h1", "eth0", "vnet:t:h1:eth0", mtu=1500),
                DeviceEnd(HOST, "vnabc", "vnet:t:h1:eth0:peer", master="tbr"))
ADDR = Address("vnet-t-h1", "eth0", "198.18.0.1/24", PAIR.key)


def plan(desired: tuple[Resource, ...], observed: tuple[Resource, ...]) -> list[Change]:
    result = make_plan(DesiredState("t", state(*desired)), ObservedState("t", state(*observed), {}, {}))
    return list(result.changes)


def position(changes: list[Change], action: Action, key: ResourceKey) -> int:
    return next(i for i, c in enumerate(changes) if c.action is action and c.key == key)


def test_creates_follow_their_dependencies() -> None:
    changes = plan((ADDR, PAIR, BR, NS), ())
    assert [c.action for c in changes] == [Action.CREATE] * 4
    assert position(changes, Action.CREATE, NS.key) < position(changes, Action.CREATE, PAIR.key)
    assert position(changes, Action.CREATE, BR.key) < position(changes, Action.CREATE, PAIR.key)
    assert position(changes, Action.CREATE, PAIR.key) < position(changes, Action.CREATE, ADDR.key)


def test_deletes_go_in_reverse_dependency_order() -> None:
    changes = plan((), (NS, BR, PAIR, ADDR))
    assert position(changes, Action.DELETE, ADDR.key) < position(changes, Action.DELETE, PAIR.key)
    assert position(changes, Action.DELETE, PAIR.key) < position(changes, Action.DELETE, NS.key)



def test_a_bridge_and_its_ports_are_deleted_in_one_wave() -> None:
    """A port outlives its bridge (the kernel releases it): no order between their deletes, so a
    destroy batches them (and creates still go bridge first)."""
    waves = make_plan(DesiredState("t", {}), ObservedState("t", {r.key: r for r in (BR, PAIR)})).waves
    assert [sorted(c.key for c in wave) for wave in waves] == [sorted([BR.key, PAIR.key])]
    created = plan((NS, BR, PAIR), ())
    assert position(created, Action.CREATE, BR.key) < position(created, Action.CREATE, PAIR.key)


def test_unchanged_state_plans_nothing() -> None:
    assert plan((NS, BR, PAIR, ADDR), (NS, BR, PAIR, ADDR)) == []


def test_mutable_field_is_an_update_in_place() -> None:
    mtu9000 = VethPair(PAIR.a, DeviceEnd(HOST, "vnabc", "vnet:t:h1:eth0:peer", mtu=9000, master="tbr"))
    changes = plan((NS, BR, mtu9000, ADDR), (NS, BR, PAIR, ADDR))
    assert [(c.action, c.key) for c in changes] == [(Action.UPDATE, PAIR.key)]
    assert "b.mtu" in changes[0].reason


def test_moving_an_end_recreates_the_pair_and_its_addresses() -> None:
    moved = VethPair(PAIR.a, DeviceEnd(HOST, "vnabc", "vnet:t:h1:eth0:peer", master=None))
    other_ns = VethPair(DeviceEnd("vnet-t-h2", "eth0", "vnet:t:h1:eth0"), PAIR.b)
    changes = plan((NS, BR, other_ns, ADDR), (NS, BR, PAIR, ADDR))
    assert (Action.DELETE, PAIR.key) in [(c.action, c.key) for c in changes]
    assert (Action.CREATE, other_ns.key) in [(c.action, c.key) for c in changes]
    assert moved.key == PAIR.key  # only the namespace of end a changed the key


def test_recreating_a_namespace_recreates_what_lives_in_it() -> None:
    forwarding = Netns("vnet-t-h1", "vnet:t:h2")  # the mark is not mutable: recreate
    changes = plan((forwarding, BR, PAIR, ADDR), (NS, BR, PAIR, ADDR))
    actions = {(c.action, c.key) for c in changes}
    assert {(Action.DELETE, PAIR.key), (Action.CREATE, PAIR.key),
            (Action.DELETE, ADDR.key), (Action.CREATE, ADDR.key)} <= actions
    assert position(changes, Action.DELETE, NS.key) < position(changes, Action.CREATE, NS.key)
    assert position(changes, Action.CREATE, NS.key) < position(changes, Action.CREATE, PAIR.key)


def test_observed_fields_left_open_by_the_topology_are_not_drift() -> None:
    observed = LinuxBridge("tbr", "vnet:t:tbr", forward_delay=15.0, ageing_time=300, mtu=1500)
    assert plan((BR,), (observed,)) == []


def test_ovs_changes_share_one_wave_for_one_transaction() -> None:
    bridges = [OvsBridge(f"ob{k}", "netdev") for k in range(2)]
    ports = [OvsPort(f"ob{k % 2}", f"p{k}", device_key=PAIR.key if k == 0 else None) for k in range(4)]
    result = make_plan(DesiredState("t", state(NS, BR, PAIR, *bridges, *ports)),
                       ObservedState("t", {}, {}, {}))
    ovs_waves = [w for w in result.waves if any(c.key[0].startswith("ovs-") for c in w)]
    assert len(ovs_waves) == 1
    assert {c.key for c in ovs_waves[0]} == {r.key for r in (*bridges, *ports)}


def test_compile_names_fit_ifnamsiz_and_are_stable(tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text("name: naming\nswitches:\n  nm-br: {type: linux}\n  nm-ovs: {type: ovs}\n"
                    "nodes:\n  a-very-long-node-name: {}\n  t: {kind: tap}\n"
                    "links:\n  - {endpoints: [a-very-long-node-name:eth0, nm-br]}\n"
                    "  - {endpoints: [t:eth0, nm-ovs]}\n  - {endpoints: [nm-br, nm-ovs], vlan: 5}\n")
    lab = vnet.load(str(path))
    first = compile_lab(lab, HostFacts())
    again = compile_lab(vnet.load(str(path)), HostFacts())
    assert first == again
    names = [name for r in first.resources.values() for ns, name in r.occupies() if ns == HOST]
    assert names and all(len(n) <= 15 for n in names)
    assert all(r.datapath == "netdev" for r in first.resources.values() if isinstance(r, OvsBridge))
    kernel = compile_lab(lab, HostFacts((OvsFacts(True),)))
    assert all(r.datapath == "system" for r in kernel.resources.values() if isinstance(r, OvsBridge))
    peer = next(r for r in first.resources.values() if isinstance(r, VethPair) and r.a.netns != HOST)
    assert peer.a.alias == "vnet:naming:a-very-long-node-name:eth0"
    assert peer.b.alias.endswith(":peer") and peer.b.master == "nm-br"


def test_changes_say_where_they_come_from_and_the_values() -> None:
    port = OvsPort("ovsb", "vnabc", tag=10, device_key=PAIR.key)
    moved = OvsPort("ovsb", "vnabc", tag=20, device_key=PAIR.key)
    [update] = plan((NS, PAIR, OvsBridge("ovsb", "netdev"), moved),
                    (NS, PAIR, OvsBridge("ovsb", "netdev"), port))
    assert update.action is Action.UPDATE and update.origin == "h1:eth0"  # through its device
    assert [(d.field, d.old, d.new) for d in update.differences] == [("tag", "10", "20")]
    assert update.explained() == "differs: tag 10 → 20"
    assert update.to_json()["differences"] == [{"field": "tag", "old": "10", "new": "20"}]
    assert update.inverse().differences[0].new == "10"  # a rollback goes back
    # an end's field by its dotted name; an address follows its device; a namespace is its node
    thin = dataclasses.replace(PAIR, a=dataclasses.replace(PAIR.a, mtu=9000))
    [veth] = plan((NS, thin, ADDR), (NS, PAIR, ADDR))
    assert veth.explained() == "differs: a.mtu 1500 → 9000"
    [created] = plan((NS, PAIR, ADDR), (NS, PAIR))
    assert created.origin == "h1:eth0"
    assert plan((NS,), ())[0].origin == "h1" and plan((BR,), ())[0].origin == "tbr"


def test_long_values_show_what_was_removed_and_added() -> None:
    argv = tuple(f"-option{k}" for k in range(20))
    old = Vm("t", "vm1", argv)
    new = Vm("t", "vm1", (*argv[:-1], "-changed"))
    [stop, _] = plan((new,), (old,))
    assert stop.origin == "vm1" and stop.reason.startswith("restart")
    assert stop.explained() == "restart: argv -option19 → -changed"

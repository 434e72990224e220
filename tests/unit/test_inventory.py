"""`status`'s per-node view, from hand-made observed states (no host access)."""

from __future__ import annotations

from vnet.mechanisms.kernel.resources import Address, DeviceEnd, LinuxBridge, Netns, Route, Tap, VethPair
from vnet.mechanisms.ovs.resources import OvsBridge, OvsPort
from vnet.mechanisms.qemu.resources import Vm
from vnet.pipeline.inventory import nodes
from vnet.resources import HOST, Resource, ResourceKey


def state(*resources: Resource) -> dict[ResourceKey, Resource]:
    return {r.key: r for r in resources}


NS = Netns("vnet-t-h1", "vnet:t:h1")
PAIR = VethPair(DeviceEnd("vnet-t-h1", "eth0", "vnet:t:h1:eth0", mac="02:00:00:00:00:01"),
                DeviceEnd(HOST, "vnabc", "vnet:t:h1:eth0:peer"))
TAP = Tap(DeviceEnd(HOST, "vtdef", "vnet:t:vm1:eth0", master="tbr"))
VM = Vm("t", "vm1", ("qemu-system-x86_64", "-accel", "kvm", "-serial", "file:/run/vnet/t/vm1/serial.log",
                     "-netdev", "tap,id=net0,ifname=vtdef,script=no",
                     "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:00:00:07,id=nic0"),
        (TAP.key,), pid=4242)
SWITCH_LINK = VethPair(DeviceEnd(HOST, "vbx", "vnet:t:ovsb~tbr#0:ovsb"),
                       DeviceEnd(HOST, "vby", "vnet:t:ovsb~tbr#0:tbr", master="tbr"))


def test_nodes_gather_what_each_resource_says() -> None:
    found = {n.name: n for n in nodes("t", state(
        NS, PAIR, Address("vnet-t-h1", "eth0", "198.18.0.1/24", PAIR.key),
        Route("vnet-t-h1", "0.0.0.0/0", "198.18.0.254"),
        OvsBridge("ovsb", "netdev"), OvsPort("ovsb", "vnabc", tag=10, device_key=PAIR.key),
        LinuxBridge("tbr", "vnet:t:tbr"), TAP, VM, SWITCH_LINK))}
    assert sorted(found) == ["h1", "ovsb", "tbr", "vm1"]  # no node for the switch-to-switch link
    h1 = found["h1"]
    assert h1.kind == "netns"
    assert dict(h1.facts) == {"namespace": ("vnet-t-h1",), "route": ("0.0.0.0/0 via 198.18.0.254",)}
    [eth0] = h1.interfaces
    assert dict(eth0.facts) == {"mac": ("02:00:00:00:00:01",), "peer": ("vnabc",),
                                "address": ("198.18.0.1/24",), "switch": ("ovsb",),
                                "ovs port": ("vnabc",), "vlan": ("10",)}
    vm1 = found["vm1"]
    assert vm1.kind == "vm"
    assert dict(vm1.facts) == {"pid": ("4242",), "accel": ("kvm",),
                               "serial log": ("/run/vnet/t/vm1/serial.log",)}
    assert dict(vm1.interfaces[0].facts) == {"tap": ("vtdef",), "switch": ("tbr",),
                                             "mac": ("52:54:00:00:00:07",)}
    assert (found["ovsb"].kind, found["tbr"].kind) == ("ovs switch", "linux switch")


def test_kinds_from_the_file_win() -> None:
    [t1] = nodes("t", state(Tap(DeviceEnd(HOST, "vtaaa", "vnet:t:t1:eth0"))), {"t1": "tap"})
    assert (t1.name, t1.kind) == ("t1", "tap")
    [unknown] = nodes("t", state(Tap(DeviceEnd(HOST, "vtaaa", "vnet:t:t1:eth0"))))
    assert unknown.kind == "-"
    assert nodes("other", state(NS)) == ()  # another lab's marks say nothing of this one


def test_an_observed_port_on_a_tap_is_the_tap_nodes() -> None:
    # observed ports name their device only by name (no device_key): the TAP says whose it is
    tap = Tap(DeviceEnd(HOST, "vtdef", "vnet:t:vm1:eth0"))
    found = {n.name: n for n in nodes("t", state(tap, OvsBridge("ovsb", "netdev"),
                                                   OvsPort("ovsb", "vtdef", tag=10)))}
    assert dict(found["vm1"].interfaces[0].facts) == {"tap": ("vtdef",), "switch": ("ovsb",),
                                                      "ovs port": ("vtdef",), "vlan": ("10",)}
    alone = nodes("t", state(OvsBridge("ovsb", "netdev"), OvsPort("ovsb", "vtdef", tag=10)))
    assert [n.name for n in alone] == ["ovsb"]  # without its device, the port is no node's

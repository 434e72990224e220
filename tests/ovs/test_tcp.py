"""TCP bulk transfer across a userspace (netdev) OVS bridge, and why vnet turns off transmit
checksum offload on the node end of each veth: with it on, the userspace datapath forwards
segments whose checksum was never filled in, and the receiver drops them."""

from __future__ import annotations

from ovslib import Labs, PrivateOvs, bulk_transfer

from vnet import api
from vnet.host import netns
from vnet.mechanisms.kernel import ethtool
from vnet.resources import Action

PAIR = """
name: $lab
switches:
  $b1: {type: ovs}
nodes:
  snd: {kind: netns}
  rcv: {kind: netns}
links:
  - {endpoints: [snd:eth0, $b1], vlan: 10, ip: 198.18.8.1/24}
  - {endpoints: [rcv:eth0, $b1], vlan: 10, ip: 198.18.8.2/24}
"""
SIZE = 32 << 20  # bytes


def tx_checksum(namespace: str, device: str) -> bool:
    with netns.entered(namespace):
        sock = ethtool.control_socket()
    with sock:
        return ethtool.tx_checksum(sock, device)


def set_tx_checksum(namespace: str, device: str, enabled: bool) -> None:
    with netns.entered(namespace):
        sock = ethtool.control_socket()
    with sock:
        ethtool.set_tx_checksum(sock, device, enabled)


def test_tcp_bulk_transfer_needs_tx_checksum_off(labs: Labs, ovs: PrivateOvs) -> None:
    files, lab = labs.up(PAIR, "tcp")
    sender, receiver = files.namespace("snd"), files.namespace("rcv")
    assert ovs.row("Bridge", files.bridge(1))["datapath_type"] == "netdev"
    assert not tx_checksum(sender, "eth0") and not tx_checksum(receiver, "eth0")

    good = bulk_transfer(sender, receiver, "198.18.8.2", SIZE, timeout=60)
    assert good.complete, good

    # What vnet prevents: the node end offloads its checksums again (`ethtool -K eth0 tx on`).
    set_tx_checksum(sender, "eth0", True)
    assert tx_checksum(sender, "eth0")
    broken = bulk_transfer(sender, receiver, "198.18.8.2", SIZE, timeout=5)
    assert not broken.complete, f"TCP worked with tx checksum offload on: {broken}"

    plan = api.plan(lab, ovsdb=ovs.remote)
    assert len(plan.changes) == 1, plan.to_json()
    change = plan.changes[0]
    assert (change.action, change.key[0]) == (Action.UPDATE, "veth")
    assert "tx_checksum" in change.reason, change.reason

    api.apply(lab, ovsdb=ovs.remote)
    assert not tx_checksum(sender, "eth0")
    assert api.plan(lab, ovsdb=ovs.remote).empty
    again = bulk_transfer(sender, receiver, "198.18.8.2", SIZE, timeout=60)
    assert again.complete, again

"""`vnet capture` on an OVS switch (userspace datapath, VLAN 10 access ports): a tiny VM's NIC
(its TAP, an OVS port), a namespace on an OVS internal port, and a namespace's veth with its
host end (the OVS port, `--both`). Pings from h1 to the VM and to h2; the files are read back
with dpkt (tests/pcapnglib.py): each echo request and reply is on each interface, in the
direction the node (or, for the host end, the host) sees it.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from ovslib import Labs, PrivateOvs, run
from pcapnglib import INBOUND, OUTBOUND, PING, finish, icmp, read, start

from vnet.marks import netns_name

pytestmark = pytest.mark.root

LAB = """
name: $lab
switches:
  $b1: {type: ovs}
nodes:
  vm1: {kind: vm, image: tiny, memory: 128}
  h1: {kind: netns}
  h2: {kind: netns}
links:
  - {endpoints: [vm1:eth0, $b1], vlan: 10, ip: 198.18.88.5/24}
  - {endpoints: [h1:eth0, $b1], vlan: 10, ip: 198.18.88.1/24}
  - {endpoints: [h2:eth0, $b1], vlan: 10, ip: 198.18.88.2/24, attach: internal}
"""
H1, H2, VM1 = bytes([198, 18, 88, 1]), bytes([198, 18, 88, 2]), bytes([198, 18, 88, 5])


def test_capture_on_a_vm_nic_an_internal_port_and_an_ovs_port(labs: Labs, ovs: PrivateOvs,
                                                              tmp_path: Path) -> None:
    files, lab = labs.up(LAB, "oc")
    path, h1 = str(files.files[-1]), netns_name(lab.name, "h1")

    def ping(address: str, count: int) -> None:
        run("ip", "netns", "exec", h1, *PING, "-c", str(count), "-i", "0.2", "-W", "5", address)

    for address in ("198.18.88.5", "198.18.88.2"):
        ping(address, 1)  # neighbours resolved before the capture
    env = {"VNET_OVSDB": ovs.remote}
    nodes_out, h1_out = tmp_path / "nodes.pcapng", tmp_path / "h1.pcapng"
    nodes = start(path, "vm1:eth0", "h2:eth0", "-w", str(nodes_out), env=env)
    both = start(path, "h1:eth0", "--both", "-w", str(h1_out), env=env)
    ping("198.18.88.5", 3)
    ping("198.18.88.2", 3)
    for proc in (nodes, both):  # Ctrl-C once every ping has its answer, however slow the host:
        # what the sockets hold by then is written too
        proc.send_signal(signal.SIGINT)
        finish(proc)
    found = read(nodes_out.read_bytes())
    assert [name.split(" ")[0] for name in found.interfaces] == ["vm1:eth0", "h2:eth0"]
    assert set(icmp(found, 0, 8)) == {(INBOUND, H1, VM1)}  # on the VM's NIC, as the guest sees it
    assert set(icmp(found, 0, 0)) == {(OUTBOUND, VM1, H1)}
    assert set(icmp(found, 1, 8)) == {(INBOUND, H1, H2)}  # the internal port, in h2's namespace
    assert set(icmp(found, 1, 0)) == {(OUTBOUND, H2, H1)}
    assert len(icmp(found, 0, 8)) == len(icmp(found, 1, 8)) == 3
    seen = read(h1_out.read_bytes())
    assert len(seen.interfaces) == 2  # h1's eth0, and its host end: the OVS port
    for interface, request, reply in ((0, OUTBOUND, INBOUND), (1, INBOUND, OUTBOUND)):
        assert {d for d, _, _ in icmp(seen, interface, 8)} == {request}, interface
        assert {d for d, _, _ in icmp(seen, interface, 0)} == {reply}, interface
        assert len(icmp(seen, interface, 8)) == 6

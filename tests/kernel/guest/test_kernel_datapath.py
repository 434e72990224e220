"""Inside the guest kernel: OVS on the kernel datapath, and Linux bridge VLAN filtering, for real.

The CI/dev kernel has neither (README, "Development"), so the OVS tests in tests/ run on the userspace
datapath there. Here the same VLAN / trunk / patch-port cases are built with `datapath: system`
and with `datapath: auto` (which must now pick the kernel datapath), proved with `verify`, checked
from the outside (OVSDB, `ovs-appctl dpif/show`, the kernel's own view of the ports) and
destroyed without leftovers.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import string
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from vnet import api
from vnet.cli import cli
from vnet.host import features, netns
from vnet.host.ovs_daemon import OvsPaths
from vnet.topology import load
from vnet.topology.lab import Lab

from .conftest import run

VERIFY_TIMEOUT = 5.0  # seconds per probe round: everything is emulated (TCG), ARP included

# Three cases in one lab (one apply, one verify): two tenants on one OVS bridge in the same
# subnet but different VLANs; a trunk between two OVS bridges by patch ports; an OVS access
# port (VLAN 10) into a VLAN-unaware Linux bridge by a veth pair.
OVS_LAB = """
name: $lab
switches:
  ${lab}a: {type: ovs, datapath: $datapath}
  ${lab}b: {type: ovs, datapath: $datapath}
  ${lab}l: {type: linux}
nodes:
  h1: {kind: netns}
  h2: {kind: netns}
  h3: {kind: netns}
  h4: {kind: netns}
  h5: {kind: netns}
  h6: {kind: netns}
links:
  - {endpoints: [h1:eth0, ${lab}a], vlan: 10, ip: 198.18.40.1/24}
  - {endpoints: [h2:eth0, ${lab}a], vlan: 20, ip: 198.18.40.2/24}
  - {endpoints: [h6:eth0, ${lab}a], vlan: 10, ip: 198.18.40.6/24}
  - {endpoints: ["${lab}a", "${lab}b"], trunk: [10, 20]}
  - {endpoints: [h3:eth0, ${lab}b], vlan: 10, ip: 198.18.40.3/24}
  - {endpoints: [h4:eth0, ${lab}b], vlan: 20, ip: 198.18.40.4/24}
  - {endpoints: ["${lab}b", "${lab}l"], vlan: 10}
  - {endpoints: [h5:eth0, ${lab}l], ip: 198.18.40.5/24}
expect:
  - {from: h1, to: h6}                 # same bridge, same VLAN
  - {from: h1, to: h2, reach: false}   # same bridge, same subnet, other VLAN
  - {from: h2, to: h6, reach: false}
  - {from: h1, to: h3}                 # VLAN 10 over the patch-port trunk
  - {from: h4, to: h2}                 # VLAN 20 over the patch-port trunk
  - {from: h3, to: h2, reach: false}
  - {from: h1, to: h4, reach: false}
  - {from: h5, to: h1}                 # Linux bridge behind the OVS access port is VLAN 10
  - {from: h3, to: h5}
  - {from: h5, to: h4, reach: false}   # ... and VLAN 20 does not leak into it
  - {from: h2, to: h5, reach: false}
  - {from: h1, to: h3, proto: tcp}     # TCP and UDP to vnet's listeners, across the patch trunk
  - {from: h3, to: h1, proto: udp}
  - {from: h5, to: h3, mtu: 1500}      # a full-size frame through the Linux bridge and the trunk
  - {from: h1, to: h4, proto: tcp, reach: false}
"""

# A VLAN-aware Linux bridge (access ports and a trunk) joined to an OVS bridge by a veth trunk.
FILTERING_LAB = """
name: $lab
switches:
  ${lab}l: {type: linux, vlan_filtering: true}
  ${lab}o: {type: ovs, datapath: system}
nodes:
  h1: {kind: netns}
  h2: {kind: netns}
  h3: {kind: netns}
  h4: {kind: netns}
  h5: {kind: netns}
links:
  - {endpoints: [h1:eth0, ${lab}l], vlan: 10, ip: 198.18.41.1/24}
  - {endpoints: [h2:eth0, ${lab}l], vlan: 20, ip: 198.18.41.2/24}
  - {endpoints: [h5:eth0, ${lab}l], vlan: 10, ip: 198.18.41.5/24}
  - {endpoints: ["${lab}l", "${lab}o"], trunk: [10, 20]}
  - {endpoints: [h3:eth0, ${lab}o], vlan: 10, ip: 198.18.41.3/24}
  - {endpoints: [h4:eth0, ${lab}o], vlan: 20, ip: 198.18.41.4/24}
expect:
  - {from: h1, to: h5}                 # same VLAN on the filtering bridge
  - {from: h1, to: h2, reach: false}   # other VLAN on the filtering bridge
  - {from: h1, to: h3}                 # VLAN 10 over the veth trunk into OVS
  - {from: h4, to: h2}                 # VLAN 20 over the veth trunk
  - {from: h2, to: h3, reach: false}
  - {from: h4, to: h5, reach: false}
"""


def write_lab(directory: Path, template: str, **values: str) -> Lab:
    lab = "kd" + secrets.token_hex(2)
    path = directory / f"{lab}.yaml"
    path.write_text(string.Template(template).substitute(lab=lab, **values))
    return load(str(path))


def vsctl(ovs: OvsPaths, *args: str) -> str:
    return run("ovs-vsctl", f"--db={ovs.remote}", "--timeout=30", *args)


def dpif_show(ovs: OvsPaths) -> str:
    return run("ovs-appctl", "-t", ovs.file("ovs-vswitchd.ctl"), "dpif/show")


def ovs_bridges(lab: Lab) -> list[str]:
    return sorted(n for n, s in lab.topology.switches.items() if s.type == "ovs")


def ip_links(*args: str) -> list[dict[str, Any]]:
    links: list[dict[str, Any]] = json.loads(run("ip", "-j", "-d", "link", "show", *args) or "[]")
    return links


def assert_verified(lab: Lab, ovs: OvsPaths) -> None:
    report = api.verify(lab, timeout=VERIFY_TIMEOUT, ovsdb=ovs.remote)
    if not report.ok:
        data = report.to_json()
        failed = [p for p in data["probes"] if not p.get("ok")]
        pytest.fail(f"vnet verify failed for lab {lab.name}: drift {data['drift']}; "
                    f"failed probes: {json.dumps(failed, indent=1)}", pytrace=False)


def ovsdb_rows(ovs: OvsPaths, table: str, *columns: str) -> list[dict[str, Any]]:
    """`ovs-vsctl list TABLE` as dicts of the named columns (atoms only)."""
    listed = json.loads(vsctl(ovs, "--format=json", "--data=json", f"--columns={','.join(columns)}",
                              "list", table))
    return [dict(zip(listed["headings"], row, strict=True)) for row in listed["data"]]


def assert_kernel_datapath(lab: Lab, ovs: OvsPaths) -> None:
    """Every OVS bridge of the lab is on the kernel datapath, as OVSDB, vswitchd and the kernel say."""
    datapaths = {r["name"]: r["datapath_type"] for r in ovsdb_rows(ovs, "Bridge", "name", "datapath_type")}
    assert {b: datapaths.get(b) for b in ovs_bridges(lab)} == dict.fromkeys(ovs_bridges(lab), "system")
    shown = dpif_show(ovs)
    assert "system@ovs-system" in shown, shown
    for bridge in ovs_bridges(lab):
        assert f"  {bridge}:" in shown.splitlines(), f"{bridge} not in dpif/show:\n{shown}"
    # each system port (a veth end) of a kernel-datapath bridge is a port of the ovs-system device
    system_ports = {r["name"] for r in ovsdb_rows(ovs, "Interface", "name", "type") if r["type"] == ""}
    enslaved = {str(link["ifname"]) for link in ip_links("master", "ovs-system")}
    assert system_ports, "no system ports in OVSDB"
    assert system_ports <= enslaved, f"not ports of ovs-system: {sorted(system_ports - enslaved)}"


def destroy_and_check(lab: Lab, ovs: OvsPaths) -> None:
    api.destroy(lab.name, wait=True, ovsdb=ovs.remote)
    for table in ("Bridge", "Port", "Interface"):
        rows = vsctl(ovs, "--bare", "--columns=name", "find", table, f"external_ids:vnet-lab={lab.name}")
        assert not rows.strip(), f"{table} rows of {lab.name} left after destroy: {rows}"
    assert not set(vsctl(ovs, "list-br").split()) & set(ovs_bridges(lab))
    shown = dpif_show(ovs)
    assert not [b for b in ovs_bridges(lab) if f"  {b}:" in shown.splitlines()], shown
    deadline = time.monotonic() + 15  # namespaces take their devices with them asynchronously
    while True:
        devices = [str(link["ifname"]) for link in ip_links()
                   if str(link.get("ifalias", "")).startswith(f"vnet:{lab.name}:")
                   or str(link["ifname"]) in lab.topology.switches]
        spaces = [n for n in run("ip", "netns", "list").split() if n.startswith(f"vnet-{lab.name}-")]
        if not devices and not spaces:
            break
        assert time.monotonic() < deadline, f"left after destroy: devices {devices}, namespaces {spaces}"
        time.sleep(0.2)


def test_auto_finds_the_datapath_before_the_module_is_loaded() -> None:
    """On a host where nothing loaded openvswitch yet, `datapath: auto` still picks the kernel
    datapath: asking for the generic netlink family makes the kernel load the module (its
    alias net-pf-16-proto-16-family-ovs_datapath). Runs first, before `kernel_modules`."""
    if Path("/sys/module/openvswitch").exists():
        pytest.skip("openvswitch is already loaded: nothing to show")
    features.ovs_kernel_datapath.cache_clear()
    assert features.ovs_kernel_datapath()
    assert Path("/sys/module/openvswitch").is_dir()


def test_kernel_has_the_ovs_datapath(kernel_modules: None) -> None:
    assert Path("/sys/module/openvswitch").is_dir()
    assert Path("/sys/module/8021q").is_dir()
    features.ovs_kernel_datapath.cache_clear()
    assert features.ovs_kernel_datapath(), "the ovs_datapath generic netlink family is missing"


@pytest.mark.parametrize("datapath", ["system", "auto"])
def test_vlans_trunk_patch_on_the_kernel_datapath(ovs: OvsPaths, tmp_path: Path, datapath: str) -> None:
    features.ovs_kernel_datapath.cache_clear()
    lab = write_lab(tmp_path, OVS_LAB, datapath=datapath)
    try:
        # what `vnet plan` says before anything exists: the datapath it will use, and why
        result = CliRunner().invoke(cli, ["plan", lab.file, "--json", "--ovsdb", ovs.remote])
        assert result.exit_code == 0, (result.output, result.exception)
        notes = json.loads(result.output)["notes"]
        for bridge in ovs_bridges(lab):
            if datapath == "auto":  # vnet chose, so it says which and why
                assert any(n.startswith(f"OVS bridge {bridge}: datapath system") for n in notes), notes
            assert api.desired_state(lab).resources[("ovs-bridge", bridge)].datapath == "system"
        api.apply(lab, ovsdb=ovs.remote)
        assert_kernel_datapath(lab, ovs)
        again = api.plan(lab, ovsdb=ovs.remote)
        assert again.empty, [c.to_json() for c in again.changes]
        assert_verified(lab, ovs)
    finally:
        destroy_and_check(lab, ovs)


def _transfer(lab: Lab, sender: str, receiver: str, address: str, proto: str) -> tuple[int, int]:
    """(bytes sent, bytes received) of 4 MB over TCP, or 200 datagrams of 1000 bytes over UDP."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with netns.entered(f"vnet-{lab.name}-{receiver}"):
        server = socket.socket(socket.AF_INET, kind)
    with netns.entered(f"vnet-{lab.name}-{sender}"):
        client = socket.socket(socket.AF_INET, kind)
    received = [0]
    with server, client:
        server.bind((address, 0))
        server.settimeout(20)
        if proto == "tcp":
            server.listen(1)

        def count() -> None:
            with contextlib.suppress(OSError):
                conn = server.accept()[0] if proto == "tcp" else server
                conn.settimeout(3 if proto == "udp" else 20)
                while data := conn.recv(1 << 20):
                    received[0] += len(data)

        thread = threading.Thread(target=count)
        thread.start()
        client.settimeout(20)
        client.connect(server.getsockname())
        if proto == "tcp":
            client.sendall(b"\xa5" * (4 << 20))
            client.shutdown(socket.SHUT_WR)
            sent = 4 << 20
        else:
            for _ in range(200):
                client.send(b"\x5a" * 1000)
                time.sleep(0.002)
            sent = 200 * 1000
        thread.join(30)
    return sent, received[0]


def test_tcp_and_udp_on_the_kernel_datapath(ovs: OvsPaths, tmp_path: Path) -> None:
    """Namespaces across two kernel-datapath bridges joined by patch ports (VMs are not nested
    here: a guest inside this TCG guest would take minutes to boot)."""
    lab = write_lab(tmp_path, OVS_LAB, datapath="system")
    try:
        api.apply(lab, ovsdb=ovs.remote)
        assert_kernel_datapath(lab, ovs)
        sent, received = _transfer(lab, "h1", "h3", "198.18.40.3", "tcp")
        assert received == sent
        sent, received = _transfer(lab, "h3", "h1", "198.18.40.1", "udp")
        assert received >= 0.9 * sent, (received, sent)
    finally:
        destroy_and_check(lab, ovs)


def test_linux_bridge_vlan_filtering(ovs: OvsPaths, tmp_path: Path) -> None:
    features.bridge_vlan_filtering.cache_clear()
    assert features.bridge_vlan_filtering(), "the guest kernel should have CONFIG_BRIDGE_VLAN_FILTERING"
    lab = write_lab(tmp_path, FILTERING_LAB)
    bridge = f"{lab.name}l"
    try:
        api.apply(lab, ovsdb=ovs.remote)
        [info] = ip_links("dev", bridge)
        assert info["linkinfo"]["info_data"]["vlan_filtering"] == 1, info
        vlans = json.loads(run("bridge", "-j", "vlan", "show"))
        ports = {str(entry["ifname"]): {v["vlan"] for v in entry["vlans"]} for entry in vlans}
        assert {10} in ports.values() and {20} in ports.values() and {10, 20} in ports.values(), ports
        assert_kernel_datapath(lab, ovs)
        again = api.plan(lab, ovsdb=ovs.remote)
        assert again.empty, [c.to_json() for c in again.changes]
        assert_verified(lab, ovs)
    finally:
        destroy_and_check(lab, ovs)

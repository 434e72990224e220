"""Lab lifecycle on OVS: destroy leaves nothing, unowned names are refused, one OVSDB transaction
per apply, a port vswitchd refuses rolls the apply back, two labs never touch each other."""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hanglib import returns
from ovslib import Labs, PrivateOvs, kernel_leftovers, vnet, wait_for

from vnet import api
from vnet.errors import VnetError
from vnet.mechanisms.ovs.client import OvsdbClient
from vnet.mechanisms.ovs.driver import OvsDriver
from vnet.resources import Change, Failure

EVERYTHING = """
name: $lab
switches:
  $b1: {type: ovs}
  $b2: {type: ovs}
  $b3: {type: linux}
nodes:
  h1: {kind: netns}
  h2: {kind: netns}
  h3: {kind: netns}
  h4: {kind: netns}
links:
  - {endpoints: [h1:eth0, $b1], vlan: 10, ip: 198.18.9.1/24}
  - {endpoints: [h2:eth0, $b1], vlan: 20, ip: 198.18.9.2/24}
  - {endpoints: [$b1, $b2], trunk: [10, 20]}
  - {endpoints: [h3:eth0, $b2], vlan: 10, ip: 198.18.9.3/24}
  - {endpoints: [$b2, $b3], vlan: 20}
  - {endpoints: [h4:eth0, $b3], ip: 198.18.9.4/24}
  - {endpoints: [$b1, "geneve:198.19.9.1"], key: 9}
"""


def test_destroy_leaves_no_rows_and_no_devices(labs: Labs, ovs: PrivateOvs) -> None:
    bridges_before = ovs.bridges()
    files, _ = labs.up(EVERYTHING, "des")
    assert len(ovs.lab_rows(files.name)) > 10
    assert {files.bridge(1), files.bridge(2)} <= set(ovs.bridges())
    assert kernel_leftovers(files), "the lab has host devices and namespaces"

    report = api.destroy(files.name, ovsdb=ovs.remote)
    assert report.ovs_bridges == 2
    assert ovs.lab_rows(files.name) == []
    assert ovs.bridges() == bridges_before
    wait_for(lambda: not kernel_leftovers(files), 10, "the lab's devices and namespaces to go")
    assert api.labs(ovsdb=ovs.remote).count(files.name) == 0


def test_unowned_bridge_with_colliding_name_is_refused(labs: Labs, hand_bridges: list[str],
                                                       ovs: PrivateOvs) -> None:
    files = labs.new("col")
    taken = files.bridge(1)
    ovs.vsctl("add-br", taken, "--", "set", "Bridge", taken, "datapath_type=netdev",
              "other_config:made-by=hand")
    hand_bridges.append(taken)
    columns = ("_uuid", "name", "ports", "external_ids", "other_config", "datapath_type", "fail_mode",
               "stp_enable")

    def hand_made() -> dict[str, Any]:
        row = ovs.row("Bridge", taken)
        return {c: row[c] for c in columns}

    before = hand_made()
    path = files.write("""
name: $lab
switches:
  $b1: {type: ovs}
nodes:
  h1: {kind: netns}
  h2: {kind: netns}
links:
  - {endpoints: [h1:eth0, $b1], vlan: 10, ip: 198.18.10.1/24}
  - {endpoints: [h2:eth0, $b1], vlan: 10, ip: 198.18.10.2/24}
""")
    done = vnet("apply", str(path), "--ovsdb", ovs.remote)
    output = done.stdout + done.stderr
    assert done.returncode == 69, output
    assert taken in output and "something other than vnet" in output, output

    assert ovs.lab_rows(files.name) == []
    assert [w for w in kernel_leftovers(files) if w != f"device {taken}"] == [], "nothing of the lab"
    assert hand_made() == before
    api.destroy(files.name, ovsdb=ovs.remote)
    assert hand_made() == before, "destroy does not touch it either"


def test_one_ovsdb_transaction_per_apply(labs: Labs, ovs: PrivateOvs, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    calls: list[int] = []
    real = OvsDriver.execute

    def counted(self: OvsDriver, changes: Sequence[Change]) -> list[Failure | None]:
        calls.append(len(changes))
        return real(self, changes)

    monkeypatch.setattr(OvsDriver, "execute", counted)
    files, lab = labs.up(EVERYTHING, "txn")
    # 2 bridges; ports: 3 node veths, 2 patch ends, 1 OVS end of the veth to the Linux bridge, 1 tunnel
    assert calls == [9], calls
    assert len(ovs.lab_rows(files.name)) == 2 + 2 * 7  # Bridge rows; Port and Interface rows
    calls.clear()
    api.apply(lab, ovsdb=ovs.remote)
    assert calls == [], "a no-op re-apply does not talk to OVSDB for changes"


REFUSED = """
name: $lab
switches:
  $b1: {type: ovs}
nodes:
  h1: {kind: netns}
links:
  - {endpoints: [h1:eth0, $b1], vlan: 10, ip: 198.18.11.1/24}
  - {endpoints: [$b1, "vxlan:$remote"], key: 11}
"""


def test_port_refused_by_vswitchd_fails_the_apply_and_rolls_back(labs: Labs, ovs: PrivateOvs) -> None:
    files = labs.new("ref")
    # A multicast remote_ip is refused by the userspace tunnel code ("not allowed"): the Interface
    # row is committed, but vswitchd sets its `error` and gives it no OpenFlow port.
    lab = files.load(files.write(REFUSED, "bad.yaml", remote="239.1.1.1"))
    with pytest.raises(VnetError) as failure:
        api.apply(lab, ovsdb=ovs.remote)
    message = str(failure.value)
    assert "refused" in message and "239.1.1.1" in message, message
    assert ovs.lab_rows(files.name) == []
    assert files.bridge(1) not in ovs.bridges()
    wait_for(lambda: not kernel_leftovers(files, run_dir=False), 10,
             "the rolled-back devices and namespaces to go")

    # On a bridge the lab already has (so it is not rolled back with its bridge), the refused
    # port's committed rows are taken out: the lab is exactly as before the failed apply.
    good = files.load(files.write(REFUSED, "good.yaml", remote="198.19.11.1"))
    api.apply(good, ovsdb=ovs.remote)
    before = sorted(ovs.lab_rows(files.name))
    with pytest.raises(VnetError, match="multicast"):
        api.apply(files.load(files.write(REFUSED.replace("key: 11", "key: 12"), "more.yaml",
                                         remote="239.1.1.2")), ovsdb=ovs.remote)
    assert sorted(ovs.lab_rows(files.name)) == before
    assert api.plan(good, ovsdb=ovs.remote).empty


def test_vswitchd_not_confirming_in_time_rolls_back(labs: Labs, ovs: PrivateOvs,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The transaction commits, but vswitchd (stopped here) never applies it: apply fails within
    its timeout and takes the committed rows out again, as it does the kernel objects."""
    monkeypatch.setattr(OvsdbClient.__init__, "__defaults__", (4.0,))  # OVSDB timeout: 4 s
    files = labs.new("stl")
    lab = files.load(files.write("""
name: $lab
switches:
  $b1: {type: ovs}
nodes:
  h1: {kind: netns}
links:
  - {endpoints: [h1:eth0, $b1], vlan: 10, ip: 198.18.14.1/24}
"""))
    vswitchd = int(Path(ovs.paths.file("ovs-vswitchd.pid")).read_text())
    os.kill(vswitchd, signal.SIGSTOP)
    try:
        # vswitchd stays stopped: apply ends only through its own timeout (the message below
        # says it was that one); one that waited for vswitchd would hang, caught by `returns`.
        with pytest.raises(VnetError) as failure:
            returns(lambda: api.apply(lab, ovsdb=ovs.remote), "apply with ovs-vswitchd stopped")
        assert ovs.lab_rows(files.name) == [], "committed rows are taken out again"
    finally:
        os.kill(vswitchd, signal.SIGCONT)
    assert "did not apply the change in time" in str(failure.value), failure.value
    wait_for(lambda: not kernel_leftovers(files, run_dir=False), 10, "the rolled-back objects to go")
    assert files.bridge(1) not in ovs.bridges()


TWO = """
name: $lab
switches:
  $b1: {type: ovs}
nodes:
  h1: {kind: netns}
  h2: {kind: netns}
links:
  - {endpoints: [h1:eth0, $b1], vlan: 10, ip: 198.18.12.1/24}
  - {endpoints: [h2:eth0, $b1], trunk: [10, 20], native_vlan: 10, ip: 198.18.12.2/24}
  - {endpoints: [$b1, "vxlan:198.19.12.1"], key: $key}
"""


def test_two_labs_on_one_ovs_never_touch_each_other(labs: Labs, ovs: PrivateOvs) -> None:
    first, lab_a = labs.up(TWO, "twa", key="121")
    rows_a = {table: {r["name"]: r["_uuid"] for r in ovs.find(table, f"external_ids:vnet-lab={first.name}")}
              for table in ("Bridge", "Port", "Interface")}
    second, lab_b = labs.up(TWO, "twb", key="122")
    assert api.plan(lab_a, ovsdb=ovs.remote).empty
    assert api.plan(lab_b, ovsdb=ovs.remote).empty
    assert set(api.labs(ovsdb=ovs.remote)) >= {first.name, second.name}

    done = vnet("destroy", "--lab", second.name, "--ovsdb", ovs.remote)
    assert done.returncode == 0, done.stdout + done.stderr
    assert ovs.lab_rows(second.name) == []
    assert api.plan(lab_a, ovsdb=ovs.remote).empty
    after = {table: {r["name"]: r["_uuid"] for r in ovs.find(table, f"external_ids:vnet-lab={first.name}")}
             for table in ("Bridge", "Port", "Interface")}
    assert after == rows_a
    report = api.verify(lab_a, ovsdb=ovs.remote)
    assert report.ok, report.to_json()

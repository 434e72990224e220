"""The real rtnetlink and devlink code (PyrouteVfNetlink, PyrouteDevlink), without SR-IOV hardware.

- The VF info parser reads a message pyroute2 really encoded and decoded (the kernel's format).
- Every kind of VF request is sent for real, by PyrouteVfNetlink, to `lo` in a throwaway network
  namespace (`unshare --net`): the kernel parses the IFLA_VFINFO_LIST against its policy (a
  malformed attribute would be EINVAL) and then answers EOPNOTSUPP because `lo` has no VFs; that
  answer must arrive as a vnet error, never as a pyroute2 exception.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from vnet.errors import VnetError
from vnet.mechanisms.sriov.host.devlink import PyrouteDevlink
from vnet.mechanisms.sriov.host.netlink import VfConfig, VfRequest, parse_vfinfo, pyroute2_spec

INFO = [("IFLA_VF_MAC", {"vf": 0, "mac": "02:00:00:00:10:00"}),
        ("IFLA_VF_VLAN", {"vf": 0, "vlan": 100, "qos": 3}),
        ("IFLA_VF_RATE", {"vf": 0, "min_tx_rate": 100, "max_tx_rate": 1000}),
        ("IFLA_VF_SPOOFCHK", {"vf": 0, "spoofchk": 1}),
        ("IFLA_VF_TRUST", {"vf": 0, "trust": 0xFFFFFFFF}),  # -1: the driver does not report it
        ("IFLA_VF_LINK_STATE", {"vf": 0, "link_state": 2})]


def test_parse_vfinfo_from_an_encoded_message() -> None:
    second = [("IFLA_VF_MAC", {"vf": 1, "mac": "00:00:00:00:00:00"}),
              ("IFLA_VF_VLAN", {"vf": 1, "vlan": 0, "qos": 0})]
    msg = ifinfmsg()
    msg["index"] = 7
    msg["attrs"] = [("IFLA_IFNAME", "enp3s0f0"), ("IFLA_VFINFO_LIST", {"attrs": [
        ("IFLA_VF_INFO", {"attrs": second}), ("IFLA_VF_INFO", {"attrs": INFO})]})]
    msg.encode()
    decoded = ifinfmsg(msg.data)
    decoded.decode()
    assert parse_vfinfo(decoded) == (
        VfConfig(0, "02:00:00:00:10:00", 100, 3, 100, 1000, True, None, "disable"),
        VfConfig(1),
    )


def test_parse_without_vfs() -> None:
    msg = ifinfmsg()
    msg["attrs"] = [("IFLA_IFNAME", "eth0")]
    msg.encode()
    decoded = ifinfmsg(msg.data)
    decoded.decode()
    assert parse_vfinfo(decoded) == ()


def test_pyroute2_spec_shapes() -> None:
    assert pyroute2_spec(VfRequest(2, "vlan", (("vlan", 10), ("qos", 1)))) == {
        "vf": 2, "vlan": {"vlan": 10, "qos": 1}}
    assert pyroute2_spec(VfRequest(2, "rate", (("min_tx_rate", 0), ("max_tx_rate", 5)))) == {
        "vf": 2, "rate": {"min_tx_rate": 0, "max_tx_rate": 5}}
    assert pyroute2_spec(VfRequest(2, "mac", (("mac", "02:00:00:00:00:01"),))) == {
        "vf": 2, "mac": "02:00:00:00:00:01"}
    assert pyroute2_spec(VfRequest(2, "link_state", (("link_state", 1),))) == {"vf": 2, "link_state": 1}


SCRIPT = """
import json
from vnet.mechanisms.sriov.host.netlink import PyrouteVfNetlink, VfRequest
from vnet.errors import VnetError
requests = [VfRequest(0, "vlan", (("vlan", 100), ("qos", 3))),
            VfRequest(0, "mac", (("mac", "02:00:00:00:10:00"),)),
            VfRequest(0, "rate", (("min_tx_rate", 100), ("max_tx_rate", 1000))),
            VfRequest(0, "spoofchk", (("spoofchk", 1),)), VfRequest(0, "trust", (("trust", 0),)),
            VfRequest(0, "link_state", (("link_state", 2),))]
nl = PyrouteVfNetlink()
lo = nl.ifindex("lo")
out = {"lo": lo, "missing": nl.ifindex("nonexistent0"), "configs": list(nl.vf_configs(lo)), "errors": {}}
for request in requests:
    try:
        nl.set_vf(lo, request)
        out["errors"][request.setting] = None
    except VnetError as exc:
        out["errors"][request.setting] = [type(exc).__name__, getattr(exc, "errno", None), exc.message]
nl.close()
print(json.dumps(out))
"""


@pytest.mark.root
def test_real_requests_reach_the_kernel_and_come_back_as_vnet_errors() -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare (util-linux) for a throwaway network namespace")
    run = subprocess.run(["unshare", "--net", sys.executable, "-c", SCRIPT], capture_output=True,
                         text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["lo"] == 1 and out["missing"] is None and out["configs"] == []
    for setting, error in out["errors"].items():
        assert error is not None, f"{setting} was accepted by lo?"
        name, code, message = error
        assert (name, code) == ("SriovKernelError", 95), f"{setting}: {message}"  # EOPNOTSUPP, not EINVAL


def test_devlink_failures_are_vnet_errors() -> None:
    """On a kernel without devlink (this one) or without the device, no pyroute2 exception leaks."""
    devlink = PyrouteDevlink()
    try:
        with pytest.raises(VnetError) as caught:
            devlink.eswitch_mode("pci", "0000:ff:1f.7")
        assert caught.value.exit_code in (69, 77)
    finally:
        devlink.close()

"""vnet's kernel feature probes (vnet/host/features.py) agree with iproute2 on this kernel.

On the CI/dev kernel (README, "Development") both features are missing, so both probes must say False;
the guest tier (tests/kernel/guest) checks that they say True on Debian's kernel. iproute2 is
asked in a throwaway network namespace (`unshare --net`), so the host is never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from vnet.host import features

pytestmark = pytest.mark.root


@pytest.fixture(autouse=True)
def _root_and_tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("the probes create a scratch network namespace: they need root")
    missing = [t for t in ("unshare", "ip", "genl") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (util-linux, iproute2)")


def succeeds(*argv: str) -> bool:
    return subprocess.run(list(argv), capture_output=True, check=False, timeout=30).returncode == 0


def test_bridge_vlan_filtering_probe_agrees_with_iproute2() -> None:
    kernel_says = succeeds("unshare", "--net", "ip", "link", "add", "vnetprobe0", "type", "bridge",
                           "vlan_filtering", "1")
    features.bridge_vlan_filtering.cache_clear()
    assert features.bridge_vlan_filtering() is kernel_says, \
        f"the probe disagrees with iproute2 on kernel {os.uname().release}"


def test_ovs_datapath_probe_agrees_with_iproute2() -> None:
    kernel_says = succeeds("genl", "ctrl", "get", "name", "ovs_datapath")
    features.ovs_kernel_datapath.cache_clear()
    assert features.ovs_kernel_datapath() is kernel_says, \
        f"the probe disagrees with `genl ctrl get name ovs_datapath` on kernel {os.uname().release}"

"""Per-VF settings against a FAKE PF on rtnetlink (tests/sriov/fakes.py FakePf), which records
each request and answers the VF info list like a real PF: no SR-IOV hardware here."""

from __future__ import annotations

import errno

import pytest

from vnet.mechanisms.sriov.host.errors import SriovKernelError
from vnet.mechanisms.sriov.host.netlink import VfConfig
from vnet.mechanisms.sriov.host.settings import MAC_ATTEMPTS, ORDER, VfSettings, drift, plan_requests

from .rig import PF, Rig

EVERYTHING = VfSettings(mac="02:00:00:00:10:00", vlan=100, qos=3, min_tx_rate=100, max_tx_rate=1000,
                        spoofchk=False, trust=True, link_state="enable")


def test_documented_order() -> None:
    assert ORDER == ("vlan", "mac", "rate", "spoofchk", "trust", "link_state")


def test_settings_applied_in_the_documented_order(rig: Rig) -> None:
    rig.host.ensure_pf(PF, 2)
    config = rig.host.configure_vf(PF, 1, EVERYTHING)
    assert [r.setting for r in rig.netlink.requests] == list(ORDER)
    assert [str(r) for r in rig.netlink.requests] == [
        "vf 1 vlan vlan=100 qos=3",
        "vf 1 mac mac=02:00:00:00:10:00",
        "vf 1 rate min_tx_rate=100 max_tx_rate=1000",
        "vf 1 spoofchk spoofchk=0",
        "vf 1 trust trust=1",
        "vf 1 link_state link_state=1",
    ]
    assert config == VfConfig(1, "02:00:00:00:10:00", 100, 3, 100, 1000, False, True, "enable")
    assert rig.netlink.configs[0] == VfConfig(0, spoofchk=True, trust=False)  # vf0 untouched


def test_only_what_differs_is_sent_and_a_reapply_sends_nothing(rig: Rig) -> None:
    rig.host.ensure_pf(PF, 1)
    rig.host.configure_vf(PF, 0, VfSettings(vlan=10, spoofchk=True, link_state="auto"))
    assert [r.setting for r in rig.netlink.requests] == ["vlan"]  # spoofchk on and auto already
    rig.host.configure_vf(PF, 0, VfSettings(vlan=10, spoofchk=True, link_state="auto"))
    assert len(rig.netlink.requests) == 1


def test_partial_rate_and_qos_keep_the_other_field() -> None:
    have = VfConfig(0, vlan=7, qos=2, min_tx_rate=50, max_tx_rate=500)
    (vlan, rate) = plan_requests(0, VfSettings(vlan=8, max_tx_rate=900), have)
    assert vlan.fields == (("vlan", 8), ("qos", 2))
    assert rate.fields == (("min_tx_rate", 50), ("max_tx_rate", 900))


def test_drift_names_the_settings_that_differ() -> None:
    have = VfConfig(0, mac="02:00:00:00:10:00", vlan=100, trust=False, link_state="auto")
    assert drift(VfSettings(mac="02:00:00:00:10:00", vlan=100), have) == ()
    assert drift(VfSettings(mac="02:00:00:00:10:01", vlan=100, trust=True), have) == ("mac", "trust")
    assert drift(VfSettings(mac="02:00:00:00:10:00".upper()), have) == ()  # MACs compare case-blind


def test_mac_is_read_back_and_retried(rig: Rig) -> None:
    rig.host.ensure_pf(PF, 1)
    rig.netlink.mac_lag = 2  # the PF accepts the first two requests but still shows the old MAC
    config = rig.host.configure_vf(PF, 0, VfSettings(mac="02:00:00:00:00:aa"))
    assert config.mac == "02:00:00:00:00:aa"
    assert [r.setting for r in rig.netlink.requests] == ["mac"] * 3
    assert rig.clock.sleeps == pytest.approx([0.2, 0.4])


def test_mac_retried_on_ebusy(rig: Rig) -> None:
    rig.host.ensure_pf(PF, 1)
    rig.netlink.mac_busy = 1
    assert rig.host.configure_vf(PF, 0, VfSettings(mac="02:00:00:00:00:bb")).mac == "02:00:00:00:00:bb"
    assert len(rig.netlink.requests) == 2


def test_mac_retry_is_bounded(rig: Rig) -> None:
    rig.host.ensure_pf(PF, 1)
    rig.netlink.mac_lag = 100
    stuck = f"still reports 00:00:00:00:00:00 after {MAC_ATTEMPTS}"
    with pytest.raises(SriovKernelError, match=stuck) as err:
        rig.host.configure_vf(PF, 0, VfSettings(mac="02:00:00:00:00:cc", link_state="enable"))
    assert len(rig.netlink.requests) == MAC_ATTEMPTS  # and link_state was never sent
    assert err.value.exit_code == 69 and "trust" in err.value.hint


def test_a_refused_setting_is_a_vnet_error_that_names_it(rig: Rig) -> None:
    rig.host.ensure_pf(PF, 1)
    rig.netlink.refuse["trust"] = errno.EOPNOTSUPP
    with pytest.raises(SriovKernelError, match=r"vf 0 trust trust=1.*EOPNOTSUPP") as caught:
        rig.host.configure_vf(PF, 0, VfSettings(vlan=5, trust=True))
    assert caught.value.hint == "the PF's driver does not support this setting"
    assert [r.setting for r in rig.netlink.requests] == ["vlan", "trust"]


def test_unknown_vf(rig: Rig) -> None:
    rig.host.ensure_pf(PF, 2)
    with pytest.raises(Exception, match="does not report vf 5"):
        rig.host.configure_vf(PF, 5, VfSettings(vlan=1))

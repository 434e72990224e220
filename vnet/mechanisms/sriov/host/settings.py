"""What one VF should look like, and the netlink requests that get it there, in a fixed order.

Order (each its own RTM_SETLINK): vlan/qos, mac, rate (min/max), spoofchk, trust, link_state.
VLAN first so the VF never sends untagged with its new MAC; the MAC is read back from the PF's
VF info list and retried a bounded number of times (drivers apply it asynchronously or answer
EAGAIN/EBUSY while the VF resets); link_state last so the VF comes up fully configured.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass

from vnet.mechanisms.sriov.host.errors import SriovError, SriovKernelError
from vnet.mechanisms.sriov.host.netlink import LINK_STATES, VfConfig, VfNetlink, VfRequest
from vnet.mechanisms.sriov.host.sysfs import Clock

MAC_ATTEMPTS = 5
MAC_RETRY_DELAY = 0.2  # seconds, times the attempt number
RETRY_ERRNOS = frozenset({errno.EAGAIN, errno.EBUSY})

Fields = tuple[tuple[str, int | str], ...]


@dataclass(frozen=True)
class VfSettings:
    """The settings a topology asks for one VF; None leaves a setting as it is. Rates in Mbit/s."""

    mac: str | None = None
    vlan: int | None = None
    qos: int | None = None
    min_tx_rate: int | None = None
    max_tx_rate: int | None = None
    spoofchk: bool | None = None
    trust: bool | None = None
    link_state: str | None = None  # auto | enable | disable

    @classmethod
    def from_config(cls, config: VfConfig) -> VfSettings:
        """Every setting as observed (to restore a VF's original configuration)."""
        return cls(config.mac, config.vlan, config.qos, config.min_tx_rate, config.max_tx_rate,
                   config.spoofchk, config.trust, config.link_state)


def _vlan(want: VfSettings, have: VfConfig) -> Fields | None:
    if want.vlan is None and want.qos is None:
        return None
    vlan = have.vlan if want.vlan is None else want.vlan
    qos = have.qos if want.qos is None else want.qos
    return None if (vlan, qos) == (have.vlan, have.qos) else (("vlan", vlan), ("qos", qos))


def _mac(want: VfSettings, have: VfConfig) -> Fields | None:
    if want.mac is None or want.mac.lower() == have.mac.lower():
        return None
    return (("mac", want.mac.lower()),)


def _rate(want: VfSettings, have: VfConfig) -> Fields | None:
    low = have.min_tx_rate if want.min_tx_rate is None else want.min_tx_rate
    high = have.max_tx_rate if want.max_tx_rate is None else want.max_tx_rate
    if (low, high) == (have.min_tx_rate, have.max_tx_rate):
        return None
    return (("min_tx_rate", low), ("max_tx_rate", high))


def _flag(name: str) -> Callable[[VfSettings, VfConfig], Fields | None]:
    def build(want: VfSettings, have: VfConfig) -> Fields | None:
        value = getattr(want, name)
        return None if value is None or value == getattr(have, name) else ((name, int(value)),)
    return build


def _link_state(want: VfSettings, have: VfConfig) -> Fields | None:
    if want.link_state is None or want.link_state == have.link_state:
        return None
    return (("link_state", LINK_STATES[want.link_state]),)


# setting -> how to build its request; the dict's order is the order requests are sent in
BUILDERS: dict[str, Callable[[VfSettings, VfConfig], Fields | None]] = {
    "vlan": _vlan, "mac": _mac, "rate": _rate, "spoofchk": _flag("spoofchk"), "trust": _flag("trust"),
    "link_state": _link_state,
}
ORDER = tuple(BUILDERS)


def plan_requests(vf: int, want: VfSettings, have: VfConfig) -> tuple[VfRequest, ...]:
    """The requests that turn `have` into `want`, in ORDER; empty when nothing differs."""
    requests = ((setting, build(want, have)) for setting, build in BUILDERS.items())
    return tuple(VfRequest(vf, setting, fields) for setting, fields in requests if fields is not None)


def drift(want: VfSettings, have: VfConfig) -> tuple[str, ...]:
    """The settings in which the VF differs from what is wanted (for observe/diff)."""
    return tuple(request.setting for request in plan_requests(have.vf, want, have))


def current(netlink: VfNetlink, pf_index: int, vf: int) -> VfConfig:
    for config in netlink.vf_configs(pf_index):
        if config.vf == vf:
            return config
    raise SriovError(f"the PF (ifindex {pf_index}) does not report vf {vf}",
                     "is num_vfs large enough, and does the PF's driver report its VFs (IFLA_VFINFO_LIST)?")


def configure_vf(netlink: VfNetlink, pf_index: int, vf: int, want: VfSettings, clock: Clock,
                 mac_attempts: int = MAC_ATTEMPTS) -> VfConfig:
    """Apply `want` to VF `vf` of the PF, in ORDER, and return the VF as the PF then reports it."""
    for request in plan_requests(vf, want, current(netlink, pf_index, vf)):
        if request.setting == "mac":
            _set_mac(netlink, pf_index, request, clock, mac_attempts)
        else:
            netlink.set_vf(pf_index, request)
    return current(netlink, pf_index, vf)


def _set_mac(netlink: VfNetlink, pf_index: int, request: VfRequest, clock: Clock, attempts: int) -> None:
    """Set the MAC and read it back; retry while the PF says EAGAIN/EBUSY or still shows another MAC."""
    wanted, seen, code = str(request.get("mac")), "", 0
    for attempt in range(1, attempts + 1):
        try:
            netlink.set_vf(pf_index, request)
        except SriovKernelError as exc:
            if exc.errno not in RETRY_ERRNOS:
                raise
            code = exc.errno
        else:
            seen = current(netlink, pf_index, request.vf).mac.lower()
            if seen == wanted:
                return
        clock.sleep(MAC_RETRY_DELAY * attempt)
    detail = f"the PF still reports {seen}" if seen else "the PF kept refusing"
    raise SriovKernelError(f"setting the MAC of vf {request.vf} to {wanted}", code,
                           f"{detail} after {attempts} attempts",
                           "the PF driver may refuse MAC changes while the VF's own driver holds it "
                           "(set `trust: true`, or unbind the VF first)")

"""Per-VF settings through rtnetlink: read IFLA_VFINFO_LIST, set one IFLA_VF_* at a time.

`VfNetlink` is the interface the SR-IOV layer uses; `PyrouteVfNetlink` implements it with
pyroute2 (`IPRoute().link("set", index=pf, vf={...})`), and tests inject a fake PF that records
the requests. pyroute2's exceptions are translated here, at the driver boundary.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from vnet.mechanisms.sriov.host.errors import kernel_error

LINK_STATES = {"auto": 0, "enable": 1, "disable": 2}  # IFLA_VF_LINK_STATE_*
LINK_STATE_NAMES = {number: name for name, number in LINK_STATES.items()}
NOT_REPORTED = 0xFFFFFFFF  # spoofchk/trust = -1: the driver does not report the setting
RTEXT_FILTER_VF = 1  # IFLA_EXT_MASK bit: include IFLA_VFINFO_LIST in RTM_GETLINK answers
NESTED = frozenset({"vlan", "rate"})  # pyroute2 takes these as a dict of their fields


@dataclass(frozen=True)
class VfConfig:
    """One VF as its PF reports it (IFLA_VF_INFO); rates in Mbit/s."""

    vf: int
    mac: str = "00:00:00:00:00:00"
    vlan: int = 0
    qos: int = 0
    min_tx_rate: int = 0
    max_tx_rate: int = 0
    spoofchk: bool | None = None  # None: the driver does not report it
    trust: bool | None = None
    link_state: str = "auto"

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VfConfig:
        return cls(**data)


@dataclass(frozen=True)
class VfRequest:
    """One setting of one VF, sent as one RTM_SETLINK carrying one IFLA_VF_* attribute.

    `setting` is vlan, mac, rate, spoofchk, trust or link_state; `fields` are the kernel
    struct's fields (struct ifla_vf_vlan: vlan, qos; ifla_vf_rate: min_tx_rate, max_tx_rate …)."""

    vf: int
    setting: str
    fields: tuple[tuple[str, int | str], ...] = field(default=())

    def get(self, name: str) -> int | str:
        return dict(self.fields)[name]

    def __str__(self) -> str:
        return f"vf {self.vf} {self.setting} " + " ".join(f"{k}={v}" for k, v in self.fields)


class VfNetlink(Protocol):
    def ifindex(self, ifname: str) -> int | None: ...

    def vf_configs(self, pf_index: int) -> tuple[VfConfig, ...]: ...

    def set_vf(self, pf_index: int, request: VfRequest) -> None: ...


def _flag(value: int) -> bool | None:
    return None if value == NOT_REPORTED else bool(value)


def parse_vfinfo(message: Any) -> tuple[VfConfig, ...]:
    """VfConfigs from a decoded RTM_NEWLINK (pyroute2 ifinfmsg) asked with RTEXT_FILTER_VF."""
    vflist = message.get_attr("IFLA_VFINFO_LIST")
    if vflist is None:
        return ()
    configs = []
    for info in vflist.get_attrs("IFLA_VF_INFO"):
        mac = info.get_attr("IFLA_VF_MAC")
        vlan = info.get_attr("IFLA_VF_VLAN") or {"vlan": 0, "qos": 0}
        rate = info.get_attr("IFLA_VF_RATE") or {"min_tx_rate": 0, "max_tx_rate": 0}
        spoofchk = info.get_attr("IFLA_VF_SPOOFCHK")
        trust = info.get_attr("IFLA_VF_TRUST")
        state = info.get_attr("IFLA_VF_LINK_STATE")
        configs.append(VfConfig(
            vf=mac["vf"], mac=mac["mac"], vlan=vlan["vlan"], qos=vlan["qos"],
            min_tx_rate=rate["min_tx_rate"], max_tx_rate=rate["max_tx_rate"],
            spoofchk=None if spoofchk is None else _flag(spoofchk["spoofchk"]),
            trust=None if trust is None else _flag(trust["trust"]),
            link_state=LINK_STATE_NAMES.get(state["link_state"] if state else 0, "auto")))
    return tuple(sorted(configs, key=lambda c: c.vf))


def pyroute2_spec(request: VfRequest) -> dict[str, Any]:
    """The `vf=` argument of pyroute2's link("set") for one request."""
    fields = dict(request.fields)
    spec: dict[str, Any] = {"vf": request.vf}
    if request.setting in NESTED:
        spec[request.setting] = fields
    else:
        spec.update(fields)
    return spec


class PyrouteVfNetlink:
    """The real VfNetlink: one pyroute2 IPRoute socket in the current network namespace."""

    def __init__(self) -> None:
        self._ipr: Any = None

    def _socket(self) -> Any:
        if self._ipr is None:
            from pyroute2 import IPRoute  # noqa: PLC0415 (slow to import)

            self._ipr = IPRoute()
        return self._ipr

    def _call(self, action: str, method: str, *args: Any, **kwargs: Any) -> Any:
        from pyroute2.netlink.exceptions import NetlinkError  # noqa: PLC0415

        try:
            return getattr(self._socket(), method)(*args, **kwargs)
        except NetlinkError as exc:
            raise kernel_error(action, OSError(exc.code, os.strerror(exc.code))) from None
        except OSError as exc:
            raise kernel_error(action, exc) from None

    def ifindex(self, ifname: str) -> int | None:
        found = self._call(f"looking up {ifname}", "link_lookup", ifname=ifname)
        return int(found[0]) if found else None

    def vf_configs(self, pf_index: int) -> tuple[VfConfig, ...]:
        answer = self._call(f"reading the VFs of ifindex {pf_index}", "link", "get", index=pf_index,
                            ext_mask=RTEXT_FILTER_VF)
        return parse_vfinfo(answer[0])

    def set_vf(self, pf_index: int, request: VfRequest) -> None:
        self._call(f"setting {request} on ifindex {pf_index}", "link", "set", index=pf_index,
                   vf=pyroute2_spec(request))

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None


"""The PF's embedded switch mode (legacy | switchdev) through devlink generic netlink.

`Devlink` is the interface; `PyrouteDevlink` implements it with pyroute2's devlink socket
(DEVLINK_CMD_ESWITCH_GET / _SET on bus `pci`, device = the PF's PCI address). Tests inject a
fake. A kernel without the devlink family, or a driver without eswitch support, is a clear
UnavailableError, never a pyroute2 exception.
"""

from __future__ import annotations

import errno
import os
from typing import Any, Protocol

from vnet.errors import UnavailableError
from vnet.mechanisms.sriov.host.errors import SriovUnsupported, kernel_error

ESWITCH_MODES = {"legacy": 0, "switchdev": 1}  # DEVLINK_ESWITCH_MODE_*
ESWITCH_NAMES = {number: name for name, number in ESWITCH_MODES.items()}


class Devlink(Protocol):
    def eswitch_mode(self, bus: str, device: str) -> str: ...

    def set_eswitch_mode(self, bus: str, device: str, mode: str) -> None: ...


class PyrouteDevlink:
    def __init__(self) -> None:
        self._dl: Any = None

    def _socket(self) -> Any:
        if self._dl is None:
            from pyroute2 import DL  # noqa: PLC0415 (slow to import)
            from pyroute2.netlink.exceptions import NetlinkError  # noqa: PLC0415

            try:
                self._dl = DL()
            except NetlinkError as exc:
                raise UnavailableError(
                    f"this kernel has no devlink generic netlink family ({os.strerror(exc.code)})",
                    "a kernel with CONFIG_NET_DEVLINK (needed for eswitch modes)") from None
        return self._dl

    def _request(self, bus: str, device: str, command: str, ack: bool,
                 extra: list[tuple[str, int]]) -> Any:
        from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST  # noqa: PLC0415
        from pyroute2.netlink.devlink import DEVLINK_NAMES, devlinkcmd  # noqa: PLC0415
        from pyroute2.netlink.exceptions import NetlinkError  # noqa: PLC0415

        sock = self._socket()
        msg = devlinkcmd()
        msg["cmd"] = DEVLINK_NAMES[command]
        msg["version"] = 1
        msg["attrs"] = [("DEVLINK_ATTR_BUS_NAME", bus), ("DEVLINK_ATTR_DEV_NAME", device), *extra]
        try:
            return sock.nlm_request(msg, msg_type=sock.prid,
                                    msg_flags=NLM_F_REQUEST | (NLM_F_ACK if ack else 0))
        except NetlinkError as exc:
            if exc.code == errno.EOPNOTSUPP:
                raise SriovUnsupported(device, "its driver has no devlink eswitch support "
                                       "(switchdev needs e.g. mlx5_core, ice)") from None
            raise kernel_error(f"devlink {command} on {bus}/{device}",
                               OSError(exc.code, os.strerror(exc.code))) from None
        except OSError as exc:
            raise kernel_error(f"devlink {command} on {bus}/{device}", exc) from None

    def eswitch_mode(self, bus: str, device: str) -> str:
        answer = self._request(bus, device, "DEVLINK_CMD_ESWITCH_GET", False, [])
        mode = answer[0].get_attr("DEVLINK_ATTR_ESWITCH_MODE")
        return ESWITCH_NAMES.get(mode, f"mode {mode}")

    def set_eswitch_mode(self, bus: str, device: str, mode: str) -> None:
        self._request(bus, device, "DEVLINK_CMD_ESWITCH_SET", True,
                      [("DEVLINK_ATTR_ESWITCH_MODE", ESWITCH_MODES[mode])])

    def close(self) -> None:
        if self._dl is not None:
            self._dl.close()
            self._dl = None

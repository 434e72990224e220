"""vnet: declare virtual networks in a file, build them on a Linux host, prove them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vnet.errors import Diagnostic, TopologyError, VnetError

if TYPE_CHECKING:
    from vnet.topology import Lab, diagnose, load

__version__ = "0.1.0"

__all__ = ["Diagnostic", "Lab", "TopologyError", "VnetError", "__version__", "apply", "destroy",
           "diagnose", "load", "plan", "verify"]

# Loaded on first use, so that `import vnet` (and its standard-library-only subpackages, such as
# vnet.netlink in the bridge reaper's bare interpreter) stays light.
_TOPOLOGY = ("Lab", "diagnose", "load")
_VERBS = ("plan", "apply", "verify", "destroy", "labs", "status")


def __getattr__(name: str) -> object:
    if name in _TOPOLOGY:
        from vnet import topology  # noqa: PLC0415

        return getattr(topology, name)
    if name in _VERBS:
        from vnet import api  # noqa: PLC0415

        return getattr(api, name)
    raise AttributeError(name)

"""vnet: declare virtual networks in a file, build them on a Linux host, prove them."""

from __future__ import annotations

from vnet.errors import Diagnostic, TopologyError, VnetError
from vnet.topology import Lab, diagnose, load

__version__ = "0.1.0"

__all__ = ["Diagnostic", "Lab", "TopologyError", "VnetError", "__version__", "apply", "destroy",
           "diagnose", "load", "plan", "verify"]


def __getattr__(name: str) -> object:
    """The host verbs (plan, apply, verify, destroy) load the drivers only when first used."""
    if name in ("plan", "apply", "verify", "destroy", "labs", "status"):
        from vnet import api  # noqa: PLC0415  (lazy: keeps `import vnet` light)

        return getattr(api, name)
    raise AttributeError(name)

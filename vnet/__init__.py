"""vnet: declare virtual networks in a file, build them on a Linux host, prove them."""

from __future__ import annotations

from vnet.errors import Diagnostic, TopologyError, VnetError
from vnet.topology import Lab, diagnose, load

__version__ = "0.1.0"

__all__ = ["Diagnostic", "Lab", "TopologyError", "VnetError", "__version__", "diagnose", "load"]

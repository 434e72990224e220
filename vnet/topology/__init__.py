"""What the user declared: load a topology file, check it, and build its graph.

    lab = load("lab.yaml")          # Lab, or TopologyError with every diagnostic
    graph = build_graph(lab)        # LabGraph: networkx graph, L2 segments, derived matrix
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from vnet.errors import Diagnostic

if TYPE_CHECKING:
    from vnet.topology.checks import check
    from vnet.topology.lab import Interface, Lab, LinkInfo
    from vnet.topology.loader import Loaded, load_document
    from vnet.topology.model import Topology

__all__ = ["Diagnostic", "Interface", "Lab", "LinkInfo", "Loaded", "Topology", "check",
           "diagnose", "load", "load_document"]

# Loaded on first use: `vnet --version` imports vnet.topology.render (and so this package)
# without wanting pydantic, PyYAML and the checks.
_LAZY = {"check": "checks", "Interface": "lab", "Lab": "lab", "LinkInfo": "lab", "Loaded": "loader",
         "load_document": "loader", "Topology": "model"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(f"vnet.topology.{_LAZY[name]}"), name)
    raise AttributeError(name)


def load(path: str) -> Lab:
    """Load and check a topology file; raises TopologyError listing every problem."""
    from vnet.topology.checks import check  # noqa: PLC0415 (lazy: see _LAZY)
    from vnet.topology.loader import load_document  # noqa: PLC0415

    return check(load_document(path))


def diagnose(path: str) -> tuple[Lab | None, list[Diagnostic]]:
    """Load and check without raising: the Lab (None if invalid) and all diagnostics."""
    from vnet.topology.checks import run_checks  # noqa: PLC0415 (lazy: see _LAZY)
    from vnet.topology.loader import load_document  # noqa: PLC0415

    return run_checks(load_document(path))

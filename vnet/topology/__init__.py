"""What the user declared: load a topology file, check it, and build its graph.

    lab = load("lab.yaml")          # Lab, or TopologyError with every diagnostic
    graph = build_graph(lab)        # LabGraph: networkx graph, L2 segments, derived matrix
"""

from __future__ import annotations

from vnet.errors import Diagnostic
from vnet.topology.checks import check, run_checks
from vnet.topology.lab import Interface, Lab, LinkInfo
from vnet.topology.loader import Loaded, load_document
from vnet.topology.model import Topology

__all__ = ["Diagnostic", "Interface", "Lab", "LinkInfo", "Loaded", "Topology", "check",
           "diagnose", "load", "load_document"]


def load(path: str) -> Lab:
    """Load and check a topology file; raises TopologyError listing every problem."""
    return check(load_document(path))


def diagnose(path: str) -> tuple[Lab | None, list[Diagnostic]]:
    """Load and check without raising: the Lab (None if invalid) and all diagnostics."""
    return run_checks(load_document(path))

"""State shared by the semantic checks while they run."""

from __future__ import annotations

from dataclasses import dataclass, field

import netaddr

from vnet.errors import Diagnostic, Severity
from vnet.topology.loader import Loaded, counted
from vnet.topology.model import Topology
from vnet.topology.names import Endpoint
from vnet.topology.source import Path, format_path


@dataclass
class CheckContext:
    loaded: Loaded
    topology: Topology
    diagnostics: list[Diagnostic] = field(default_factory=list)
    # Filled by the endpoint checks: link position -> its two endpoints (valid links only).
    ends: dict[int, tuple[Endpoint, Endpoint]] = field(default_factory=dict)
    # Filled by the address checks: (node, iface) -> addresses.
    addresses: dict[tuple[str, str], list[netaddr.IPNetwork]] = field(default_factory=dict)
    # Link position of each node interface, in file order.
    interface_links: dict[tuple[str, str], int] = field(default_factory=dict)
    errors: int = 0  # errors so far, the loader's included (TooManyErrors stops the checks)
    _slots: dict[int, int] | None = field(default=None, init=False, repr=False)

    def report(self, path: Path, code: str, message: str, hint: str = "", *,
               key: bool = False, severity: Severity = Severity.ERROR) -> None:
        mark = self.loaded.source.locate(path, key=key)
        diagnostic = Diagnostic(self.loaded.file, mark.line, mark.column, code, message,
                                format_path(path), hint, severity)
        self.diagnostics.append(diagnostic)
        self.errors = counted(self.errors, (diagnostic,))

    def warn(self, path: Path, code: str, message: str, hint: str = "") -> None:
        self.report(path, code, message, hint, severity=Severity.WARNING)

    def is_broken(self, name: str) -> bool:
        return name in self.loaded.broken

    def is_incomplete(self, node: str) -> bool:
        """True when some link of `node` had an error, so its addresses are not all known."""
        return node in self.loaded.incomplete or node in self.loaded.broken

    def links(self) -> list[tuple[int, int]]:
        """(position in topology.links, position in the file) for each valid link."""
        return list(enumerate(self.loaded.link_index))

    def link_slot(self, position: int) -> int:
        """The index in topology.links of the link at `position` in the file."""
        if self._slots is None:
            self._slots = {pos: i for i, pos in self.links()}
        return self._slots[position]

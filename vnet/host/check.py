"""`vnet host check`: can this host run labs, guests with KVM, PCI passthrough, SR-IOV, OVS?

Each capability is a small function in vnet/host/checks/ registered by name; `run_checks` runs
them all in registration order against a HostView rooted at `/` (live) or at a snapshot tree.
Statuses: PASS usable; WARN missing or degraded, vnet falls back or only some labs need it;
FAIL present but broken, or missing although vnet needs it; N/A does not apply here. Only a
FAIL of a basic capability (network namespaces, TUN) makes the check exit 69.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vnet.errors import EX_OK, EX_UNAVAILABLE
from vnet.host.checks import cpu, iommu, pci, services  # noqa: F401 (each registers its checks)
from vnet.host.checks.base import REGISTRY, HostView, Result, Status

__all__ = ["CheckReport", "HostView", "Result", "Status", "run_checks"]


@dataclass(frozen=True)
class CheckReport:
    results: tuple[Result, ...]
    basic_failures: tuple[Result, ...]  # FAILs of what every lab needs

    @property
    def exit_code(self) -> int:
        return EX_UNAVAILABLE if self.basic_failures else EX_OK

    def to_json(self) -> list[dict[str, str]]:
        return [result.to_json() for result in self.results]


def run_checks(root: str | Path = "/", host: HostView | None = None) -> CheckReport:
    """Run every registered capability check against `root` (or an explicit HostView)."""
    view = host if host is not None else HostView.at(root)
    results: list[Result] = []
    failed: list[Result] = []
    for capability in REGISTRY.values():
        found = list(capability.run(view))
        results.extend(found)
        if capability.basic:
            failed.extend(r for r in found if r.status is Status.FAIL)
    return CheckReport(tuple(results), tuple(failed))

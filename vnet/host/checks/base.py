"""The pieces every host capability check uses: statuses, results, the registry, and HostView.

A check is a small function registered with `@capability(...)`; it reads the host only through a
HostView, which maps logical paths (`/proc/cpuinfo`) under a configurable root. With root `/` the
view is live: /dev/kvm is opened and asked for its API version, and the OVS generic netlink
family is probed. Any other root is a snapshot (a directory tree holding only the files a check
reads, as tests use); what a snapshot cannot hold as files (generic netlink families, binaries
on PATH) it states in `<root>/vnet-snapshot.json`.
"""

from __future__ import annotations

import enum
import fcntl
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

SNAPSHOT_FILE = "vnet-snapshot.json"
KVM_GET_API_VERSION = 0xAE00  # _IO(KVMIO=0xAE, 0x00)
KVM_API_VERSION = 12  # the only version Linux has ever reported (include/uapi/linux/kvm.h)


class Status(enum.StrEnum):
    PASS = "PASS"  # present and usable
    WARN = "WARN"  # missing or degraded; vnet falls back (TCG, userspace OVS) or a lab may not need it
    FAIL = "FAIL"  # present but broken, or missing while vnet needs it for every lab
    NA = "N/A"  # does not apply on this host (e.g. interrupt remapping without an IOMMU)


@dataclass(frozen=True)
class Result:
    name: str
    status: Status
    evidence: str
    fix: str = ""

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status.value, "evidence": self.evidence, "fix": self.fix}


class Probes(Protocol):
    """What cannot be read as a file: answered by the live kernel, or by a snapshot's JSON file."""

    def genl_family(self, name: str) -> bool: ...

    def kvm_api_version(self, path: Path) -> int | str | None:
        """The API version, the reason /dev/kvm cannot be asked, or None when not asked (snapshot)."""
        ...

    def binary(self, name: str, root: Path) -> str | None: ...


class LiveProbes:
    def genl_family(self, name: str) -> bool:
        from vnet.host import features  # noqa: PLC0415 (pyroute2 is slow to import)

        probes: dict[str, Callable[[], bool]] = {"ovs_datapath": features.ovs_kernel_datapath}
        return probes[name]()

    def kvm_api_version(self, path: Path) -> int | str | None:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            return f"cannot open: {exc.strerror}"
        try:
            return fcntl.ioctl(fd, KVM_GET_API_VERSION)
        except OSError as exc:
            return f"KVM_GET_API_VERSION failed: {exc.strerror}"
        finally:
            os.close(fd)

    def binary(self, name: str, root: Path) -> str | None:
        return _search_path(name, root)


@dataclass(frozen=True)
class SnapshotProbes:
    """Answers from `<root>/vnet-snapshot.json`: {"genl_families": [...], "binaries": {name: path|null}}.

    /dev/kvm in a snapshot is checked for existence only. Binaries the file does not list are
    looked up on $PATH under the snapshot root."""

    genl_families: frozenset[str] = frozenset()
    binaries: tuple[tuple[str, str | None], ...] = ()

    @classmethod
    def load(cls, root: Path) -> SnapshotProbes:
        path = root / SNAPSHOT_FILE
        data = json.loads(path.read_text()) if path.is_file() else {}
        return cls(frozenset(data.get("genl_families", ())), tuple(data.get("binaries", {}).items()))

    def genl_family(self, name: str) -> bool:
        return name in self.genl_families

    def kvm_api_version(self, path: Path) -> int | str | None:
        return None

    def binary(self, name: str, root: Path) -> str | None:
        listed = dict(self.binaries)
        return listed[name] if name in listed else _search_path(name, root)


def _search_path(name: str, root: Path) -> str | None:
    for directory in os.environ.get("PATH", os.defpath).split(os.pathsep):
        if directory and os.access(root / directory.lstrip("/") / name, os.X_OK):
            return os.path.join(directory, name)
    return None


@dataclass(frozen=True)
class HostView:
    """The host as the checks see it: logical absolute paths resolved under `root`."""

    root: Path
    probes: Probes = field(default_factory=LiveProbes)

    @classmethod
    def at(cls, root: str | Path = "/") -> HostView:
        path = Path(root).resolve()
        return cls(path, LiveProbes() if path == Path("/") else SnapshotProbes.load(path))

    def path(self, logical: str) -> Path:
        return self.root / logical.lstrip("/")

    def read(self, logical: str) -> str | None:
        try:
            return self.path(logical).read_text(errors="replace").strip()
        except OSError:
            return None

    def exists(self, logical: str) -> bool:
        return os.path.lexists(self.path(logical))

    def listdir(self, logical: str) -> list[str]:
        try:
            return sorted(os.listdir(self.path(logical)))
        except OSError:
            return []

    def link_name(self, logical: str) -> str | None:
        """The last component of a symlink's target (a driver's or an IOMMU group's name)."""
        try:
            return os.path.basename(os.readlink(self.path(logical)))
        except OSError:
            return None

    def which(self, binary: str) -> str | None:
        return self.probes.binary(binary, self.root)


Check = Callable[[HostView], Iterable[Result]]


@dataclass(frozen=True)
class Capability:
    name: str
    run: Check
    basic: bool  # vnet needs it for every lab: a FAIL makes `vnet host check` exit 69


REGISTRY: dict[str, Capability] = {}


def capability(name: str, *, basic: bool = False) -> Callable[[Check], Check]:
    """Register a check under `name`; checks run in registration order."""

    def register(run: Check) -> Check:
        if name in REGISTRY:
            raise ValueError(f"capability {name} registered twice")
        REGISTRY[name] = Capability(name, run, basic)
        return run

    return register


def one(name: str, status: Status, evidence: str, fix: str = "") -> list[Result]:
    return [Result(name, status, evidence, fix)]

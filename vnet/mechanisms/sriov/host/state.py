"""What a PF looked like before a lab changed it, kept in a state file so destroy can restore it.

One JSON file per lab and PF (`<dir>/<lab>/<pf>.json`, default dir /run/vnet/sriov.d: VFs do not
survive a reboot, and neither should their originals; not /run/vnet/sriov, which is the run
directory of a lab named `sriov` and is removed when that lab is destroyed). The file is the
lab's ownership of the PF. The first capture wins: re-applying a
lab never overwrites the original with the lab's own configuration. Files are replaced
atomically (write to a temporary file, fsync, rename).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vnet.mechanisms.sriov.host.errors import SriovError, kernel_error
from vnet.mechanisms.sriov.host.netlink import VfConfig

STATE_DIR = Path(os.environ.get("VNET_RUN_DIR", "/run/vnet")) / "sriov.d"  # `.`: never a lab name


@dataclass(frozen=True)
class PfOriginal:
    pf: str
    address: str
    num_vfs: int
    eswitch: str | None  # None: the driver has no devlink eswitch (legacy only)
    vfs: tuple[VfConfig, ...]
    drivers: tuple[tuple[str, str | None], ...] = ()  # VF PCI address -> its driver before vfio-pci

    def driver_of(self, address: str) -> tuple[bool, str | None]:
        """(recorded?, original driver) of a VF vnet rebound."""
        found = dict(self.drivers)
        return address in found, found.get(address)

    def with_driver(self, address: str, driver: str | None) -> PfOriginal:
        if self.driver_of(address)[0]:
            return self
        return replace(self, drivers=(*self.drivers, (address, driver)))

    def to_json(self) -> dict[str, Any]:
        return {"pf": self.pf, "address": self.address, "num_vfs": self.num_vfs, "eswitch": self.eswitch,
                "vfs": [vf.to_json() for vf in self.vfs], "drivers": [list(d) for d in self.drivers]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PfOriginal:
        return cls(data["pf"], data["address"], data["num_vfs"], data["eswitch"],
                   tuple(VfConfig.from_json(vf) for vf in data["vfs"]),
                   tuple((address, driver) for address, driver in data["drivers"]))


@dataclass(frozen=True)
class StateStore:
    directory: Path = STATE_DIR

    def path(self, lab: str, pf: str) -> Path:
        return self.directory / lab / f"{pf}.json"

    def load(self, lab: str, pf: str) -> PfOriginal | None:
        path = self.path(lab, pf)
        try:
            return PfOriginal.from_json(json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SriovError(f"the saved original state of {pf} ({path}) is unreadable: {exc}",
                             "restore the PF by hand (num_vfs, VF settings), then delete the file") from None

    def save(self, lab: str, original: PfOriginal) -> None:
        path = self.path(lab, original.pf)
        temporary = path.with_suffix(".tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(temporary, "w") as handle:
                json.dump(original.to_json(), handle, indent=2)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except OSError as exc:
            raise kernel_error(f"saving {path}", exc) from None

    def save_once(self, lab: str, original: PfOriginal) -> PfOriginal:
        """Keep the first capture: return what is saved (the earlier one if there is one)."""
        saved = self.load(lab, original.pf)
        if saved is not None:
            return saved
        self.save(lab, original)
        return original

    def forget(self, lab: str, pf: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(lab, pf).unlink()
        with contextlib.suppress(OSError):
            self.path(lab, pf).parent.rmdir()

    def pfs(self, lab: str) -> list[str]:
        """The PFs the lab owns (holds a saved original of)."""
        directory = self.directory / lab
        return sorted(p.stem for p in directory.glob("*.json")) if directory.is_dir() else []

    def labs(self) -> list[str]:
        """Labs that own at least one PF."""
        if not self.directory.is_dir():
            return []
        return sorted({p.parent.name for p in self.directory.glob("*/*.json")})

    def labs_with(self, pf: str) -> list[str]:
        """Labs holding a saved original of `pf` (a PF belongs to one lab at a time)."""
        if not self.directory.is_dir():
            return []
        return sorted(p.parent.name for p in self.directory.glob(f"*/{pf}.json"))

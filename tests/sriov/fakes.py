"""FAKES of the kernel for the SR-IOV tests: there is no SR-IOV hardware on these machines.

- FakeKernel builds a fake sysfs tree under a temporary directory (PFs with `sriov_*` files,
  `virtfnN` links, PCI devices with drivers, IOMMU groups, netdevs) and plays the kernel's
  part when vnet writes to it: `sriov_numvfs` creates or removes VFs (EBUSY on a nonzero to
  nonzero change, ERANGE above sriov_totalvfs), `unbind`/`bind`/`drivers_probe` move drivers
  and netdevs, `driver_override` is honoured. New VF netdevs can appear only after some clock
  ticks, as on real hardware.
- FakeSysfs is vnet's real Sysfs with only the write system call replaced by FakeKernel's.
- FakePf is a fake rtnetlink PF (implements VfNetlink): it records every request and answers
  the VF info list like a real PF; it can delay or refuse MAC changes.
- FakeDevlink records eswitch mode changes; FakeClock advances time only when slept on.
- FakePfs puts several FakePfs behind one rtnetlink (labs with more than one PF).
- FakeLinks is a fake of the VF/representor netdev layer (vnet/drivers/sriov/links.py) over the
  fake sysfs tree: renames move `class/net` entries, aliases go to their `ifalias` file.
Nothing here touches the real host, except through `NetdevHooks` a test passes in (see
tests/sriov/standins.py: real TAP devices standing in for VF netdevs).
"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from vnet.mechanisms.sriov.host.errors import SriovUnsupported, kernel_error
from vnet.mechanisms.sriov.host.links import Netdev
from vnet.mechanisms.sriov.host.netlink import LINK_STATE_NAMES, VfConfig, VfRequest
from vnet.mechanisms.sriov.host.sysfs import Sysfs

BRIDGE = "devices/pci0000:00/0000:00:01.0"
NET_DRIVERS = frozenset({"ixgbe", "ixgbevf", "iavf", "i40e", "mlx5_core"})


def link(path: Path, target: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(target, path.parent), path)


def put(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@dataclass
class FakePfSpec:
    name: str
    address: str
    driver: str
    total_vfs: int
    vf_driver: str | None
    iommu: bool
    netdev_delay: int  # clock ticks before a new VF's netdev appears


class NetdevHooks(Protocol):
    """What happens on the real host when the fake kernel makes or removes a VF netdev."""

    def added(self, netdev: str) -> None: ...

    def removed(self, netdev: str) -> None: ...

    def visible(self, netdev: str) -> bool:
        """Whether the netdev is in the host's namespace (sysfs lists only those)."""


@dataclass
class FakeKernel:
    root: Path
    writes: list[tuple[str, str]] = field(default_factory=list)
    pfs: dict[str, FakePfSpec] = field(default_factory=dict)
    pending: list[tuple[str, str, int]] = field(default_factory=list)  # (VF address, netdev, ticks)
    next_group: int = 100
    hooks: NetdevHooks | None = None  # VF netdevs only

    # --- building the tree -----------------------------------------------------------------------

    def __post_init__(self) -> None:
        put(self.root / "bus/pci/drivers_probe", "")
        for driver in ("vfio-pci", *NET_DRIVERS):
            self.add_driver(driver)

    def add_driver(self, driver: str) -> None:
        for action in ("bind", "unbind", "new_id"):
            put(self.root / f"bus/pci/drivers/{driver}/{action}", "")

    def device_dir(self, address: str) -> Path:
        return self.root / BRIDGE / address

    def add_pci(self, address: str, driver: str | None, group: str | None, cls: str = "0x020000") -> Path:
        device = self.device_dir(address)
        put(device / "class", cls + "\n")
        put(device / "driver_override", "(null)\n")
        link(self.root / f"bus/pci/devices/{address}", device)
        if driver:
            link(device / "driver", self.root / f"bus/pci/drivers/{driver}")
        if group is not None:
            link(device / "iommu_group", self.root / f"kernel/iommu_groups/{group}")
            link(self.root / f"kernel/iommu_groups/{group}/devices/{address}", device)
        return device

    def add_netdev(self, address: str, netdev: str, up: bool = False) -> None:
        directory = self.device_dir(address) / "net" / netdev
        put(directory / "flags", "0x1003\n" if up else "0x1002\n")
        os.symlink(f"../../../{address}", directory / "device")  # as the kernel writes it
        link(self.root / f"class/net/{netdev}", directory)
        if self.hooks is not None and address not in self.pfs:
            self.hooks.added(netdev)

    def remove_netdevs(self, address: str) -> None:
        net = self.device_dir(address) / "net"
        for netdev in os.listdir(net) if net.is_dir() else []:
            os.unlink(self.root / f"class/net/{netdev}")
            if self.hooks is not None and address not in self.pfs:
                self.hooks.removed(netdev)
        shutil.rmtree(net, ignore_errors=True)

    def add_representor(self, pf: str, index: int, name: str, switch_id: str = "7cfe900300ab12cd") -> None:
        """A switchdev VF representor netdev (phys_switch_id and phys_port_name pf0vf<index>)."""
        put(self.root / f"class/net/{pf}/phys_switch_id", switch_id + "\n")
        put(self.root / f"class/net/{name}/phys_port_name", f"pf0vf{index}\n")
        put(self.root / f"class/net/{name}/phys_switch_id", switch_id + "\n")

    def add_pf(self, name: str = "enp3s0f0", address: str = "0000:03:00.0", driver: str = "ixgbe",
               total_vfs: int | None = 8, vf_driver: str | None = "ixgbevf", iommu: bool = True,
               netdev_delay: int = 0) -> FakePfSpec:
        device = self.add_pci(address, driver, "1" if iommu else None)
        if total_vfs is not None:
            put(device / "sriov_totalvfs", f"{total_vfs}\n")
            put(device / "sriov_numvfs", "0\n")
            put(device / "sriov_drivers_autoprobe", "1\n")
        spec = FakePfSpec(name, address, driver, total_vfs or 0, vf_driver, iommu, netdev_delay)
        self.pfs[address] = spec  # before its netdev: hooks are for VF netdevs only
        self.add_netdev(address, name, up=True)
        return spec

    # --- the kernel's reactions --------------------------------------------------------------------

    def relative(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def on_write(self, path: Path, value: str) -> None:
        relative = self.relative(path)
        self.writes.append((relative, value))
        name = path.name
        if name == "sriov_numvfs":
            self.set_numvfs(path.parent.name, int(value))
        elif name in ("bind", "unbind"):
            (self.bind if name == "bind" else self.unbind)(value.strip(), path.parent.name)
        elif name == "drivers_probe":
            self.probe(value.strip())
        elif name == "driver_override":
            path.write_text((value.strip() or "(null)") + "\n")
        else:
            path.write_text(value)

    def set_numvfs(self, address: str, wanted: int) -> None:
        spec = self.pfs[os.path.basename(os.path.realpath(self.root / f"bus/pci/devices/{address}"))]
        device = self.device_dir(spec.address)
        have = int((device / "sriov_numvfs").read_text())
        if wanted > spec.total_vfs:
            raise OSError(errno.ERANGE, os.strerror(errno.ERANGE))
        if have and wanted:
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        for index in range(have):
            self.remove_vf(device, index)
        for index in range(wanted):
            self.create_vf(spec, device, index)
        (device / "sriov_numvfs").write_text(f"{wanted}\n")

    def vf_address(self, spec: FakePfSpec, index: int) -> str:
        bus = spec.address.split(":")[1]
        return f"0000:{bus}:{0x10 + index // 8:02x}.{index % 8}"

    def create_vf(self, spec: FakePfSpec, device: Path, index: int) -> None:
        address = self.vf_address(spec, index)
        group = None
        if spec.iommu:
            group, self.next_group = str(self.next_group), self.next_group + 1
        vf = self.add_pci(address, spec.vf_driver, group)
        link(vf / "physfn", device)
        link(device / f"virtfn{index}", vf)
        if spec.vf_driver in NET_DRIVERS:
            self.pending.append((address, f"{spec.name}v{index}", spec.netdev_delay))
            self.tick(0)

    def remove_vf(self, device: Path, index: int) -> None:
        vf = Path(os.path.realpath(device / f"virtfn{index}"))
        self.remove_netdevs(vf.name)
        self.pending = [p for p in self.pending if p[0] != vf.name]
        group = os.path.realpath(vf / "iommu_group") if (vf / "iommu_group").is_symlink() else None
        if group:
            shutil.rmtree(group)
        os.unlink(self.root / f"bus/pci/devices/{vf.name}")
        os.unlink(device / f"virtfn{index}")
        shutil.rmtree(vf)

    def tick(self, elapsed: int = 1) -> None:
        """Time passes: VF netdevs whose delay has run out appear."""
        still = []
        for address, netdev, ticks in self.pending:
            if ticks - elapsed <= 0:
                self.add_netdev(address, netdev)
            else:
                still.append((address, netdev, ticks - elapsed))
        self.pending = still

    def driver(self, address: str) -> str | None:
        target = self.device_dir(address) / "driver"
        return os.path.basename(os.readlink(target)) if target.is_symlink() else None

    def unbind(self, address: str, driver: str) -> None:
        if self.driver(address) != driver:
            raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))
        os.unlink(self.device_dir(address) / "driver")
        self.remove_netdevs(address)

    def bind(self, address: str, driver: str) -> None:
        if self.driver(address) is not None:
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        link(self.device_dir(address) / "driver", self.root / f"bus/pci/drivers/{driver}")
        if driver in NET_DRIVERS:
            index = next(i for s in self.pfs.values() for i in range(s.total_vfs)
                         if self.vf_address(s, i) == address)
            spec = next(s for s in self.pfs.values() if self.vf_address(s, index) == address)
            self.add_netdev(address, f"{spec.name}v{index}")

    def probe(self, address: str) -> None:
        override = (self.device_dir(address) / "driver_override").read_text().strip()
        if self.driver(address) is None:
            spec = next(s for s in self.pfs.values()
                        if any(self.vf_address(s, i) == address for i in range(s.total_vfs)))
            wanted = override if override != "(null)" else spec.vf_driver
            if wanted:
                self.bind(address, wanted)

    def numvfs(self, address: str) -> int:
        return int((self.device_dir(address) / "sriov_numvfs").read_text())


@dataclass(frozen=True)
class FakeSysfs(Sysfs):
    """vnet's real Sysfs over the fake tree; only the write system call goes to the fake kernel."""

    kernel: FakeKernel = field(default=None)  # type: ignore[assignment]

    def write_file(self, path: Path, value: str) -> None:
        if not path.exists() and not path.is_symlink():
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
        self.kernel.on_write(path, value)

    def listdir(self, relative: str) -> list[str]:
        """As sysfs: a device's `net/` lists only netdevs in this namespace (with hooks)."""
        names = super().listdir(relative)
        hooks = self.kernel.hooks
        if hooks is None or not relative.endswith("/net") or not relative.startswith("bus/pci/devices/"):
            return names
        address = relative.split("/")[3]
        return names if address in self.kernel.pfs else [n for n in names if hooks.visible(n)]


@dataclass
class FakeClock:
    kernel: FakeKernel
    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        self.kernel.tick()


@dataclass
class FakePf:
    """A fake PF on rtnetlink (VfNetlink): records requests, answers IFLA_VFINFO_LIST."""

    kernel: FakeKernel
    name: str = "enp3s0f0"
    address: str = "0000:03:00.0"
    index: int = 7
    requests: list[VfRequest] = field(default_factory=list)
    configs: dict[int, VfConfig] = field(default_factory=dict)
    mac_lag: int = 0  # MAC requests accepted before one takes effect (applied asynchronously)
    mac_busy: int = 0  # MAC requests refused with EBUSY first
    refuse: dict[str, int] = field(default_factory=dict)  # setting -> errno the PF answers with

    def ifindex(self, ifname: str) -> int | None:
        return self.index if ifname == self.name else None

    def vf_configs(self, pf_index: int) -> tuple[VfConfig, ...]:
        assert pf_index == self.index
        count = self.kernel.numvfs(self.address)
        self.configs = {i: self.configs.get(i, VfConfig(i, spoofchk=True, trust=False))
                        for i in range(count)}
        return tuple(self.configs[i] for i in range(count))

    def set_vf(self, pf_index: int, request: VfRequest) -> None:
        assert pf_index == self.index
        self.requests.append(request)
        self.vf_configs(pf_index)
        if request.vf not in self.configs:
            raise kernel_error(f"setting {request}", OSError(errno.EINVAL, "no such VF"))
        if request.setting in self.refuse:
            code = self.refuse[request.setting]
            raise kernel_error(f"setting {request}", OSError(code, os.strerror(code)))
        if request.setting == "mac" and self.mac_busy:
            self.mac_busy -= 1
            raise kernel_error(f"setting {request}", OSError(errno.EBUSY, os.strerror(errno.EBUSY)))
        if request.setting == "mac" and self.mac_lag:
            self.mac_lag -= 1
            return
        self.configs[request.vf] = apply(self.configs[request.vf], request)


def apply(config: VfConfig, request: VfRequest) -> VfConfig:
    fields = dict(request.fields)
    if request.setting == "link_state":
        return replace(config, link_state=LINK_STATE_NAMES[int(fields["link_state"])])
    if request.setting in ("spoofchk", "trust"):
        return replace(config, **{request.setting: bool(fields[request.setting])})  # type: ignore[arg-type]
    return replace(config, **fields)  # type: ignore[arg-type]


@dataclass
class FakeDevlink:
    modes: dict[str, str] = field(default_factory=dict)
    supported: bool = True
    calls: list[tuple[str, str, str]] = field(default_factory=list)

    def eswitch_mode(self, bus: str, device: str) -> str:
        if not self.supported:
            raise SriovUnsupported(device, "its driver has no devlink eswitch support")
        return self.modes.get(device, "legacy")

    def set_eswitch_mode(self, bus: str, device: str, mode: str) -> None:
        self.calls.append((bus, device, mode))
        self.eswitch_mode(bus, device)
        self.modes[device] = mode


@dataclass
class FakePfs:
    """Several fake PFs behind one rtnetlink (VfNetlink), told apart by ifindex."""

    pfs: list[FakePf]

    def _pf(self, pf_index: int) -> FakePf:
        return next(pf for pf in self.pfs if pf.index == pf_index)

    def ifindex(self, ifname: str) -> int | None:
        return next((pf.index for pf in self.pfs if pf.name == ifname), None)

    def vf_configs(self, pf_index: int) -> tuple[VfConfig, ...]:
        return self._pf(pf_index).vf_configs(pf_index)

    def set_vf(self, pf_index: int, request: VfRequest) -> None:
        self._pf(pf_index).set_vf(pf_index, request)


@dataclass
class FakeLinks:
    """A FAKE of vnet's netdev layer (VfLinks) for representors in the host namespace: it renames
    the fake tree's `class/net` entries and keeps aliases in their `ifalias` files."""

    kernel: FakeKernel
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def devices(self, namespace: str) -> dict[str, Netdev]:
        assert namespace == "", "representors live in the host's namespace"
        net = self.kernel.root / "class/net"
        return {name: Netdev(name, _read(net / name / "ifalias"), 1500, _read(net / name / "up") == "1")
                for name in sorted(os.listdir(net))}

    def rename(self, name: str, new_name: str, alias: str, up: bool) -> None:
        self.calls.append(("rename", name, new_name, alias))
        net = self.kernel.root / "class/net"
        os.rename(net / name, net / new_name)
        (net / new_name / "ifalias").write_text(alias)
        (net / new_name / "up").write_text("1" if up else "0")

    def move_in(self, name: str, namespace: str, new_name: str, alias: str, mtu: int | None) -> None:
        raise AssertionError("FakeLinks does representors only")

    def move_out(self, namespace: str, name: str, new_name: str) -> None:
        raise AssertionError("FakeLinks does representors only")

    def configure(self, namespace: str, name: str, mtu: int | None, up: bool) -> None:
        raise AssertionError("FakeLinks does representors only")


def _read(path: Path) -> str:
    return path.read_text().strip() if path.exists() else ""

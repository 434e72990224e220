"""cloud-init NoCloud seeds for `image: {disk: …}` guests.

A seed is three files on an ISO 9660 volume labelled `cidata` (Joliet and Rock Ridge names):

- `meta-data`: `instance-id` and `local-hostname`. The instance id is
  `vnet-<lab>-<node>-<hash>`, where the hash covers everything the seed configures, so a
  changed topology gives a new id and cloud-init applies the new configuration at the next
  boot (an unchanged one keeps the id: cloud-init does not run its per-instance modules again).
- `user-data`: `#cloud-config` that installs nothing (no packages, no updates: guests usually
  have no route to a mirror). IP forwarding is written to `/etc/sysctl.d/90-vnet.conf` (always,
  as 0 or 1, so turning it off takes effect too) and set at once by `bootcmd` on every boot.
  `vnet exec` and `vnet verify` talk to the guest through qemu-guest-agent, which must
  already be installed in the image: vnet does not install it (Debian/Ubuntu cloud images:
  `apt-get install qemu-guest-agent` when building the image; it starts by itself when its
  virtio port appears).
- `network-config`: version 2; one `ethernets` entry per NIC, matched by MAC address and
  renamed (`set-name`) to the interface name the topology gives, with its addresses, MTU and
  routes (`to`/`via`, `metric`); no DHCP. A route sits on the NIC whose subnet holds its
  gateway (else on the first NIC, where the guest's kernel refuses it as it would in a namespace).

Everything is emitted deterministically: keys sorted, lists in a fixed order, no timestamps;
`write_seed` writes byte-identical ISO images for identical input (fixed volume dates).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import ipaddress
import os
import sys
import tempfile
import threading
import time
import types
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from vnet.topology.model import VmNode

if TYPE_CHECKING:
    from vnet.topology.lab import Lab

SEED_FILES = ("meta-data", "user-data", "network-config")
VOLUME_LABEL = "cidata"
SYSCTL_FILE = "/etc/sysctl.d/90-vnet.conf"
SEED_EPOCH = 946684800.0  # 2000-01-01T00:00:00Z: every date on the seed volume
FORWARDING_KEYS = ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding")
USER_DATA_HEADER = (
    "#cloud-config\n"
    "# Written by vnet from the topology; a changed topology gives a new instance-id.\n"
    "# Install-free: vnet adds no packages. `vnet exec` and `vnet verify` need qemu-guest-agent\n"
    "# already installed in the image.\n"
)


@dataclass(frozen=True)
class SeedNic:
    mac: str
    ifname: str  # the name the guest gives the NIC (set-name)
    mtu: int | None = None


@dataclass(frozen=True)
class SeedRoute:
    to: str  # CIDR, or `default` (family of `via`) / `default6`
    via: str
    metric: int | None = None


@dataclass(frozen=True)
class SeedConfig:
    """What a seed configures in one guest."""

    lab: str
    node: str
    hostname: str
    nics: tuple[SeedNic, ...] = ()
    addresses: tuple[tuple[str, str], ...] = ()  # (ifname, CIDR), IPv4 or IPv6, in order
    routes: tuple[SeedRoute, ...] = ()
    forwarding: bool = False


def seed_config(lab: Lab, node: str) -> SeedConfig:
    """The seed configuration of vm node `node`: NICs by name, with the lab's MACs and addresses."""
    spec = lab.topology.nodes[node]
    if not isinstance(spec, VmNode):
        raise ValueError(f"{node} is a {spec.kind} node, not a vm")
    interfaces = sorted(lab.interfaces_of(node), key=lambda i: i.name)
    return SeedConfig(
        lab=lab.name, node=node, hostname=hostname_of(node),
        nics=tuple(SeedNic(i.mac, i.name, i.mtu) for i in interfaces),
        addresses=tuple((i.name, str(a)) for i in interfaces for a in i.addresses),
        routes=tuple(SeedRoute(r.to, r.via, r.metric) for r in spec.routes),
        forwarding=spec.forwarding)


def hostname_of(node: str) -> str:
    """A node name as a hostname label: lowercase, `_` becomes `-`."""
    return node.lower().replace("_", "-")


# --- the three files ---------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Block style, multi-line strings as literal blocks, never an anchor or alias."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_yaml(data: Any) -> str:
    """Deterministic YAML: keys sorted, block style, no aliases, fixed width."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=True, default_flow_style=False,
                     allow_unicode=False, width=100)


def _destination(route: SeedRoute) -> str:
    if route.to == "default6" or (route.to == "default" and ":" in route.via):
        return "::/0"
    if route.to == "default":
        return "0.0.0.0/0"
    return str(ipaddress.ip_network(route.to, strict=False))


def _route_nic(config: SeedConfig, via: str) -> str | None:
    gateway = ipaddress.ip_address(via)
    for ifname, cidr in config.addresses:
        network = ipaddress.ip_interface(cidr).network
        if network.version == gateway.version and gateway in network:
            return ifname
    return config.nics[0].ifname if config.nics else None


def network_config_data(config: SeedConfig) -> dict[str, Any]:
    ethernets: dict[str, dict[str, Any]] = {}
    for nic in config.nics:
        entry: dict[str, Any] = {"match": {"macaddress": nic.mac.lower()}, "set-name": nic.ifname,
                                 "dhcp4": False, "dhcp6": False}
        addresses = [cidr for ifname, cidr in config.addresses if ifname == nic.ifname]
        if addresses:
            entry["addresses"] = addresses
        if nic.mtu is not None:
            entry["mtu"] = nic.mtu
        ethernets[nic.ifname] = entry
    for route in config.routes:
        ifname = _route_nic(config, route.via)
        if ifname is None:
            continue
        item: dict[str, Any] = {"to": _destination(route), "via": route.via}
        if route.metric is not None:
            item["metric"] = route.metric
        ethernets[ifname].setdefault("routes", []).append(item)
    return {"version": 2, "ethernets": ethernets}


def user_data_data(config: SeedConfig) -> dict[str, Any]:
    value = int(config.forwarding)
    sysctl = "".join(f"{key} = {value}\n" for key in FORWARDING_KEYS)
    return {
        "package_update": False,
        "package_upgrade": False,
        "write_files": [{"path": SYSCTL_FILE, "content": sysctl, "owner": "root:root",
                         "permissions": "0644"}],
        "bootcmd": [f"sysctl -w {key}={value}" for key in FORWARDING_KEYS],
    }


def instance_id(config: SeedConfig) -> str:
    """`vnet-<lab>-<node>-<hash of what the seed configures>`."""
    digest = hashlib.sha256()
    for part in (config.lab, config.node, config.hostname, dump_yaml(user_data_data(config)),
                 dump_yaml(network_config_data(config))):
        digest.update(part.encode() + b"\0")
    return f"vnet-{config.lab}-{config.node}-{digest.hexdigest()[:16]}"


def seed_files(config: SeedConfig) -> dict[str, str]:
    """`meta-data`, `user-data` and `network-config`, as text."""
    meta = {"instance-id": instance_id(config), "local-hostname": config.hostname}
    return {
        "meta-data": dump_yaml(meta),
        "user-data": USER_DATA_HEADER + dump_yaml(user_data_data(config)),
        "network-config": dump_yaml(network_config_data(config)),
    }


# --- the ISO volume ----------------------------------------------------------------------------


def _pinned_time() -> float:
    return SEED_EPOCH


def _pinned_localtime(seconds: float | None = None) -> time.struct_time:
    return time.gmtime(SEED_EPOCH if seconds is None else seconds)


# Stands in for the `time` module inside pycdlib: every date is SEED_EPOCH, in UTC.
_FIXED_CLOCK = types.SimpleNamespace(
    time=_pinned_time, localtime=_pinned_localtime, gmtime=time.gmtime, strftime=time.strftime,
    strptime=time.strptime, struct_time=time.struct_time)

_PYCDLIB_CLOCK_USERS = ("pycdlib.pycdlib", "pycdlib.headervd", "pycdlib.dates", "pycdlib.utils",
                        "pycdlib.inplaceeditor", "pycdlib.udf")
_clock_lock = threading.Lock()


@contextmanager
def _fixed_clock() -> Iterator[None]:
    """pycdlib stamps volumes and files with time.time(); pin its clock (its modules only)."""
    modules = [sys.modules[name] for name in _PYCDLIB_CLOCK_USERS if name in sys.modules]
    with _clock_lock:
        saved = [(module, module.time) for module in modules if hasattr(module, "time")]
        for module, _ in saved:
            module.time = _FIXED_CLOCK  # type: ignore[attr-defined]
        try:
            yield
        finally:
            for module, original in saved:
                module.time = original  # type: ignore[attr-defined]


def iso_name(name: str) -> str:
    """The ISO 9660 level-1 name of a seed file: `network-config` -> `/NETWORK_.;1`."""
    base = "".join(c if c.isalnum() else "_" for c in name.upper())[:8]
    return f"/{base}.;1"


def seed_image(files: Mapping[str, str | bytes]) -> bytes:
    """The bytes of an ISO 9660 volume labelled `cidata` holding `files` (Joliet + Rock Ridge)."""
    import pycdlib  # noqa: PLC0415 (~30 ms: only when a guest's seed is written, not to plan)

    iso = pycdlib.PyCdlib()
    out = io.BytesIO()
    with _fixed_clock():
        iso.new(interchange_level=1, vol_ident=VOLUME_LABEL, joliet=3, rock_ridge="1.09",
                app_ident_str="vnet")
        for name in sorted(files):
            content = files[name]
            data = content.encode() if isinstance(content, str) else content
            iso.add_fp(io.BytesIO(data), len(data), iso_name(name), rr_name=name,
                       joliet_path=f"/{name}")
        iso.write_fp(out)
        iso.close()
    return out.getvalue()


def write_seed(files: Mapping[str, str | bytes], path: str | os.PathLike[str]) -> None:
    """Write the seed volume to `path` atomically (a temporary file renamed over it)."""
    data = seed_image(files)
    directory = os.path.dirname(os.fspath(path)) or "."
    fd, temporary = tempfile.mkstemp(prefix=".seed-", suffix=".iso", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def seed_drive_args(path: str, drive_id: str = "vnet-seed") -> list[str]:
    """QEMU arguments attaching a seed volume read-only (cloud-init finds it by its label)."""
    escaped = os.fspath(path).replace(",", ",,")
    return ["-drive", f"file={escaped},format=raw,if=virtio,id={drive_id},readonly=on"]

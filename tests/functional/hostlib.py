"""Helpers for the functional tests: unique names, topology files, the CLI, host snapshots.

Snapshots are taken with iproute2 (`ip -d -j link`, `ip -j addr`, `ip -j route`, `ip netns`),
not with vnet's own netlink code, so that a bug there cannot hide itself. Other sessions may
be changing the host at the same time (benchmarks, other labs), so a snapshot keeps only what
belongs to the labs under test — devices carrying their mark, or a name they use, or their
device group; namespaces `vnet-<lab>-*`; `/run/vnet/<lab>*` — plus the host routes on the
host's own (non-virtual) devices and on the labs' devices.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import string
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vnet.marks import host_name, lab_group
from vnet.pipeline.compile import compile_lab
from vnet.pipeline.lock import RUN_DIR
from vnet.resources import HOST
from vnet.topology import Lab, load

VNET = str(Path(sys.executable).with_name("vnet"))
PYTHON = sys.executable

# What identifies a device's configuration (ifindex, counters, timers and the like are left out).
LINK_FIELDS = ("ifname", "mtu", "master", "group", "address", "ifalias", "link", "link_type")
INFO_FIELDS = frozenset({
    # bridge
    "stp_state", "forward_delay", "ageing_time", "vlan_filtering", "hello_time", "max_age", "priority",
    # tun/tap
    "type", "pi", "vnet_hdr", "multi_queue", "persist", "user", "group",
})
ROUTE_FIELDS = ("dst", "gateway", "dev", "protocol", "scope", "metric", "type", "prefsrc")


# --- processes --------------------------------------------------------------------------------

def run(*args: str, check: bool = True, env: Mapping[str, str] | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a command (no shell) and capture its output; `check` raises with the output shown."""
    full_env = None if env is None else {**os.environ, **env}
    # stdin /dev/null, not pytest's: `vnet exec` in a VM reads standard input that is no terminal
    done = subprocess.run(list(args), capture_output=True, text=True, env=full_env, timeout=timeout,
                          check=False, stdin=subprocess.DEVNULL)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {done.returncode}\n"
                             f"stdout: {done.stdout}\nstderr: {done.stderr}")
    return done


def vnet(*args: str, check: bool = False, env: Mapping[str, str] | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The installed `vnet` command."""
    return run(VNET, *args, check=check, env=env, timeout=timeout)


def ip_json(*args: str, netns: str | None = None) -> Any:
    """`ip -j ARGS` (inside `netns` when given); repeated when the kernel interrupted the dump."""
    prefix = ["ip", "-n", netns] if netns else ["ip"]
    deadline = time.monotonic() + 30  # other sessions may be creating thousands of devices
    while True:
        done = run(*prefix, "-j", *args, check=False)
        if done.returncode == 0 and "interrupted" not in done.stderr:
            return json.loads(done.stdout or "[]")
        if time.monotonic() > deadline:
            raise AssertionError(f"ip {' '.join(args)} failed: {done.stderr}")
        time.sleep(0.05)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


# --- labs under test --------------------------------------------------------------------------

def unique(prefix: str) -> str:
    """`prefix` + 4 random hex digits: a lab name unique to one test run."""
    return prefix + secrets.token_hex(2)


@dataclass
class LabUnderTest:
    """One lab of a test: its unique name, bridge names derived from it, and its files."""

    name: str
    directory: Path
    files: list[Path] = field(default_factory=list)

    def bridge(self, n: int) -> str:
        return f"{self.name}b{n}"

    def write(self, template: str, filename: str = "lab.yaml", **extra: str) -> Path:
        """Write a topology; `$lab` is the lab name, `$b1`.. `$b4` bridge names, plus `extra`."""
        values = {"lab": self.name, **{f"b{n}": self.bridge(n) for n in range(1, 5)}, **extra}
        path = self.directory / filename
        path.write_text(string.Template(template).substitute(values))
        self.files.append(path)
        return path

    def load(self, path: Path | None = None) -> Lab:
        return load(str(path or self.files[-1]))

    def namespace(self, node: str) -> str:
        return f"vnet-{self.name}-{node}"

    def host_end(self, node: str, iface: str) -> str:
        """Host-side veth end of a node interface on a bridge (compile.py's naming)."""
        return host_name("vn", self.name, node, iface)

    def host_names(self) -> set[str]:
        """Every host device name any version of this lab's file uses."""
        names: set[str] = set()
        for path in self.files:
            for resource in compile_lab(load(str(path))).resources.values():
                names.update(name for ns, name in resource.occupies() if ns == HOST)
        return names


# --- snapshots --------------------------------------------------------------------------------

def link_view(link: Mapping[str, Any]) -> dict[str, Any]:
    view = {k: link[k] for k in LINK_FIELDS if k in link}
    view["up"] = "UP" in link.get("flags", ())
    info = link.get("linkinfo", {})
    view["kind"] = info.get("info_kind")
    view["data"] = {k: v for k, v in info.get("info_data", {}).items() if k in INFO_FIELDS}
    view["port_of"] = info.get("info_slave_kind")
    return view


def _route_view(route: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple((k, str(route[k])) for k in ROUTE_FIELDS if k in route)


def namespace_names() -> list[str]:
    return [entry["name"] for entry in ip_json("netns", "list")]


def namespace_view(ns: str) -> dict[str, Any]:
    links = {link["ifname"]: link_view(link) for link in ip_json("-d", "link", "show", netns=ns)}
    addresses = sorted(
        (entry["ifname"], a["family"], a["local"], a["prefixlen"])
        for entry in ip_json("addr", "show", netns=ns) for a in entry.get("addr_info", ())
        if not a["local"].startswith("fe80:"))
    routes = sorted(_route_view(r) for family in ("-4", "-6")
                    for r in ip_json(family, "route", "show", netns=ns))
    sysctl = run("ip", "netns", "exec", ns, "cat", "/proc/sys/net/ipv4/ip_forward",
                 "/proc/sys/net/ipv6/conf/all/forwarding").stdout.split()
    return {"links": links, "addresses": addresses, "routes": routes, "forwarding": sysctl}


@dataclass
class Snapshot:
    links: dict[str, dict[str, Any]]  # the labs' host devices, by name
    physical: set[str]  # host devices that are no virtual kind (lo, NICs): their routes are compared
    namespaces: dict[str, dict[str, Any]]
    routes: list[tuple[tuple[str, str], ...]]  # every host route (v4 and v6, main table)
    run_dir: list[str]


def snapshot(labs: Iterable[LabUnderTest], extra_names: Iterable[str] = ()) -> Snapshot:
    """What the host has of `labs` (marked, named or grouped as theirs), plus all host routes."""
    labs = list(labs)
    names = set(extra_names)
    for lab in labs:
        names |= lab.host_names()
    marks = tuple(f"vnet:{lab.name}:" for lab in labs)
    groups = {str(lab_group(lab.name)) for lab in labs}
    all_links = ip_json("-d", "link", "show")
    mine = {link["ifname"]: link_view(link) for link in all_links
            if link["ifname"] in names or str(link.get("ifalias", "")).startswith(marks)
            or str(link.get("group")) in groups}
    prefixes = tuple(f"vnet-{lab.name}-" for lab in labs)
    namespaces = {ns: namespace_view(ns) for ns in namespace_names() if ns.startswith(prefixes)}
    routes = sorted(_route_view(r) for family in ("-4", "-6") for r in ip_json(family, "route", "show"))
    lab_names = {lab.name for lab in labs}
    try:
        run_dir = sorted(e for e in os.listdir(RUN_DIR)
                         if e in lab_names or e.rpartition(".")[0] in lab_names)
    except FileNotFoundError:
        run_dir = []
    physical = {link["ifname"] for link in all_links if "info_kind" not in link.get("linkinfo", {})}
    return Snapshot(mine, physical, namespaces, routes, run_dir)


def _stable_routes(a: Snapshot, b: Snapshot) -> tuple[list[Any], list[Any]]:
    """Host routes of both snapshots on the host's own devices and the labs' devices (routes on
    other sessions' virtual devices come and go with them)."""
    keep = (a.physical & b.physical) | set(a.links) | set(b.links)

    def filtered(s: Snapshot) -> list[Any]:
        return [r for r in s.routes if dict(r).get("dev") in keep or "dev" not in dict(r)]
    return filtered(a), filtered(b)


def differences(before: Snapshot, after: Snapshot, *, run_dir: bool = True) -> list[str]:
    """Human-readable differences between two snapshots (empty: the same)."""
    out: list[str] = []
    for what in ("links", "namespaces"):
        old, new = getattr(before, what), getattr(after, what)
        for key in sorted(set(old) | set(new)):
            if key not in old:
                out.append(f"{what}: {key} appeared: {new[key]}")
            elif key not in new:
                out.append(f"{what}: {key} disappeared: {old[key]}")
            elif old[key] != new[key]:
                out.append(f"{what}: {key} changed:\n  before {old[key]}\n  after  {new[key]}")
    old_routes, new_routes = _stable_routes(before, after)
    out += [f"host route disappeared: {dict(r)}" for r in old_routes if r not in new_routes]
    out += [f"host route appeared: {dict(r)}" for r in new_routes if r not in old_routes]
    if run_dir and before.run_dir != after.run_dir:
        out.append(f"{RUN_DIR}: {before.run_dir} -> {after.run_dir}")
    return out


def settle_to(before: Snapshot, take: Callable[[], Snapshot], timeout: float = 5.0,
              run_dir: bool = True) -> list[str]:
    """Poll until the host matches `before` (namespace teardown is asynchronous); the rest."""
    deadline = time.monotonic() + timeout
    while True:
        diff = differences(before, take(), run_dir=run_dir)
        if not diff or time.monotonic() > deadline:
            return diff
        time.sleep(0.1)


def ifindexes(lab: LabUnderTest) -> dict[tuple[str, str], int]:
    """(namespace or '', device) -> ifindex of every device of the lab."""
    out: dict[tuple[str, str], int] = {}
    mark = f"vnet:{lab.name}:"
    for link in ip_json("link", "show"):
        if str(link.get("ifalias", "")).startswith(mark):
            out[("", link["ifname"])] = link["ifindex"]
    for ns in namespace_names():
        if not ns.startswith(f"vnet-{lab.name}-"):
            continue
        links = ip_json("link", "show", netns=ns)
        if any(link["ifname"] == "lo" and str(link.get("ifalias", "")).startswith(mark) for link in links):
            out.update({(ns, link["ifname"]): link["ifindex"] for link in links})
    return out


def leftovers(name: str) -> list[str]:
    """Anything still carrying lab `name`'s mark or namespace prefix."""
    found = [f"device {link['ifname']}" for link in ip_json("link", "show")
             if str(link.get("ifalias", "")).startswith(f"vnet:{name}:")]
    for ns in namespace_names():
        if ns.startswith(f"vnet-{name}-"):
            lo = ip_json("link", "show", "lo", netns=ns)
            if lo and str(lo[0].get("ifalias", "")).startswith(f"vnet:{name}:"):
                found.append(f"namespace {ns}")
    if os.path.isdir(os.path.join(RUN_DIR, name)):
        found.append(f"directory {RUN_DIR}/{name}")
    return found


def has_tool(name: str) -> bool:
    return shutil.which(name) is not None

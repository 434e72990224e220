"""Helpers for the OVS tests: the private OVS instance and its rows, lab files with unique names,
leftover checks, and TCP between namespaces.

OVS rows are read with `ovs-vsctl --format=json` and kernel devices with `ip -j`, not with vnet's
own OVSDB or netlink code, so that a bug there cannot hide itself.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import signal
import socket
import string
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vnet import api
from vnet.host import netns, ovs_daemon
from vnet.pipeline.compile import compile_lab
from vnet.pipeline.lock import RUN_DIR
from vnet.resources import HOST
from vnet.topology import Lab, load

VNET = str(Path(sys.executable).with_name("vnet"))
OVS_TABLES = ("Bridge", "Port", "Interface")


# --- processes --------------------------------------------------------------------------------

def run(*args: str, check: bool = True, timeout: float = 120,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = None if env is None else {**os.environ, **env}
    # stdin /dev/null, not pytest's: `vnet exec` in a VM reads standard input that is no terminal
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False,
                          env=full_env, stdin=subprocess.DEVNULL)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {done.returncode}\n"
                             f"stdout: {done.stdout}\nstderr: {done.stderr}")
    return done


def vnet(*args: str, timeout: float = 180, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    """The installed `vnet` command (the caller passes --ovsdb, or VNET_OVSDB in `env`)."""
    return run(VNET, *args, check=False, timeout=timeout, env=env)


def ip_json(*args: str, netns_name: str | None = None) -> Any:
    """`ip -j ARGS`, repeated while the kernel reports the dump as interrupted (others churn)."""
    prefix = ["ip", "-n", netns_name] if netns_name else ["ip"]
    done = None
    for _ in range(30):
        done = run(*prefix, "-j", *args, check=False)
        if done.returncode == 0 and "interrupted" not in done.stderr:
            break
        time.sleep(0.1)
    assert done is not None and done.returncode == 0, f"ip {' '.join(args)}: {done and done.stderr}"
    return json.loads(done.stdout or "[]")


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


# --- the private OVS --------------------------------------------------------------------------

def _ovsdb_value(value: Any) -> Any:
    """OVSDB JSON (as ovs-vsctl --format=json prints it) to plain Python values."""
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
        kind, inner = value
        if kind in ("uuid", "named-uuid"):
            return inner
        if kind == "set":
            return [_ovsdb_value(v) for v in inner]
        if kind == "map":
            return {_ovsdb_value(k): _ovsdb_value(v) for k, v in inner}
    return value


def _one(value: Any) -> Any:
    """An optional column (a set of 0 or 1 values) as the value or None."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


@dataclass(frozen=True)
class PrivateOvs:
    """A private ovsdb-server + ovs-vswitchd (own run dir, database, sockets)."""

    paths: ovs_daemon.OvsPaths

    @property
    def remote(self) -> str:
        return self.paths.remote

    def vsctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("ovs-vsctl", f"--db={self.remote}", "--timeout=120", *args, check=check, timeout=150)

    def appctl(self, *args: str) -> str:
        return run("ovs-appctl", "-t", self.paths.file("ovs-vswitchd.ctl"), *args).stdout

    def _table(self, args: list[str]) -> list[dict[str, Any]]:
        out = json.loads(self.vsctl("--format=json", *args).stdout)
        return [{h: _ovsdb_value(v) for h, v in zip(out["headings"], row, strict=True)}
                for row in out["data"]]

    def find(self, table: str, *conditions: str) -> list[dict[str, Any]]:
        """Rows of `table` matching `ovs-vsctl find` conditions (all columns)."""
        return self._table(["find", table, *conditions])

    def row(self, table: str, name: str) -> dict[str, Any]:
        rows = self._table(["list", table, name])
        assert len(rows) == 1, rows
        return rows[0]

    def bridges(self) -> list[str]:
        return self.vsctl("list-br").stdout.split()

    def ports(self, bridge: str) -> list[str]:
        return self.vsctl("list-ports", bridge).stdout.split()

    def lab_rows(self, lab: str) -> list[str]:
        """`Table name` of every row carrying the lab's external_ids mark."""
        return [f"{table} {row['name']}" for table in OVS_TABLES
                for row in self.find(table, f"external_ids:vnet-lab={lab}")]

    @staticmethod
    def one(value: Any) -> Any:
        return _one(value)


def _is_ours(pid: int, run_dir: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return run_dir.encode() in handle.read()
    except OSError:
        return False


def stop_private(paths: ovs_daemon.OvsPaths, timeout: float = 20.0) -> None:
    """Stop the private daemons: by the pids vnet recorded, then any pidfile in the private run
    directory whose process still runs with that directory on its command line (a start that
    failed half-way records nothing)."""
    with contextlib.suppress(Exception):
        ovs_daemon.stop(paths, timeout)
    for pidfile in ("ovs-vswitchd.pid", "ovsdb-server.pid"):
        try:
            pid = int(Path(paths.file(pidfile)).read_text().strip())
        except (OSError, ValueError):
            continue
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not _is_ours(pid, paths.run_dir):
                break
            os.kill(pid, sig)
            deadline = time.monotonic() + timeout / 2
            while time.monotonic() < deadline and _is_ours(pid, paths.run_dir):
                time.sleep(0.05)


# --- labs -------------------------------------------------------------------------------------

def unique(prefix: str) -> str:
    """`prefix` + 6 random hex digits (lab names are at most 12 characters)."""
    name = prefix + secrets.token_hex(3)
    assert len(name) <= 12, name
    return name


@dataclass
class LabFiles:
    """One lab of a test: a unique name, bridge names derived from it (<= 15), its files."""

    name: str
    directory: Path
    files: list[Path] = field(default_factory=list)

    def bridge(self, n: int) -> str:
        return f"{self.name}b{n}"

    def write(self, template: str, filename: str = "lab.yaml", **extra: str) -> Path:
        """Write a topology: `$lab` is the lab name, `$b1`..`$b4` bridge names, plus `extra`."""
        values = {"lab": self.name, **{f"b{n}": self.bridge(n) for n in range(1, 5)}, **extra}
        path = self.directory / filename
        path.write_text(string.Template(template).substitute(values))
        self.files.append(path)
        return path

    def load(self, path: Path | None = None) -> Lab:
        return load(str(path or self.files[-1]))

    def namespace(self, node: str) -> str:
        return f"vnet-{self.name}-{node}"

    def host_names(self) -> set[str]:
        """Host devices any version of this lab's files uses: Linux bridges, veth host ends, and
        OVS bridges (a netdev bridge's own port is a TAP device of the bridge's name)."""
        names: set[str] = set()
        for path in self.files:
            for key, resource in compile_lab(load(str(path))).resources.items():
                names.update(name for ns, name in resource.occupies() if ns == HOST)
                if key[0] == "ovs-bridge":
                    names.add(key[1])
        return names


def kernel_leftovers(lab: LabFiles, run_dir: bool = True) -> list[str]:
    """Host devices and namespaces of the lab (by mark, name or prefix), and its run directory."""
    names = lab.host_names()
    found = [f"device {link['ifname']}" for link in ip_json("link", "show")
             if str(link.get("ifalias", "")).startswith(f"vnet:{lab.name}:") or link["ifname"] in names]
    found += [f"namespace {ns}" for ns in netns.names() if ns.startswith(f"vnet-{lab.name}-")]
    if run_dir and os.path.isdir(os.path.join(RUN_DIR, lab.name)):
        found.append(f"directory {RUN_DIR}/{lab.name}")
    return found


def _clean(lab: LabFiles) -> bool:
    return not kernel_leftovers(lab)


class Labs:
    """Labs of one test, on the private OVS: every one is destroyed at the end, and nothing of it
    may be left (OVS rows with its mark, host devices, namespaces)."""

    def __init__(self, ovs: PrivateOvs, directory: Path) -> None:
        self.ovs = ovs
        self.directory = directory
        self.made: list[LabFiles] = []

    def new(self, prefix: str = "o") -> LabFiles:
        lab = LabFiles(unique(prefix), self.directory / f"lab{len(self.made)}")
        lab.directory.mkdir()
        self.made.append(lab)
        return lab

    def up(self, template: str, prefix: str = "o", **extra: str) -> tuple[LabFiles, Lab]:
        """A new lab from `template`, applied."""
        files = self.new(prefix)
        lab = files.load(files.write(template, **extra))
        api.apply(lab, ovsdb=self.ovs.remote)
        return files, lab

    def cleanup(self) -> list[str]:
        problems: list[str] = []
        for lab in reversed(self.made):
            try:
                api.destroy(lab.name, wait=True, ovsdb=self.ovs.remote)
            except Exception as exc:  # keep going: every lab must be removed
                problems.append(f"destroy {lab.name}: {exc}")
        for lab in self.made:
            problems += [f"lab {lab.name}: OVS row {r} left" for r in self.ovs.lab_rows(lab.name)]
            with contextlib.suppress(AssertionError):
                wait_for(functools.partial(_clean, lab), 10, "namespace teardown")
            problems += [f"lab {lab.name}: {what} left" for what in kernel_leftovers(lab)]
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(RUN_DIR, f"{lab.name}.lock"))
        return problems


# --- TCP inside namespaces --------------------------------------------------------------------

def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


@contextlib.contextmanager
def server_and_client(server_ns: str, client_ns: str, address: str
                      ) -> Iterator[tuple[socket.socket, socket.socket, int]]:
    """A listening socket made inside `server_ns` on `address`, and an unconnected client socket
    made inside `client_ns` (a socket stays in the namespace it was made in)."""
    with netns.entered(server_ns):
        server = socket.create_server((address, 0), family=_family(address))
    with netns.entered(client_ns):
        client = socket.socket(_family(address), socket.SOCK_STREAM)
    try:
        yield server, client, server.getsockname()[1]
    finally:
        for sock in (client, server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def tcp_connects(client_ns: str, server_ns: str, address: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection from `client_ns` to `address` in `server_ns` is accepted."""
    with server_and_client(server_ns, client_ns, address) as (_, client, port):
        client.settimeout(timeout)
        try:
            client.connect((address, port))
        except OSError:
            return False
        return True


@dataclass
class Transfer:
    size: int
    received: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.received == self.size and not self.errors

    @property
    def gbit_per_s(self) -> float:
        return self.received * 8 / self.seconds / 1e9 if self.seconds else 0.0


def bulk_transfer(client_ns: str, server_ns: str, address: str, size: int, timeout: float) -> Transfer:
    """Send `size` bytes over TCP from `client_ns` to `server_ns`; gives up after `timeout` s."""
    result = Transfer(size)
    chunk = b"\xa5" * (1 << 20)
    with server_and_client(server_ns, client_ns, address) as (server, client, port):
        started = time.monotonic()
        deadline = started + timeout

        def remaining() -> float:
            return max(0.01, deadline - time.monotonic())

        def receive() -> None:
            try:
                server.settimeout(remaining())
                conn, _ = server.accept()
                with conn:
                    while result.received < size:
                        conn.settimeout(remaining())
                        data = conn.recv(1 << 20)
                        if not data:
                            break
                        result.received += len(data)
            except OSError as exc:
                result.errors.append(f"receiver: {exc!r}")

        def send() -> None:
            try:
                client.settimeout(remaining())
                client.connect((address, port))
                sent = 0
                while sent < size:
                    client.settimeout(remaining())
                    piece = chunk[: min(len(chunk), size - sent)]
                    client.sendall(piece)
                    sent += len(piece)
                client.shutdown(socket.SHUT_WR)
            except OSError as exc:
                result.errors.append(f"sender: {exc!r}")

        threads = [threading.Thread(target=receive, daemon=True), threading.Thread(target=send, daemon=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout + 5)
        result.seconds = time.monotonic() - started
        if any(t.is_alive() for t in threads):
            result.errors.append("a transfer thread did not finish")
    return result

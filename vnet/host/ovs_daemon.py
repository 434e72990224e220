"""Open vSwitch daemons: find them, start them from the distribution's binaries, stop them.

`vnet apply` calls `ensure_running` when a lab needs OVS and no OVSDB answers on the socket:
it creates the database if needed, starts ovsdb-server and ovs-vswitchd (daemonized, with
pidfiles and logs in the run directory) and says so. vnet records the pids it started in
`vnet-managed.json` beside the socket and `stop` ends only those processes, by pid.
Tests start private instances with their own run directory and socket.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass

from vnet.errors import UnavailableError, VnetError

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
INSTALL_HINT = "install Open vSwitch (Debian: apt-get install openvswitch-switch)"


@dataclass(frozen=True)
class OvsPaths:
    """Where one OVS instance keeps its socket, database, pidfiles and logs."""

    run_dir: str
    db_file: str

    @classmethod
    def system(cls) -> OvsPaths:
        return cls("/var/run/openvswitch", "/etc/openvswitch/conf.db")

    @classmethod
    def private(cls, run_dir: str) -> OvsPaths:
        return cls(run_dir, os.path.join(run_dir, "conf.db"))

    @property
    def socket(self) -> str:
        return os.path.join(self.run_dir, "db.sock")

    @property
    def remote(self) -> str:
        return f"unix:{self.socket}"

    def file(self, name: str) -> str:
        return os.path.join(self.run_dir, name)


def _binary(name: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None)
    if path is None:
        raise UnavailableError(f"Open vSwitch program `{name}` not found", INSTALL_HINT)
    return path


def answering(path: str, timeout: float = 1.0) -> bool:
    """True when something accepts connections on the unix socket `path`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError:
            return False
    return True


def _run(argv: list[str], run_dir: str | None = None) -> None:
    # OVS_RUNDIR keeps per-bridge sockets (mgmt, snoop) of a private instance in its own dir.
    env = {**os.environ, "OVS_RUNDIR": run_dir, "OVS_LOGDIR": run_dir} if run_dir else None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60, env=env)
    except subprocess.TimeoutExpired:
        raise UnavailableError(f"`{os.path.basename(argv[0])}` did not finish within 60 s",
                               "ovs-vswitchd reads every host interface and route at start: "
                               "thousands of devices, or a host busy creating them, slow it "
                               "down; try again") from None
    if done.returncode != 0:
        raise VnetError(f"`{os.path.basename(argv[0])}` failed: {done.stderr.strip() or done.stdout.strip()}")


def _read_pid(pidfile: str) -> int | None:
    try:
        with open(pidfile) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def _wait_for(path: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not answering(path, 0.2):
        if time.monotonic() > deadline:
            raise VnetError(f"ovsdb-server did not answer on {path}")
        time.sleep(0.05)


def start(paths: OvsPaths) -> list[int]:
    """Start ovsdb-server and ovs-vswitchd for `paths`; returns their pids."""
    ovsdb_server, vswitchd, tool = _binary("ovsdb-server"), _binary("ovs-vswitchd"), _binary("ovsdb-tool")
    os.makedirs(paths.run_dir, mode=0o755, exist_ok=True)
    os.makedirs(os.path.dirname(paths.db_file), mode=0o755, exist_ok=True)
    if not os.path.exists(paths.db_file):
        _run([tool, "create", paths.db_file, SCHEMA])
    common = ["--detach", "--no-chdir"]
    _run([ovsdb_server, paths.db_file, f"--remote=punix:{paths.socket}",
          "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
          f"--pidfile={paths.file('ovsdb-server.pid')}", f"--unixctl={paths.file('ovsdb-server.ctl')}",
          f"--log-file={paths.file('ovsdb-server.log')}", *common], paths.run_dir)
    _wait_for(paths.socket)
    _run([_binary("ovs-vsctl"), f"--db={paths.remote}", "--no-wait", "init"])
    _run([vswitchd, paths.remote, f"--pidfile={paths.file('ovs-vswitchd.pid')}",
          f"--unixctl={paths.file('ovs-vswitchd.ctl')}", f"--log-file={paths.file('ovs-vswitchd.log')}",
          *common], paths.run_dir)
    pids = [p for p in (_read_pid(paths.file("ovsdb-server.pid")), _read_pid(paths.file("ovs-vswitchd.pid")))
            if p is not None]
    with open(paths.file("vnet-managed.json"), "w") as handle:
        json.dump({"pids": pids}, handle)
    return pids


def ensure_running(paths: OvsPaths) -> bool:
    """Start OVS if its database does not answer; True when vnet started it now."""
    if answering(paths.socket):
        return False
    start(paths)
    return True


def managed_pids(paths: OvsPaths) -> list[int]:
    try:
        with open(paths.file("vnet-managed.json")) as handle:
            return [int(p) for p in json.load(handle)["pids"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def stop(paths: OvsPaths, timeout: float = 10.0) -> list[int]:
    """Stop the OVS daemons vnet started for `paths` (by pid; others are left alone)."""
    stopped = []
    for pid in managed_pids(paths):
        try:
            os.kill(pid, signal.SIGTERM)
            stopped.append(pid)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + timeout
    for pid in stopped:
        while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
            time.sleep(0.05)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(paths.file("vnet-managed.json"))
    return stopped


def status(paths: OvsPaths) -> dict[str, object]:
    return {"socket": paths.socket, "answering": answering(paths.socket),
            "managed_by_vnet": managed_pids(paths),
            "ovsdb_server_pid": _read_pid(paths.file("ovsdb-server.pid")),
            "ovs_vswitchd_pid": _read_pid(paths.file("ovs-vswitchd.pid"))}

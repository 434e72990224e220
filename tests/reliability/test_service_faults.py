"""Faults of the services vnet depends on and hand-made damage: each is reported (plan and verify
show it) and repaired by one apply, or refused clearly before anything changes.

Covered here: ovs-vswitchd restarted (by pid: the private instance) in the middle of an apply; an
explicit --ovsdb whose ovsdb-server is not running (missing socket, stale socket file); devices
renamed or set down by hand (veth ends, a Linux bridge, a guest's TAP); the lab's run directory
or one guest's run directory removed (QMP and agent sockets gone: the guest is restarted, and
destroy still stops the old QEMU by pid). Covered elsewhere and counted by the report: a QEMU
process killed (tests/ovs/test_vms.py), a namespace deleted, a device deleted or set down, an
address, route, MTU, MAC or STP changed by hand (tests/functional/test_drift.py).

The damage tests share one lab with a guest (module scope: each repair that restarts the guest
costs a boot), in file order; each leaves the lab converged.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vnet import api
from vnet.errors import EX_UNAVAILABLE
from vnet.marks import host_name
from vnet.mechanisms.qemu import process as qemu
from vnet.pipeline.lock import RUN_DIR
from vnet.pipeline.session import SYSTEM_OVSDB, default_ovsdb
from vnet.topology import Lab

from .rellib import (
    VNET,
    LabFiles,
    PrivateOvs,
    RelLabs,
    case,
    cli,
    crash_lab,
    destroy_clean,
    owned_leftovers,
    qemu_gone,
    recover,
    settled_leftovers,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("as_root")


# --- ovs-vswitchd restarted during an apply --------------------------------------------------

def _vswitchd(ovs: PrivateOvs) -> tuple[int, list[str]]:
    """Pid and command line of the private instance's ovs-vswitchd (checked to be that one)."""
    pid = int(Path(ovs.paths.file("ovs-vswitchd.pid")).read_text().strip())
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    assert argv and ovs.paths.run_dir in " ".join(argv), (pid, argv)
    return pid, argv


def restart_vswitchd(ovs: PrivateOvs) -> int:
    """Stop the private ovs-vswitchd by pid (SIGTERM) and start it again; its new pid."""
    pid, argv = _vswitchd(ovs)
    os.kill(pid, signal.SIGTERM)
    wait_for(qemu_gone(pid), 30, "ovs-vswitchd to stop")  # (any process: exited or a zombie)
    env = {**os.environ, "OVS_RUNDIR": ovs.paths.run_dir, "OVS_LOGDIR": ovs.paths.run_dir}
    subprocess.run(argv, env=env, check=True, capture_output=True, timeout=60)
    return _vswitchd(ovs)[0]


def _bridge_row(ovs: PrivateOvs, bridge: str) -> Callable[[], bool]:
    return lambda: bridge in ovs.vsctl("list-br", check=False).stdout.split()


def test_vswitchd_restarted_during_an_apply(labs: RelLabs, ovs: PrivateOvs) -> None:
    """Restarted the moment the apply's OVS transaction is in the database: the apply either
    succeeds or fails clearly (exit 69, rolled back); the next apply converges either way."""
    files, lab = crash_lab(labs, "sv", False)
    process = cli("apply", str(files.files[-1]), remote=ovs.remote)
    with case("fault", "ovs-vswitchd restarted during an apply"):
        wait_for(lambda: process.poll() is not None or _bridge_row(ovs, files.bridge(1))(), 120,
                 "the apply's OVS rows")
        old = _vswitchd(ovs)[0]
        assert restart_vswitchd(ovs) != old
        out, err = process.communicate(timeout=180)
        assert process.returncode in (0, EX_UNAVAILABLE), (process.returncode, out, err)
        if process.returncode == EX_UNAVAILABLE:
            assert "error:" in err and "Traceback" not in err, err
        recover(ovs, lab, "after the vswitchd restart")
        destroy_clean(ovs, files, "after the vswitchd restart")


# --- ovsdb-server not running -----------------------------------------------------------------

@pytest.fixture
def stale_socket(tmp_path: Path) -> Path:
    """A unix socket file nobody listens on (what a crashed ovsdb-server leaves)."""
    path = tmp_path / "db.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))
    return path


@pytest.mark.parametrize("remote", ["missing", "stale"])
def test_explicit_ovsdb_that_is_not_running(labs: RelLabs, ovs: PrivateOvs, tmp_path: Path,
                                            stale_socket: Path, remote: str) -> None:
    files, _ = crash_lab(labs, "sd", False)
    dead = f"unix:{tmp_path / 'nothing.sock'}" if remote == "missing" else f"unix:{stale_socket}"
    with case("fault", f"apply --ovsdb to a {remote} ovsdb-server socket"):
        done = subprocess.run([VNET, "apply", "--ovsdb", dead, str(files.files[-1])],
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == EX_UNAVAILABLE, (done.stdout, done.stderr)
        assert f"no OVSDB answers at {dead}" in done.stderr
        assert "hint: start that ovsdb-server, or drop --ovsdb" in done.stderr
        assert [what for what in owned_leftovers(ovs, files) if not what.startswith("lock")] == []
        assert not os.path.exists(f"/run/vnet/{files.name}"), "the refused apply made a run directory"


# --- hand-made damage to a running lab with a guest ------------------------------------------

DAMAGE_LAB = """
name: $lab
switches:
  $b1: {type: ovs}
  $b2: {type: linux}
nodes:
  h1: {kind: netns}
  h2: {kind: netns}
  vm1: {kind: vm, image: tiny, memory: 128}
links:
  - {endpoints: [h1:eth0, $b1], ip: 198.18.22.1/24}
  - {endpoints: [$b1, $b2]}
  - {endpoints: [h2:eth0, $b2], ip: 198.18.22.2/24}
  - {endpoints: [vm1:eth0, $b2], ip: 198.18.22.9/24}
expect:
  - {from: h1, to: h2}
  - {from: vm1, to: h1}
  - {from: h2, to: vm1}
"""


@pytest.fixture(scope="module")
def damaged(ovs: PrivateOvs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LabFiles, Lab]]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    labs = RelLabs(ovs, tmp_path_factory.mktemp("damage"))
    umask = os.umask(0)  # the most permissive umask: vnet's run files must be private anyway
    try:
        up = labs.up(DAMAGE_LAB, "dm")
        os.umask(umask)
        yield up
    finally:
        os.umask(umask)
        problems = labs.cleanup()
        assert not problems, problems


def _reported_and_repaired(ovs: PrivateOvs, files: LabFiles, lab: Lab, what: str,
                           kinds: set[str], only: bool = False) -> None:
    """plan and `vnet verify` show the damage (changes of at least `kinds`, `only` those); one
    apply repairs it."""
    with case("fault", what):
        changes = api.plan(lab, ovsdb=ovs.remote).changes
        shown = {c.key[0] for c in changes}
        assert shown >= kinds and (not only or shown == kinds), [c.to_json() for c in changes]
        verify = subprocess.run([VNET, "verify", "--ovsdb", ovs.remote, str(files.files[-1])],
                                capture_output=True, text=True, timeout=120, check=False)
        assert verify.returncode == 1 and "differs from the topology" in verify.stdout, verify
        recover(ovs, lab, what)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _tap(files: LabFiles) -> str:
    return host_name("vt", files.name, "vm1", "eth0")


def _mode(path: Path) -> tuple[int, int]:
    info = path.lstat()
    return info.st_uid, stat.S_IMODE(info.st_mode)


def test_run_files_are_private(damaged: tuple[LabFiles, Lab]) -> None:
    """Applied under umask 000: /run/vnet is root's and not writable by others, the lab's lock is
    0600, and every directory of the lab (its own and its guest's, which hold the QMP and agent
    sockets, the pidfile and the serial log) is root's and 0700, so nothing in them is reachable
    by another user whatever QEMU's own file modes. The guest's TAP has no owner or group."""
    files, _ = damaged
    with case("hostile", "run files private (applied under umask 000), guest TAP unowned"):
        run_root = Path(RUN_DIR)
        assert run_root.stat().st_uid == 0 and not run_root.stat().st_mode & 0o022
        assert _mode(run_root / f"{files.name}.lock") == (0, 0o600)
        directories = [qemu.lab_run_dir(files.name), *(p for p in qemu.lab_run_dir(files.name).rglob("*")
                                                        if p.is_dir() and not p.is_symlink())]
        assert len(directories) >= 2 and all(_mode(d) == (0, 0o700) for d in directories), [
            (str(d), oct(_mode(d)[1])) for d in directories]
        assert qemu.vm_paths(files.name, "vm1").qmp.exists()
        tap = Path("/sys/class/net", _tap(files))
        assert [(tap / what).read_text().strip() for what in ("owner", "group")] == ["-1", "-1"]


def test_veth_end_renamed(damaged: tuple[LabFiles, Lab], ovs: PrivateOvs) -> None:
    files, lab = damaged
    end = host_name("vn", files.name, "h2", "eth0")
    _ip("link", "set", end, "name", f"{files.name}x")
    _reported_and_repaired(ovs, files, lab, "veth host end renamed by hand", {"veth"})


def test_interface_inside_a_namespace_renamed(damaged: tuple[LabFiles, Lab], ovs: PrivateOvs) -> None:
    files, lab = damaged
    _ip("-n", files.namespace("h1"), "link", "set", "eth0", "down")
    _ip("-n", files.namespace("h1"), "link", "set", "eth0", "name", "eth9")
    # Its host end is an OVS port: the port is remade, or ovs-vswitchd keeps the old device.
    _reported_and_repaired(ovs, files, lab, "interface inside a namespace renamed by hand",
                           {"veth", "address", "ovs-port"})


def test_linux_bridge_renamed(damaged: tuple[LabFiles, Lab], ovs: PrivateOvs) -> None:
    files, lab = damaged
    _ip("link", "set", files.bridge(2), "name", f"{files.name}y")
    _reported_and_repaired(ovs, files, lab, "Linux bridge renamed by hand", {"bridge"})


def test_devices_set_down(damaged: tuple[LabFiles, Lab], ovs: PrivateOvs) -> None:
    files, lab = damaged
    _ip("-n", files.namespace("h2"), "link", "set", "eth0", "down")
    _ip("link", "set", files.bridge(2), "down")
    _ip("link", "set", _tap(files), "down")
    _reported_and_repaired(ovs, files, lab, "namespace interface, bridge and TAP set down by hand",
                           {"veth", "bridge", "tap"})


def test_guest_tap_renamed(damaged: tuple[LabFiles, Lab], ovs: PrivateOvs) -> None:
    files, lab = damaged
    _ip("link", "set", _tap(files), "down")
    _ip("link", "set", _tap(files), "name", f"{files.name}t")
    # QEMU holds the old TAP open: the guest is restarted on the new one.
    _reported_and_repaired(ovs, files, lab, "a guest's TAP renamed by hand", {"tap", "vm"})


@pytest.mark.parametrize("which", ["lab", "guest"])
def test_run_directory_removed(damaged: tuple[LabFiles, Lab], ovs: PrivateOvs, which: str) -> None:
    """/run/vnet/<lab> (or the guest's /run/vnet/<lab>/vm1) removed: the QMP and agent sockets are
    gone, so the guest is restarted; the old QEMU is stopped by pid."""
    files, lab = damaged
    [old] = qemu.running_vms(files.name)
    target = qemu.lab_run_dir(files.name) if which == "lab" else qemu.vm_paths(files.name, "vm1").dir
    subprocess.run(["rm", "-rf", "--", str(target)], check=True, timeout=30)
    _reported_and_repaired(ovs, files, lab, f"the {which}'s run directory removed by hand", {"vm"}, only=True)
    assert qemu_gone(old.pid)(), "the old QEMU still runs"
    assert [vm.pid for vm in qemu.running_vms(files.name)] != [old.pid]


def test_destroy_stops_a_guest_whose_run_directory_is_gone(
        damaged: tuple[LabFiles, Lab], ovs: PrivateOvs) -> None:
    """Last in the module: destroy finds the QEMU by its -name, without QMP, and kills it by pid."""
    files, _ = damaged
    [vm] = qemu.running_vms(files.name)
    subprocess.run(["rm", "-rf", "--", str(qemu.lab_run_dir(files.name))], check=True, timeout=30)
    with case("fault", "destroy of a lab whose run directory was removed"):
        done = subprocess.run([VNET, "destroy", "--lab", files.name, "--ovsdb", ovs.remote],
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, (done.stdout, done.stderr)
        assert qemu_gone(vm.pid)()
        assert settled_leftovers(ovs, files) == []


# --- OVSDB only through its unix socket; a driver that raises ---------------------------------

def test_ovsdb_only_through_the_local_socket(ovs: PrivateOvs, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unless --ovsdb or VNET_OVSDB say otherwise vnet uses the system unix socket, no module
    names a TCP or SSL remote, and the ovsdb-server vnet starts listens on its unix socket only
    (plus the database's own manager_options, empty unless an administrator adds one)."""
    with case("hostile", "OVSDB reached only through the local unix socket"):
        monkeypatch.delenv("VNET_OVSDB")
        assert default_ovsdb() == SYSTEM_OVSDB == "unix:/var/run/openvswitch/db.sock"
        sources = {p: p.read_text() for p in (Path(__file__).parents[2] / "vnet").rglob("*.py")}
        assert not [str(p) for p, text in sources.items()
                    if any(f'"{scheme}:' in text for scheme in ("tcp", "ssl", "ptcp", "pssl"))]
        pid = int(Path(ovs.paths.file("ovsdb-server.pid")).read_text())
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        remotes = [a.removeprefix("--remote=") for a in argv if a.startswith("--remote=")]
        assert remotes == [f"punix:{ovs.paths.socket}", "db:Open_vSwitch,Open_vSwitch,manager_options"]
        assert ovs.vsctl("get-manager").stdout.strip() == ""


def test_a_driver_that_raises_rolls_the_apply_back(labs: RelLabs, ovs: PrivateOvs,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug (an exception, not a reported failure) when the guest starts, after 33 changes:
    the exception reaches the caller (exit 70), and the host is as before the apply."""
    files, lab = crash_lab(labs, "sx", True)

    def broken(argvs: object, timeout: float = 0) -> list[str | None]:
        raise ValueError("a bug in a driver")
    monkeypatch.setattr(qemu, "start_all", broken)
    with case("fault", "a driver raises an exception in the middle of an apply"):
        with pytest.raises(ValueError, match="a bug in a driver"):
            api.apply(lab, ovsdb=ovs.remote)
        # (What any failed apply leaves: the lab's lock file and run directory.)
        assert settled_leftovers(ovs, files, ignore=("lock", "directory")) == []

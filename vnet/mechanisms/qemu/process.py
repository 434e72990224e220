"""QEMU processes of a lab: the command line, start, find, stop.

A VM is one daemonized `qemu-system-x86_64` whose `-name guest=vnet:<lab>:<node>` is its
ownership mark: vnet finds a lab's VMs by reading /proc/<pid>/cmdline, so destroy works
without the topology file, after a crash and after the run directory was removed. The full
command line is the VM's observed configuration: the desired one is computed the same way, and
any difference means the VM runs with something else and is restarted.

Per VM, under /run/vnet/<lab>/<node>/ (mode 0700): the pidfile, the QMP socket (stop,
hot-plug; spoken with the `qemu.qmp` library), the guest agent socket, the serial console's
socket (`vnet console`) and the serial log (`vnet logs`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vnet.errors import UnavailableError
from vnet.topology.names import LAB_NAME, NODE_NAME, SRIOV_PREFIX

RUN_ROOT = Path(os.environ.get("VNET_RUN_DIR", "/run/vnet"))
QEMU = "qemu-system-x86_64"
NAME_PREFIX = "guest=vnet:"
# How long apply (tiny image) and verify (any image) wait for a guest's agent after its start.
BOOT_TIMEOUT = float(os.environ.get("VNET_VM_BOOT_TIMEOUT", "120"))
KILL_TIMEOUT = 10.0
SERIAL_ID = "vnetserial"


@dataclass(frozen=True)
class VmPaths:
    dir: Path

    @property
    def pidfile(self) -> Path:
        return self.dir / "qemu.pid"

    @property
    def qmp(self) -> Path:
        return self.dir / "qmp.sock"

    @property
    def agent(self) -> Path:
        return self.dir / "agent.sock"

    @property
    def qga(self) -> Path:
        return self.dir / "qga.sock"

    @property
    def serial(self) -> Path:
        return self.dir / "serial.log"

    @property
    def console(self) -> Path:
        """The serial console's socket (`vnet console`); QEMU copies the guest's output to `serial`."""
        return self.dir / "serial.sock"


def lab_run_dir(lab: str) -> Path:
    return RUN_ROOT / lab


def vm_paths(lab: str, node: str) -> VmPaths:
    return VmPaths(lab_run_dir(lab) / node)


def qemu_binary() -> str:
    found = shutil.which(QEMU)
    if found is None:
        raise UnavailableError(f"{QEMU} is not installed: VM nodes need it",
                               "apt-get install qemu-system-x86")
    return found


def kvm_usable() -> bool:
    """KVM runs guests only with VT-x/AMD-V: /dev/kvm alone is not enough (README, "Host readiness")."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return any(f" {flag}" in flags for flag in ("vmx", "svm"))


def choose_accel(requested: str, kvm: bool) -> tuple[str, str]:
    """(accelerator, why) for `accel: auto|kvm|tcg` on a host where KVM is usable or not."""
    if requested == "tcg":
        return "tcg", "accel: tcg"
    if kvm:
        return "kvm", "KVM (the CPU has VT-x/AMD-V and /dev/kvm opens)"
    if requested == "kvm":
        raise UnavailableError("accel: kvm, but KVM cannot run guests on this host",
                               "the CPU needs VT-x/AMD-V (`vmx`/`svm` flags) and /dev/kvm; "
                               "use accel: auto or tcg (run `vnet host check`)")
    return "tcg", "TCG (software emulation): no VT-x/AMD-V or /dev/kvm here"


def guest_name(lab: str, node: str) -> str:
    return f"{NAME_PREFIX}{lab}:{node}"


@dataclass(frozen=True)
class Nic:
    """One virtio-net NIC on an existing (persistent) TAP device."""

    tap: str
    mac: str
    # False: the guest computes its checksums (a TAP on a userspace OVS bridge; see
    # vnet/mechanisms/ovs/compile.py guest_must_checksum).
    checksum_offload: bool = True


@dataclass(frozen=True)
class Machine:
    """What the QEMU command line is made of (all resolved: paths, accelerator)."""

    lab: str
    node: str
    memory: int
    vcpus: int
    accel: str  # kvm | tcg
    nics: tuple[Nic, ...]
    boot: tuple[str, ...]  # -kernel/-initrd/-append or -drive arguments
    extra: tuple[str, ...] = ()  # guest agent channels and the like
    vhost: bool = False


def _option_value(path: Path) -> str:
    return str(path).replace(",", ",,")  # QEMU's option syntax escapes a comma by doubling it


def serial_args(paths: VmPaths) -> list[str]:
    """The guest's serial port on a socket a console attaches to (one client at a time), with
    everything the guest writes also logged, attached or not (`logfile=`, truncated at start)."""
    return ["-chardev", f"socket,id={SERIAL_ID},path={_option_value(paths.console)},server=on,"
                        f"wait=off,logfile={_option_value(paths.serial)}",
            "-serial", f"chardev:{SERIAL_ID}"]


def qemu_argv(machine: Machine, binary: str = QEMU) -> tuple[str, ...]:
    paths = vm_paths(machine.lab, machine.node)
    argv = [binary, "-name", f"{guest_name(machine.lab, machine.node)},process=qemu-{machine.node}",
            "-accel", machine.accel, "-cpu", "host" if machine.accel == "kvm" else "max",
            "-m", str(machine.memory), "-smp", str(machine.vcpus),
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            *serial_args(paths),
            "-qmp", f"unix:{paths.qmp},server=on,wait=off",
            "-pidfile", str(paths.pidfile), "-daemonize",
            *machine.boot, *machine.extra]
    for k, nic in enumerate(machine.nics):
        vhost = ",vhost=on" if machine.vhost else ""
        csum = "" if nic.checksum_offload else ",csum=off"
        argv += ["-netdev", f"tap,id=net{k},ifname={nic.tap},script=no,downscript=no{vhost}",
                 "-device", f"virtio-net-pci,netdev=net{k}{csum},mac={nic.mac},id=nic{k}"]
    return tuple(argv)


# --- PCI passthrough (SR-IOV VFs) ----------------------------------------------------------
# A VF's PCI address exists only once the VF does, after the plan was made: the desired command
# line names it `host=sriov:<pf>/vf<n>`, start resolves that to the address and observe maps
# the address back (vnet/mechanisms/sriov/host/passthrough.py), so an unchanged VM compares equal.

def vfio_args(refs: Sequence[str]) -> list[str]:
    """`-device vfio-pci` arguments for VFs `<pf>/vf<n>`, in the symbolic form."""
    argv = []
    for k, ref in enumerate(refs):
        argv += ["-device", f"vfio-pci,host={SRIOV_PREFIX}{ref},id=hostdev{k}"]
    return argv


def vfio_hosts(argv: Sequence[str]) -> tuple[str, ...]:
    """The `host=` values of the command line's `-device vfio-pci,…` arguments."""
    return tuple(part.removeprefix("host=") for option, value in itertools.pairwise(argv)
                 if option == "-device" and value.startswith("vfio-pci,")
                 for part in value.split(",") if part.startswith("host="))


def map_vfio_hosts(argv: Sequence[str], change: Callable[[str], str]) -> tuple[str, ...]:
    """The command line with each vfio-pci `host=` value replaced by `change(value)`."""
    out = list(argv)
    for k in range(1, len(out)):
        if out[k - 1] == "-device" and out[k].startswith("vfio-pci,"):
            out[k] = ",".join(f"host={change(part[5:])}" if part.startswith("host=") else part
                              for part in out[k].split(","))
    return tuple(out)


# --- finding running VMs -------------------------------------------------------------------


@dataclass(frozen=True)
class RunningVm:
    pid: int
    lab: str
    node: str
    argv: tuple[str, ...]


def _cmdline(pid: int) -> tuple[str, ...]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ()
    return tuple(raw.decode(errors="replace").split("\0")[:-1])


def _mark(argv: Sequence[str]) -> tuple[str, str] | None:
    """(lab, node) from a vnet VM's `-name` argument, else None."""
    for option, value in itertools.pairwise(argv):
        if option == "-name" and value.startswith(NAME_PREFIX):
            lab, _, node = value.split(",", 1)[0].removeprefix(NAME_PREFIX).partition(":")
            # Anyone can start a process with this argument: only well-formed names, never a
            # path (`..`, `/`), since the run directory /run/vnet/<lab>/<node> is removed.
            return (lab, node) if LAB_NAME.match(lab) and NODE_NAME.match(node) else None
    return None


def _ours(pid: int) -> bool:
    """Whether the process runs as this user (vnet's guests run as the vnet that started them)."""
    try:
        return os.stat(f"/proc/{pid}").st_uid == os.geteuid()
    except OSError:
        return False


def running_vms(lab: str | None = None) -> list[RunningVm]:
    """vnet's QEMU processes (of one lab, or all), found by their `-name` mark."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        argv = _cmdline(int(entry.name))
        mark = _mark(argv) if argv and "qemu" in os.path.basename(argv[0]) else None
        if mark is not None and (lab is None or mark[0] == lab) and _ours(int(entry.name)):
            found.append(RunningVm(int(entry.name), mark[0], mark[1], argv))
    return sorted(found, key=lambda vm: (vm.lab, vm.node))


def labs_with_vms() -> set[str]:
    return {vm.lab for vm in running_vms()}


# --- start and stop ------------------------------------------------------------------------


def prepare_run_dir(paths: VmPaths) -> None:
    """A clean per-VM directory (stale sockets of a dead QEMU would confuse clients)."""
    if paths.dir.exists():
        shutil.rmtree(paths.dir)
    paths.dir.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths.dir.mkdir(mode=0o700)


def start_all(argvs: Sequence[Sequence[str]], timeout: float = 30.0) -> list[str | None]:
    """Start daemonizing QEMU processes in parallel; per VM None or why it failed."""
    # Own session: Ctrl-C at vnet's terminal goes to its process group, and a QEMU still
    # daemonizing would die of it; vnet decides what an interrupt does to its guests.
    procs = [subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, start_new_session=True) for argv in argvs]
    errors: list[str | None] = []
    for proc in procs:
        # With -daemonize the parent exits once the guest is set up (or failed to be).
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            errors.append(f"QEMU did not finish starting within {timeout:.0f} s")
            continue
        text = out.decode(errors="replace").strip()
        errors.append(None if proc.returncode == 0 else (text.splitlines() or ["QEMU failed"])[-1])
    return errors


async def _qmp_quit(socket_path: Path, timeout: float) -> None:
    import asyncio  # noqa: PLC0415 (asyncio and qemu.qmp: ~20 ms, only to stop a VM)

    from qemu.qmp import QMPClient  # noqa: PLC0415

    client = QMPClient("vnet")
    await asyncio.wait_for(client.connect(str(socket_path)), timeout)
    try:
        await asyncio.wait_for(client.execute("quit"), timeout)
    finally:
        await client.disconnect()


def _alive(vm: RunningVm) -> bool:
    return _cmdline(vm.pid) == vm.argv


def still_running(vm: RunningVm) -> bool:
    """Whether `vm`'s process still runs that guest (its pid not ended, nor reused)."""
    return _alive(vm)


def _exited(pid: int) -> bool:
    """Whether the process has released its files: gone, or a zombie. Its command line empties
    earlier (the kernel drops the memory map before the open files), while the TAP is still held."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


STOP_ROUNDS = 5  # scans for a guest's QEMU processes: a parent stopped while it forks leaves a child


def stop(vm: RunningVm, timeout: float = 3.0) -> None:
    """Ask QEMU to quit over QMP; SIGKILL it (by pid, if it is still that VM) when it does not."""
    socket_path = vm_paths(vm.lab, vm.node).qmp
    import asyncio  # noqa: PLC0415 (see _qmp_quit)

    with contextlib.suppress(Exception):  # any QMP failure: fall through to the signal
        asyncio.run(_qmp_quit(socket_path, timeout))
    deadline = time.monotonic() + timeout
    while _alive(vm) and time.monotonic() < deadline:
        time.sleep(0.02)
    if _alive(vm):
        with contextlib.suppress(ProcessLookupError):
            os.kill(vm.pid, signal.SIGKILL)
    deadline = time.monotonic() + KILL_TIMEOUT  # bounded: the pid may be reused once reaped
    while not _exited(vm.pid) and time.monotonic() < deadline:
        time.sleep(0.01)


def remove_run_dir(lab: str, node: str | None = None) -> None:
    target = lab_run_dir(lab) if node is None else vm_paths(lab, node).dir
    shutil.rmtree(target, ignore_errors=True)
    if node is not None:
        with contextlib.suppress(OSError):
            lab_run_dir(lab).rmdir()  # only when it is empty


def tap_names(argv: Sequence[str]) -> tuple[str, ...]:
    """The TAP devices a QEMU command line opens (`-netdev tap,...,ifname=NAME`)."""
    names = []
    for option, value in itertools.pairwise(argv):
        if option == "-netdev" and value.startswith("tap,"):
            names += [p.removeprefix("ifname=") for p in value.split(",") if p.startswith("ifname=")]
    return tuple(names)


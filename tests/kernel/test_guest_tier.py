"""The guest-kernel tier: boot Debian's kernel with virtme-ng and run tests/kernel/guest/ inside it.

The host kernel has no OVS kernel datapath, no 802.1Q and no bridge VLAN filtering (README, "Development").
Debian's `linux-image-amd64` has all of them as modules, so this test boots it under QEMU (TCG:
/dev/kvm here is not VT-x) with `vng --run /boot/vmlinuz-<ver> --disable-kvm`, once, and runs
pytest on tests/kernel/guest/ in it with this repository's virtualenv. The guest sees the host's
filesystem read-only (9p) with copy-on-write overlays on /etc, /usr, /var, /tmp …, and /run as
its own tmpfs; the one writable host directory is the results directory (`--rwdir`), where the
guest writes its exit code and a JUnit XML report that this test reads.

Speed: Python reading thousands of small files over 9p under TCG is slow (imports alone took
over a minute), so the repository (with .venv) and the standard library are also handed to the
guest as read-only ext4 images on virtio-blk disks (`mke2fs -d`, about 2 s, in /dev/shm) and
mounted over the same paths; if that fails, the guest falls back to 9p.

Skipped (with the reason) when not root, without vng / QEMU / the guest kernel, or with
VNET_SKIP_GUEST=1; VNET_REQUIRE_GUEST=1 (CI) turns those skips into failures.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# the guest-only tests, and the feature probes again (on a kernel that has the features)
GUEST_TESTS = ("tests/kernel/guest", "tests/kernel/test_host_features.py")
TIMEOUT = 600  # seconds for boot + the guest's pytest; about 2-4 min is normal under TCG
MEMORY, CPUS = "1G", "2"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

pytestmark = [pytest.mark.root, pytest.mark.guest]


def _version_key(release: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", release))


def guest_kernel() -> tuple[Path, str] | None:
    """The newest /boot/vmlinuz-<release> whose modules include the OVS kernel datapath and 9p.

    9p is how virtme-ng shares the host's root with the guest; Debian's cloud kernel (installed
    for the tiny VMs) has the OVS datapath but no 9p, so it cannot be this tier's kernel.
    """
    found = []
    for image in Path("/boot").glob("vmlinuz-*"):
        release = image.name.removeprefix("vmlinuz-")
        modules = Path("/lib/modules", release, "kernel")
        if (os.access(image, os.R_OK) and (modules / "net" / "openvswitch").is_dir()
                and (modules / "fs" / "9p").is_dir()):
            found.append((_version_key(release), image, release))
    if not found:
        return None
    _, image, release = max(found)
    return image, release


def _vng() -> str | None:
    beside = Path(sys.executable).with_name("vng")
    return str(beside) if beside.exists() else shutil.which("vng")


def _missing() -> str | None:
    """Why the tier cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (the guest runs as root and builds namespaces, bridges and OVS)"
    if _vng() is None:
        return "virtme-ng (`vng`) is not installed: run tools/bootstrap.sh"
    if shutil.which("qemu-system-x86_64") is None:
        return "qemu-system-x86_64 is not installed (Debian: qemu-system-x86): run tools/bootstrap.sh"
    if guest_kernel() is None:
        return ("no guest kernel with the openvswitch and 9p modules in /boot + /lib/modules "
                "(Debian: linux-image-amd64): run tools/bootstrap.sh")
    return None


@pytest.fixture
def guest_ready() -> None:
    if os.environ.get("VNET_IN_GUEST") == "1":
        pytest.skip("already inside the guest")
    if os.environ.get("VNET_SKIP_GUEST") == "1":
        pytest.skip("VNET_SKIP_GUEST=1")
    why = _missing()
    if why is not None:
        if os.environ.get("VNET_REQUIRE_GUEST") == "1":
            pytest.fail(f"guest-kernel tier required (VNET_REQUIRE_GUEST=1) but {why}", pytrace=False)
        pytest.skip(why)


# --- read-only disk images of the trees Python reads -------------------------------------------

@dataclass(frozen=True)
class Image:
    serial: str  # virtio-blk serial: how the guest finds the disk
    source: Path  # mounted over the same path in the guest
    file: Path


# Top-level entries the guest's Python never reads: left out of the images.
REPO_SKIP = {".git", ".mypy_cache", ".hypothesis", ".ruff_cache", ".pytest_cache"}
STDLIB_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip"}


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another filesystem, or a file that just went away
        with contextlib.suppress(FileNotFoundError):
            shutil.copy2(source, target)


def _stage(source: Path, staging: Path, skip: set[str]) -> tuple[int, int]:
    """Mirror `source` into `staging` with hard links (cheap), leaving out the top-level `skip`
    entries; returns (bytes, entries) of what was staged."""
    def ignore(directory: str, names: list[str]) -> set[str]:
        if Path(directory) != source:
            return set()
        return {n for n in names if n in skip or n.startswith("config-")}
    shutil.copytree(source, staging, symlinks=True, ignore=ignore, copy_function=_link_or_copy,
                    ignore_dangling_symlinks=True)
    size = entries = 0
    for directory, dirs, names in os.walk(staging):
        entries += len(dirs) + len(names)
        size += sum(os.lstat(os.path.join(directory, n)).st_size for n in names)
    return size, entries


def make_image(serial: str, source: Path, skip: set[str], work: Path, directory: Path) -> Image | None:
    """An ext4 image holding a copy of `source` (None if mke2fs is missing or fails)."""
    mke2fs = shutil.which("mke2fs") or "/sbin/mke2fs"
    if not os.access(mke2fs, os.X_OK):
        return None
    staging = Path(tempfile.mkdtemp(prefix=f"{serial}-", dir=work)) / "tree"
    try:
        size, entries = _stage(source, staging, skip)
        megabytes = (size * 5 // 4 + entries * 4096) // 2**20 + 64
        target = directory / f"{serial}.img"
        done = subprocess.run([mke2fs, "-q", "-F", "-t", "ext4", "-O", "^has_journal", "-m", "0",
                               "-N", str(entries + 4096), "-E", "root_owner=0:0", "-d", str(staging),
                               str(target), f"{megabytes}M"], capture_output=True, text=True,
                              check=False, timeout=300)
    finally:
        shutil.rmtree(staging.parent, ignore_errors=True)
    if done.returncode != 0:
        target.unlink(missing_ok=True)
        return None
    return Image(serial, source, target)


def guest_images(work: Path, directory: Path) -> list[Image]:
    """Images of the trees Python reads in the guest: the repository (with .venv), the standard
    library (without its own site-packages unless this interpreter uses it), a venv elsewhere."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    uses_base_site = any(Path(p).is_relative_to(stdlib / "site-packages") for p in sys.path if p)
    trees = {"vnetrepo": (REPO, REPO_SKIP),
             "vnetstdlib": (stdlib, STDLIB_SKIP | (set() if uses_base_site else {"site-packages"}))}
    venv = Path(sys.prefix)
    if not venv.is_relative_to(REPO):
        trees["vnetvenv"] = (venv, set())
    images = [make_image(serial, source, skip, work, directory) for serial, (source, skip) in trees.items()]
    return [i for i in images if i is not None]


# --- the guest's script -------------------------------------------------------------------------

def guest_script(results: Path, images: list[Image]) -> str:
    q = shlex.quote
    lines = [
        "#!/bin/bash",
        "# Runs inside the guest (written by tests/kernel/test_guest_tier.py).",
        "set -u",
        f"results={q(str(results))}",
        'echo "guest: kernel $(uname -r), up $(cut -d" " -f1 /proc/uptime) s"',
        "modprobe -a virtio_blk ext4 >/dev/null 2>&1",
        "mount_image() {  # serial, path: mount the ext4 image over the same path, read-only",
        "  for _ in $(seq 50); do",
        "    for dev in /sys/block/vd*; do",
        '      if [ -e "$dev/serial" ] && [ "$(cat "$dev/serial")" = "$1" ]; then',
        '        mount -t ext4 -o ro "/dev/${dev##*/}" "$2" && return 0',
        '        echo "guest: cannot mount $1 on $2; 9p it is"; return 1',
        "      fi",
        "    done",
        "    sleep 0.1",
        "  done",
        '  echo "guest: no disk $1; 9p it is"; return 1',
        "}",
    ]
    lines += [f"mount_image {q(i.serial)} {q(str(i.source))}" for i in images]
    pytest_argv = [sys.executable, "-m", "pytest", *GUEST_TESTS, "-p", "no:cacheprovider",
                   "--basetemp=/run/vnet-guest-pytest", f"--junitxml={results / 'junit.xml'}",
                   "-ra", "-v", "--durations=0", "-o", "faulthandler_timeout=300",
                   "-p", "no:hypothesispytest"]  # its database dir is read-only here; not used
    lines += [
        f"cd {q(str(REPO))} || exit 90",
        "export VNET_IN_GUEST=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1",
        f"export PATH={q(str(Path(sys.executable).parent))}:{SYSTEM_PATH}",
        'echo "guest: pytest starts at $(cut -d" " -f1 /proc/uptime) s"',
        " ".join(q(a) for a in pytest_argv),
        "rc=$?",
        'echo "$rc" > "$results/rc"',
        'echo "guest: pytest exited $rc at $(cut -d" " -f1 /proc/uptime) s"',
        "exit $rc",
    ]
    return "\n".join(lines) + "\n"


# --- running it -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class GuestRun:
    returncode: int | None  # vng's; None when it timed out
    seconds: float
    log: str


def boot(results: Path, images: list[Image], kernel: Path) -> GuestRun:
    script = results / "guest.sh"
    script.write_text(guest_script(results, images))
    qemu_opts = []
    for k, image in enumerate(images):
        qemu_opts += [f"-drive file={image.file},if=none,id=vnetimg{k},format=raw,readonly=on",
                      f"-device virtio-blk-pci,drive=vnetimg{k},serial={image.serial}"]
    vng = _vng()
    assert vng is not None
    argv = [vng, "--run", str(kernel), "--disable-kvm", "--memory", MEMORY, "--cpus", CPUS,
            "--user", "root", f"--rwdir={results}"]
    if qemu_opts:
        argv.append("--qemu-opts=" + " ".join(qemu_opts))
    argv += ["--", f"bash {shlex.quote(str(script))}"]
    # vng runs `virtme-run` (installed beside it) through PATH
    env = {**os.environ, "PATH": f"{Path(vng).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    log_file = results / "vng.log"
    started = time.monotonic()
    # A pipe, not the log file itself: QEMU opens its stdout once per console channel, and
    # several opens of one file overwrite each other. A thread copies the pipe to the log as it
    # comes, so a run that hangs still leaves what it said.
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True)
    copier = threading.Thread(target=_copy, args=(process, log_file), daemon=True)
    copier.start()
    try:
        returncode: int | None = process.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        returncode = None
        _end(process)
    copier.join(timeout=30)
    return GuestRun(returncode, time.monotonic() - started, log_file.read_text(errors="replace"))


def _copy(process: subprocess.Popen[bytes], log_file: Path) -> None:
    assert process.stdout is not None
    with log_file.open("wb") as log:
        for chunk in iter(lambda: process.stdout.read1(65536), b""):  # type: ignore[union-attr]
            log.write(chunk)
            log.flush()


def _end(process: subprocess.Popen[bytes]) -> None:
    """Stop vng and its QEMU (its own session: the group is only what this test started)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


@dataclass(frozen=True)
class CaseResult:
    name: str
    outcome: str  # passed | failed | error | skipped
    message: str


def read_junit(path: Path) -> list[CaseResult]:
    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = "failed" if child.tag == "failure" else child.tag
                message = (child.get("message") or "") + "\n" + (child.text or "")
                break
        cases.append(CaseResult(f"{case.get('classname')}::{case.get('name')}", outcome, message.strip()))
    return cases


def test_guest_kernel_tier(guest_ready: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    found = guest_kernel()
    assert found is not None
    kernel, release = found
    results = tmp_path / "results"
    results.mkdir()
    # in memory when possible: QEMU reads them from there, and no disk write-back is waited for
    shm = Path("/dev/shm")
    image_dir = Path(tempfile.mkdtemp(prefix="vnet-guest-", dir=shm if shm.is_dir() else tmp_path))
    started = time.monotonic()
    try:
        images = guest_images(tmp_path, image_dir)
        run = boot(results, images, kernel)
    finally:
        shutil.rmtree(image_dir, ignore_errors=True)
    total = time.monotonic() - started
    tail = "\n".join(run.log.splitlines()[-80:])
    where = f"guest kernel {release}; full log: {results / 'vng.log'}\n--- last lines ---\n{tail}"
    assert run.returncode is not None, f"the guest did not finish within {TIMEOUT} s; {where}"
    junit = results / "junit.xml"
    assert junit.exists(), f"the guest wrote no test report (vng exited {run.returncode}); {where}"
    cases = read_junit(junit)
    counts = {o: sum(c.outcome == o for c in cases) for o in ("passed", "failed", "error", "skipped")}
    with capsys.disabled():
        print(f"\nguest tier: kernel {release}, {len(images)} disk images, "
              f"{', '.join(f'{n} {o}' for o, n in counts.items() if n)} "
              f"in {total:.0f} s (boot + guest pytest {run.seconds:.0f} s)")
    bad = [c for c in cases if c.outcome in ("failed", "error")]
    assert not bad, "in the guest:\n" + "\n\n".join(f"{c.outcome.upper()} {c.name}\n{c.message[-3000:]}"
                                                    for c in bad) + f"\n\n{where}"
    guest_rc = (results / "rc").read_text().strip() if (results / "rc").exists() else None
    assert guest_rc == "0" and run.returncode == 0, \
        f"guest pytest exited {guest_rc}, vng {run.returncode}; {where}"
    assert counts["passed"] > 0, f"no test passed in the guest: {counts}; {where}"
    skipped = [c for c in cases if c.outcome == "skipped"]
    assert not skipped, "skipped in the guest: " + "; ".join(f"{c.name}: {c.message}" for c in skipped)

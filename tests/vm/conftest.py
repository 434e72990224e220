"""Fixtures for the tiny-guest tests: real QEMU guests under TCG, started and killed by pid.

Nothing on the host's network changes: guest NICs use QEMU hubports (a NIC with nothing behind it)
or `-netdev dgram` over UNIX datagram sockets in the test's own directory (an L2 segment between
two guests). Each guest is a plain subprocess of pytest, killed at the end also when a test failed.
Skipped without root, QEMU or the host files the tiny image is built from (VNET_REQUIRE_GUEST=1
turns those skips into failures, as for the guest-kernel tier).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from vnet.errors import UnavailableError
from vnet.vm import tiny
from vnet.vm.agent import GuestAgent, agent_qemu_args

QEMU = "qemu-system-x86_64"
BOOT_TIMEOUT = 90.0  # TCG boots in seconds, but other tests may load the machine


def _skip(why: str) -> None:
    if os.environ.get("VNET_REQUIRE_GUEST") == "1":
        pytest.fail(f"tiny guest tests required (VNET_REQUIRE_GUEST=1) but {why}", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="session")
def tiny_image(tmp_path_factory: pytest.TempPathFactory) -> tiny.TinyImage:
    """The real tiny image, built from this host's files into a private cache."""
    if os.geteuid() != 0:
        _skip("the tiny guest tests boot QEMU guests: they need root")
    if shutil.which(QEMU) is None:
        _skip(f"{QEMU} is not installed (apt-get install qemu-system-x86)")
    try:
        inputs = tiny.find_inputs()
    except UnavailableError as exc:
        _skip(f"{exc.message} ({exc.hint})")
    return tiny.build(inputs, tmp_path_factory.mktemp("tiny-cache"))


class Guest:
    """One tiny guest: a QEMU subprocess with its serial log and agent socket in `workdir`."""

    def __init__(self, image: tiny.TinyImage, workdir: Path, name: str, config: tiny.GuestConfig,
                 netdevs: Sequence[str], extra_append: str = "") -> None:
        self.name, self.workdir, self.config = name, workdir, config
        self.socket = workdir / f"{name}.sock"
        self.serial_log = workdir / f"{name}.serial"
        append = " ".join(p for p in (tiny.kernel_cmdline(config), extra_append) if p)
        argv = [QEMU, "-accel", "tcg", "-m", "128", "-nodefaults", "-no-user-config", "-display", "none",
                "-no-reboot", "-serial", f"file:{self.serial_log}",
                "-kernel", str(image.kernel), "-initrd", str(image.initrd), "-append", append,
                *agent_qemu_args(self.socket)]
        for k, (nic, netdev) in enumerate(zip(config.nics, netdevs, strict=True)):
            argv += ["-netdev", f"{netdev},id=n{k}", "-device", f"virtio-net-pci,netdev=n{k},mac={nic.mac}"]
        with open(workdir / f"{name}.qemu.log", "wb") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        self.started = time.monotonic()
        self.boot_seconds = 0.0

    def wait_ready(self) -> None:
        with GuestAgent(self.socket) as agent:
            agent.wait_ready(BOOT_TIMEOUT)
        self.boot_seconds = time.monotonic() - self.started
        print(f"\n{self.name}: agent ready {self.boot_seconds:.1f} s after QEMU started, "
              f"QEMU VmRSS {self.rss_kib()} KiB")

    def agent(self) -> GuestAgent:
        return GuestAgent(self.socket)

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def serial(self) -> str:
        return self.serial_log.read_text(errors="replace") if self.serial_log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


class Guests:
    """Makes guests for one test (or module) and kills all of them, and removes their files, at the end."""

    def __init__(self, image: tiny.TinyImage) -> None:
        self.image = image
        # short path in /tmp: a UNIX socket path has at most 107 bytes
        self.workdir = Path(tempfile.mkdtemp(prefix="vnet-tiny-", dir="/tmp"))
        self.made: list[Guest] = []

    def start(self, name: str, config: tiny.GuestConfig, netdevs: Sequence[str],
              extra_append: str = "") -> Guest:
        guest = Guest(self.image, self.workdir, name, config, netdevs, extra_append)
        self.made.append(guest)
        return guest

    def cleanup(self) -> None:
        try:
            for guest in self.made:
                guest.stop()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture
def guests(tiny_image: tiny.TinyImage) -> Iterator[Guests]:
    made = Guests(tiny_image)
    try:
        yield made
    finally:
        made.cleanup()

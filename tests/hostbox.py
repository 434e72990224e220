"""A sandbox standing in for a whole host: private network, mount and PID namespaces.

tmpfs on /run/netns, /run/vnet and /run/openvswitch (no system OVSDB), its own /sys and /proc.
What runs in it (`destroy --all`, a hostile apply) can reach no object and no process of anyone
else: `destroy --all` outside one would meet every lab on the host and stop their guests.
Everything started in it is killed with it (the kernel kills a PID namespace's processes with
its init). Importable as `hostbox` from every test directory, as hanglib.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vnet.pipeline.lock import RUN_DIR

START_TIMEOUT = 10.0  # s for unshare to exec sleep as the new PID namespace's init


class Sandbox:
    """One sandbox (see the module docstring); `run` runs a command inside it."""

    def __init__(self) -> None:
        self.unshare = subprocess.Popen(["unshare", "--net", "--mount", "--pid", "--fork", "--mount-proc",
                                         "--propagation", "private", "--", "sleep", "3600"])
        self.pid = 0
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not self._started():
                if time.monotonic() > deadline or self.unshare.poll() is not None:
                    raise AssertionError("the sandbox did not start (unshare)")
                time.sleep(0.01)
            for fs, target in (("tmpfs", "/run/netns"), ("tmpfs", "/run/vnet"),
                               ("tmpfs", "/run/openvswitch"), ("sysfs", "/sys")):
                self.run("mount", "-t", fs, "vnet-test", target)
        except BaseException:
            self.close()
            raise

    def _started(self) -> bool:
        """Whether unshare's child (init of the new PID namespace) has exec'ed sleep."""
        try:
            children = Path(f"/proc/{self.unshare.pid}/task/{self.unshare.pid}/children").read_text().split()
            pid = int(children[0])
            if Path(f"/proc/{pid}/comm").read_text().strip() != "sleep":
                return False
        except (OSError, IndexError, ValueError):
            return False
        self.pid = pid
        return True

    def run(self, *args: str, check: bool = True, timeout: float = 300,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["nsenter", "-t", str(self.pid), "--net", "--mount", "--pid", "--", *args],
                              capture_output=True, text=True, timeout=timeout, check=False,
                              stdin=subprocess.DEVNULL,  # never a terminal: `destroy --all` would ask
                              env=None if env is None else {**os.environ, **env})
        if check and done.returncode != 0:
            raise AssertionError(f"in the sandbox: {' '.join(args)} exited {done.returncode}\n"
                                 f"stdout: {done.stdout}\nstderr: {done.stderr}")
        return done

    def close(self) -> None:
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.unshare.kill()
        self.unshare.wait(10)


@contextlib.contextmanager
def sandbox() -> Iterator[Sandbox]:
    for tool in ("unshare", "nsenter"):
        if not any(os.access(f"{d}/{tool}", os.X_OK) for d in ("/usr/bin", "/bin", "/usr/sbin")):
            pytest.skip(f"needs {tool} (util-linux)")
    os.makedirs("/run/netns", exist_ok=True)
    os.makedirs(RUN_DIR, exist_ok=True)
    os.makedirs("/run/openvswitch", exist_ok=True)
    box = Sandbox()
    try:
        yield box
    finally:
        box.close()

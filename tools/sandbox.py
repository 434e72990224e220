#!/usr/bin/env python3
"""Run a command (the test suite) on a private host: its own network, mount and PID namespaces.

    tools/sandbox.py .venv/bin/pytest tests/ovs -q

The suite creates namespaces, bridges, OVS instances and guests; on a lived-in host the system
Open vSwitch runs with userspace bridges and other vnet labs are up. A private ovs-vswitchd in
the host's network namespace fights the system one over the `ovs-netdev` device, and a test of
`destroy --all` would see the host's labs. So the suite runs where nothing of the host exists:

- network namespace: no host device is visible; private OVS instances own `ovs-netdev` here;
- mount namespace (private propagation): tmpfs on /run/netns (named namespaces), /run/vnet
  (locks, guests' run directories), /run/openvswitch and /etc/openvswitch (the system OVSDB
  socket and database), and a sysfs mounted in the new network namespace (/sys/class/net);
- PID namespace: /proc lists only the suite's processes (vnet finds guests by scanning /proc),
  and everything the suite started is killed with it when it ends, even after a crash.

This script is PID 1 of the new PID namespace: it reaps orphans (daemonized QEMU and OVS
processes are reparented to it) and exits with the command's status. Nothing of the host is
changed except the empty mount points it may create.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

INNER = "VNET_TEST_SANDBOX"
TMPFS = ("/run/netns", "/run/vnet", "/run/openvswitch", "/etc/openvswitch", "/var/log/openvswitch")
UNSHARE = ("unshare", "--net", "--mount", "--pid", "--fork", "--mount-proc", "--propagation", "private")


def _mount(fstype: str, target: str, options: str = "") -> None:
    os.makedirs(target, exist_ok=True)
    subprocess.run(["mount", "-t", fstype, *(["-o", options] if options else []), "vnet-sandbox", target],
                   check=True)


def _prepare() -> None:
    for target in TMPFS:
        _mount("tmpfs", target, "mode=0755")  # as the host's: not world-writable
    _mount("sysfs", "/sys")
    # sysfs over /sys hides the cgroup tree; mount it again for programs that look (best effort)
    subprocess.run(["mount", "-t", "cgroup2", "cgroup2", "/sys/fs/cgroup"], check=False,
                   stderr=subprocess.DEVNULL)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def _init(argv: list[str]) -> int:
    """PID 1: start the command, forward SIGINT/SIGTERM to it, reap everything, return its status."""
    _prepare()
    child = subprocess.Popen(argv)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda number, _frame: child.send_signal(number))
    status = 0
    while True:
        try:
            pid, raw = os.wait()
        except ChildProcessError:
            return status
        except InterruptedError:
            continue
        if pid == child.pid:
            status = os.waitstatus_to_exitcode(raw)
            child.returncode = status  # Popen must not wait for it again
            return 128 - status if status < 0 else status


def main() -> int:
    if len(sys.argv) < 2:
        sys.stderr.write(__doc__ or "")
        return 64
    if os.environ.get(INNER) == "1" and os.getpid() == 1:
        return _init(sys.argv[1:])
    if os.environ.get(INNER) == "1":
        os.execvp(sys.argv[1], sys.argv[1:])  # already inside a sandbox
    if os.geteuid() != 0:
        sys.stderr.write("tools/sandbox.py: namespaces need root; running the command as it is\n")
        os.execvp(sys.argv[1], sys.argv[1:])
    os.environ[INNER] = "1"
    os.execvp(UNSHARE[0], [*UNSHARE, "--", sys.executable, os.path.abspath(__file__), *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())

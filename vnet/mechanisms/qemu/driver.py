"""Apply Vm changes: start QEMU guests (all of a wave in parallel), stop them, restart them.

A create starts the guest and, for images with vnet's agent (tiny), waits until the agent
answers: apply returns with the guests' networks configured, ready to verify. The wait is a
safe point of an interrupt: it is abandoned, the guest left running and the create counted as
done, so that the rollback the interrupt asks for stops the guest like any other it made. A
delete asks QEMU to quit over QMP and kills it by pid if it does not. `resolve` (set when the lab uses
SR-IOV) turns the symbolic `host=sriov:<pf>/vf<n>` of a passed-through VF into its PCI address
just before QEMU starts.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from vnet.errors import VnetError
from vnet.interrupt import Interrupt
from vnet.mechanisms.qemu import process as qemu
from vnet.mechanisms.qemu.resources import Vm
from vnet.progress import Boot, Progress, VmBoot, ignore
from vnet.resources import Action, Change, Failure
from vnet.vm import tiny
from vnet.vm.agent import GuestAgent
from vnet.vm.cloudinit import write_seed


def serial_tail(vm: Vm, lines: int = 5) -> str:
    try:
        text = qemu.vm_paths(vm.lab, vm.node).serial.read_text(errors="replace")
    except OSError:
        return ""
    tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return (" (serial console: " + " | ".join(tail) + ")") if tail else ""


def wait_ready(vm: Vm, timeout: float = qemu.BOOT_TIMEOUT,
               cancelled: Callable[[], bool] | None = None) -> Boot:
    """READY when the guest agent answers within `timeout`, ABANDONED when `cancelled` first;
    raises VnetError (why not) otherwise."""
    with GuestAgent(qemu.vm_paths(vm.lab, vm.node).agent) as agent:
        return Boot.READY if agent.wait_ready_unless(timeout, cancelled) else Boot.ABANDONED


def seed_path(vm: Vm) -> str:
    """Where the Vm's command line expects its cloud-init seed volume."""
    drives = [v for o, v in itertools.pairwise(vm.argv) if o == "-drive" and "id=vnet-seed" in v]
    return drives[0].split(",", 1)[0].removeprefix("file=")


def stop_all(vm: Vm) -> None:
    """Stop every QEMU process of the guest: an apply killed while QEMU daemonizes leaves two
    (parent and child, one command line), and the one left running would keep the TAP busy.
    Scanned again after each round: a parent stopped while it forks leaves a child the first
    scan did not see (seen in CI: the next QEMU failed with EBUSY on the TAP)."""
    for _ in range(qemu.STOP_ROUNDS):
        found = [running for running in qemu.running_vms(vm.lab) if running.node == vm.node]
        if not found:
            return
        for running in found:
            qemu.stop(running)


def _ensure_tiny(vms: list[Vm]) -> str | None:
    """Build the tiny image (into its cache) when a guest's command line names it and it is not
    there yet: compile only names it. Why it could not be built, else None."""
    wanted = [vm for vm in vms if vm.ready_wait]
    paths = {arg for vm in wanted for opt, arg in itertools.pairwise(vm.argv)
             if opt in ("-kernel", "-initrd")}
    if not paths or all(os.path.exists(path) for path in paths):
        return None
    try:
        tiny.ensure_tiny()
    except VnetError as error:
        return f"the tiny image could not be built: {error.message}"
    return None


@dataclass
class VmDriver:
    lab: str
    resolve: Callable[[tuple[str, ...]], tuple[str, ...]] | None = None
    progress: Progress = ignore
    interrupt: Interrupt = field(default_factory=Interrupt)

    def execute(self, changes: Sequence[Change]) -> list[Failure | None]:
        return [Failure(text) if text else None for text in self._execute(changes)]

    def _execute(self, changes: Sequence[Change]) -> list[str | None]:
        results: dict[int, str | None] = {}
        stops = [(k, c) for k, c in enumerate(changes) if c.action is not Action.CREATE]
        starts = [(k, c) for k, c in enumerate(changes) if c.action is not Action.DELETE]
        with ThreadPoolExecutor(max_workers=max(1, len(changes))) as pool:
            for (k, _), error in zip(stops, pool.map(self._stop, [c for _, c in stops]), strict=True):
                results[k] = error
            todo = [(k, c) for k, c in starts if results.get(k) is None]
            for (k, _), error in zip(todo, self._start([c for _, c in todo], pool), strict=True):
                results[k] = error
        return [results.get(k) for k in range(len(changes))]

    def _argvs(self, vms: list[Vm]) -> tuple[list[tuple[str, ...] | None], list[str | None]]:
        """Each guest's command line as started (resolved), or why it cannot be."""
        argvs: list[tuple[str, ...] | None] = []
        errors: list[str | None] = []
        for vm in vms:
            try:
                argvs.append(self.resolve(vm.argv) if self.resolve is not None else vm.argv)
                errors.append(None)
            except VnetError as error:
                argvs.append(None)
                errors.append(error.message)
        return argvs, errors

    def _stop(self, change: Change) -> str | None:
        vm = change.observed
        assert isinstance(vm, Vm)
        stop_all(vm)
        qemu.remove_run_dir(vm.lab, vm.node)
        return None

    def _start(self, changes: list[Change], pool: ThreadPoolExecutor) -> list[str | None]:
        vms = [c.desired for c in changes if isinstance(c.desired, Vm)]
        unbuilt = _ensure_tiny(vms)
        if unbuilt is not None:
            return [unbuilt] * len(vms)
        for vm in vms:
            qemu.prepare_run_dir(qemu.vm_paths(vm.lab, vm.node))
            if vm.seed:
                write_seed(dict(vm.seed), seed_path(vm))
        argvs, unresolved = self._argvs(vms)
        since = time.monotonic()
        started = iter(qemu.start_all([argv for argv in argvs if argv is not None]))
        errors = [error if error is not None else next(started) for error in unresolved]
        waits = [vm if vm.ready_wait and error is None else None
                 for vm, error in zip(vms, errors, strict=True)]
        late = list(pool.map(lambda vm: self._boot(vm, since) if vm is not None else None, waits))
        for vm, error in zip(vms, late, strict=True):
            if error is not None:  # failed: do not leave a half-up guest behind
                stop_all(vm)
        return [error or wait for error, wait in zip(errors, late, strict=True)]

    def _boot(self, vm: Vm, since: float) -> str | None:
        """Wait for the guest's agent, reporting its boot; None when it is up (or the wait was
        abandoned: see the module docstring), else why not."""
        self.progress(VmBoot(vm.node, Boot.BOOTING, time.monotonic() - since))
        try:
            state = wait_ready(vm, cancelled=lambda: self.interrupt.stop)
        except VnetError as error:
            self.progress(VmBoot(vm.node, Boot.FAILED, time.monotonic() - since))
            return f"the guest did not come up: {error.message}{serial_tail(vm)}"
        self.progress(VmBoot(vm.node, state, time.monotonic() - since))
        return None

"""kill -9 of `vnet destroy` at each step and at random moments: afterwards another destroy
leaves nothing the lab owns, and (from a second crash at the same step) an apply converges,
verify passes and destroy leaves nothing.

The hook VNET_TEST_FAULT=kill-destroy:K (vnet/pipeline/execute.py, kill_points) kills destroy at
its K-th wave boundary: destroy is a plan of deletes (vnet/pipeline/destroy.py), and 0 is before
its first wave (nothing removed yet), then one after each wave but the last, and one when
nothing of the lab is left, before the run directory is removed (a lab with more than
SYNC_BRIDGES Linux bridges has retired them by then: renamed for the background reaper, which
starts when the destroy is done; a re-observation that still finds something adds its plan's
boundaries). The steps are counted, not named: K runs up from 0 until a destroy completes, so a
step added later is covered too; it must get past every boundary of the lab's destroy plan. The
moment inside a wave when the guests have stopped and the OVS rows are not yet deleted is hit
by a real SIGKILL sent the moment the lab's QEMU process has exited.

CI: every K on the lab without the guest (rellib.CRASH_LAB with a `kind: tap` node) and on a
chain of 10 Linux bridges (retired), the QEMU-exit SIGKILL with the guest, and 2 random
SIGKILLs. Extended: every K with the guest and 10 random SIGKILLs with it (each costs a boot).
"""

from __future__ import annotations

import itertools
import random
import signal
from collections.abc import Callable

import pytest

from vnet import api
from vnet.mechanisms.kernel.teardown import SYNC_BRIDGES
from vnet.mechanisms.qemu import process as qemu
from vnet.pipeline import stages
from vnet.pipeline.plan import make_plan
from vnet.pipeline.session import Session
from vnet.resources import DesiredState, Plan

from .rellib import (
    LabFiles,
    PrivateOvs,
    RelLabs,
    after_lock,
    case,
    cli,
    crash_lab,
    destroy_clean,
    extended,
    kill_when,
    qemu_gone,
    recover,
    work_seconds,
)

pytestmark = pytest.mark.usefixtures("as_root")
SEED = random.randrange(1, 10**6)


def _killed_destroy(ovs: PrivateOvs, files: LabFiles, k: int) -> bool:
    """Destroy with kill-destroy:K; False when it completed (K is past the last step)."""
    process = cli("destroy", "--lab", files.name, remote=ovs.remote, fault=f"kill-destroy:{k}")
    out, err = process.communicate(timeout=180)
    if process.returncode == 0:
        return False
    assert process.returncode == -signal.SIGKILL, (k, out, err)
    return True


def _after_crash(ovs: PrivateOvs, files: LabFiles, what: str, crash: Callable[[], bool]) -> bool:
    """Two crashes at one point: destroy alone cleans up after the first; apply converges, verify
    passes and destroy cleans up after the second. False when the destroy was not killed."""
    lab = files.load()
    api.apply(lab, ovsdb=ovs.remote)
    if not crash():
        return False
    with case("fault", f"{what}, then destroy"):
        destroy_clean(ovs, files, what)
    api.apply(lab, ovsdb=ovs.remote)
    if not crash():  # a random moment may fall after the end this time
        destroy_clean(ovs, files, what)
        return True
    with case("fault", f"{what}, then apply + verify + destroy"):
        recover(ovs, lab, what)
        destroy_clean(ovs, files, what)
    return True


def _at(ovs: PrivateOvs, files: LabFiles, k: int) -> Callable[[], bool]:
    return lambda: _killed_destroy(ovs, files, k)


def _destroy_plan(ovs: PrivateOvs, files: LabFiles) -> Plan:
    """The plan destroy would run now (as destroy_lab makes it: the lab observed for teardown)."""
    with Session(ovs.remote) as session:
        session.teardown = True
        observed = stages.observed_state(files.name, None, session)
        return make_plan(DesiredState(files.name, {}), observed, teardown=True)


def _each_boundary(ovs: PrivateOvs, files: LabFiles, suffix: str) -> Plan:
    """_after_crash at kill-destroy:0, 1, ... until a destroy completes (past the last step);
    returns the destroy plan of the applied lab."""
    api.apply(files.load(), ovsdb=ovs.remote)
    plan = _destroy_plan(ovs, files)
    boundaries = len(plan.waves) + 1  # before each wave, and before the run directory goes
    for k in itertools.count():
        if not _after_crash(ovs, files, f"destroy kill-destroy:{k}{suffix}", _at(ovs, files, k)):
            assert k >= boundaries, (
                f"destroy has only {k} step boundaries; its plan has {len(plan.waves)} waves")
            destroy_clean(ovs, files, f"kill-destroy:{k} (past the last step)")
            return plan
    raise AssertionError("unreachable")


def _every_step(labs: RelLabs, ovs: PrivateOvs, vm: bool) -> None:
    files, _ = crash_lab(labs, "cd", vm)
    _each_boundary(ovs, files, " (lab with a guest)" if vm else "")


def test_kill_at_every_destroy_step(labs: RelLabs, ovs: PrivateOvs) -> None:
    _every_step(labs, ovs, False)


def _bridges_lab(count: int) -> str:
    """A chain of `count` Linux bridges with a namespace at each end."""
    names = [f"$lab-{k}" for k in range(count)]
    return "\n".join(["name: $lab", "switches:", *(f"  {n}: {{type: linux}}" for n in names),
                      "nodes: {h1: {}, h2: {}}", "links:",
                      *(f"  - {{endpoints: [{a}, {b}]}}" for a, b in itertools.pairwise(names)),
                      f"  - {{endpoints: [h1:eth0, {names[0]}], ip: 198.18.27.1/24}}",
                      f"  - {{endpoints: [h2:eth0, {names[-1]}], ip: 198.18.27.2/24}}", ""])


def test_kill_at_every_destroy_step_with_retired_bridges(labs: RelLabs, ovs: PrivateOvs) -> None:
    """More than SYNC_BRIDGES bridges: destroy retires them (renamed `vd…`, alias vnet-reap:) for
    a background reaper; killed after retiring and before the reaper starts, they are the next
    destroy's to remove."""
    assert SYNC_BRIDGES < 10
    files = labs.new("cy")
    files.write(_bridges_lab(10))
    plan = _each_boundary(ovs, files, " (10 bridges to retire)")
    assert [c.key[0] for c in plan.changes].count("bridge") == 10, plan.to_json()


@extended
def test_kill_at_every_destroy_step_with_the_guest(labs: RelLabs, ovs: PrivateOvs) -> None:
    _every_step(labs, ovs, True)


def _when_qemu_exits(ovs: PrivateOvs, files: LabFiles) -> bool:
    [vm] = qemu.running_vms(files.name)
    process = cli("destroy", "--lab", files.name, remote=ovs.remote)
    return kill_when(process, qemu_gone(vm.pid))


def test_sigkill_when_the_guest_has_stopped(labs: RelLabs, ovs: PrivateOvs) -> None:
    """Killed between stopping the guests and deleting the OVS rows."""
    files, _ = crash_lab(labs, "cg", True)
    assert _after_crash(ovs, files, "destroy SIGKILL once QEMU exited",
                        lambda: _when_qemu_exits(ovs, files))


def _random_kills(labs: RelLabs, ovs: PrivateOvs, vm: bool, count: int) -> None:
    """SIGKILL at a moment drawn uniformly from the destroy's work (once it holds the lab's lock)."""
    files, lab = crash_lab(labs, "cx", vm)
    api.apply(lab, ovsdb=ovs.remote)
    seconds = work_seconds(cli("destroy", "--lab", files.name, remote=ovs.remote), files.name)
    rng = random.Random(SEED + vm)
    for _ in range(count):
        delay = rng.uniform(0.0, seconds)
        what = (f"destroy SIGKILL {delay:.2f} s into ~{seconds:.1f} s of work"
                f"{' (lab with a guest)' if vm else ''} (seed {SEED})")

        def crash(delay: float = delay) -> bool:
            process = cli("destroy", "--lab", files.name, remote=ovs.remote)
            return kill_when(process, after_lock(process, files.name, delay))
        if not _after_crash(ovs, files, what, crash):  # destroy finished first: no fault
            destroy_clean(ovs, files, what)


def test_sigkill_destroy_at_random_moments(labs: RelLabs, ovs: PrivateOvs) -> None:
    _random_kills(labs, ovs, False, 2)


@extended
def test_sigkill_destroy_at_random_moments_with_the_guest(labs: RelLabs, ovs: PrivateOvs) -> None:
    _random_kills(labs, ovs, True, 10)

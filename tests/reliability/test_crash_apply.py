"""kill -9 of `vnet apply` at every step and at random moments: after each crash one apply
converges (its plan is empty afterwards), verify passes, and destroy leaves nothing the lab owns
(devices, namespaces, OVS rows, QEMU, run directory, lock file).

The lab (rellib.CRASH_LAB): 33 kernel and OVS changes in four waves, then a tiny guest in a fifth
(vnet starts guests last). The hook VNET_TEST_FAULT=kill:K (vnet/pipeline/execute.py) kills the
apply just before change K, after the earlier changes of K's wave went in (so K inside the OVS
wave commits part of the OVS rows); a real SIGKILL is sent to a `vnet apply` process.

What CI runs, and why: every K of the lab whose guest is a `kind: tap` node (the same 33 kernel
and OVS changes, the guest's TAP included; ~3 s per K), and with the guest only the steps that
involve it: kill:33 (everything but the guest done), a SIGKILL as soon as QEMU runs (the apply
waits for the guest agent), and random SIGKILLs (3 without the guest, 1 with). Each K with the
guest pays a boot (~10 s under TCG, 34 K: ~6 min): the extended variant runs every K with the
guest, and 20 random SIGKILLs with it.
"""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Callable

import pytest

from vnet import api
from vnet.resources import Action

from .rellib import (
    LabFiles,
    PrivateOvs,
    RelLabs,
    after_lock,
    apply_in_child,
    case,
    cli,
    crash_lab,
    destroy_clean,
    extended,
    kill_when,
    recover,
    wait_for_qemu,
    work_seconds,
)

pytestmark = pytest.mark.usefixtures("as_root")
SEED = int(os.environ.get("VNET_RELIABILITY_SEED", "0")) or random.randrange(1, 10**6)


def _survives(ovs: PrivateOvs, files: LabFiles, what: str, crash: Callable[[], bool]) -> None:
    """Crash, then the recovery every fault must allow; recorded as one fault for the report."""
    with case("fault", what):
        assert crash(), f"{what}: the apply was not killed"
        recover(ovs, files.load(), what)
        destroy_clean(ovs, files, what)


def _kill_at(ovs: PrivateOvs, files: LabFiles, k: int) -> Callable[[], bool]:
    path = str(files.files[-1])
    return lambda: apply_in_child(path, ovs.remote, f"kill:{k}") == -signal.SIGKILL


def _every_step(labs: RelLabs, ovs: PrivateOvs, vm: bool, steps: Callable[[int], range]) -> int:
    files, lab = crash_lab(labs, "ck", vm)
    changes = api.plan(lab, ovsdb=ovs.remote).changes
    assert len(changes) == 33 + vm and all(c.action is Action.CREATE for c in changes)
    assert (changes[-1].key[0] == "vm") is vm
    for k in steps(len(changes)):
        what = f"apply kill:{k} of {len(changes)}, {changes[k].key[0]} {changes[k].key[1]}"
        _survives(ovs, files, what + (" (lab with a guest)" if vm else ""), _kill_at(ovs, files, k))
    return len(changes)


def test_kill_at_every_kernel_and_ovs_step(labs: RelLabs, ovs: PrivateOvs) -> None:
    _every_step(labs, ovs, False, range)


def test_kill_just_before_the_guest_starts(labs: RelLabs, ovs: PrivateOvs) -> None:
    _every_step(labs, ovs, True, lambda count: range(count - 1, count))


@extended
def test_kill_at_every_step_with_the_guest(labs: RelLabs, ovs: PrivateOvs) -> None:
    _every_step(labs, ovs, True, range)


def test_sigkill_while_the_guest_boots(labs: RelLabs, ovs: PrivateOvs) -> None:
    """QEMU runs, the apply waits for the guest agent: the next apply finds the guest running."""
    files, _ = crash_lab(labs, "cq", True)
    process = cli("apply", str(files.files[-1]), remote=ovs.remote)
    _survives(ovs, files, "apply SIGKILL once QEMU runs (guest booting)",
              lambda: kill_when(process, wait_for_qemu(files.name, "g1")))


def _apply_seconds(ovs: PrivateOvs, files: LabFiles) -> float:
    """How long one `vnet apply` of the lab works here (start-up excluded); the lab is destroyed."""
    seconds = work_seconds(cli("apply", str(files.files[-1]), remote=ovs.remote), files.name)
    destroy_clean(ovs, files, "the timing run")
    return seconds


def _random_kills(labs: RelLabs, ovs: PrivateOvs, vm: bool, count: int) -> None:
    """SIGKILL at a moment drawn uniformly from the apply's work (once it holds the lab's lock)."""
    files, _ = crash_lab(labs, "cr", vm)
    seconds = _apply_seconds(ovs, files)
    rng = random.Random(SEED + vm)
    for _ in range(count):
        delay = rng.uniform(0.0, seconds)
        process = cli("apply", str(files.files[-1]), remote=ovs.remote)
        what = (f"apply SIGKILL {delay:.2f} s into ~{seconds:.1f} s of work"
                f"{' (lab with a guest)' if vm else ''} (seed {SEED})")
        if kill_when(process, after_lock(process, files.name, delay)):
            _survives(ovs, files, what, lambda: True)
        else:  # it finished first: no fault, but the lab is up; start the next one from scratch
            destroy_clean(ovs, files, what + ": finished before the kill")


def test_sigkill_at_random_moments(labs: RelLabs, ovs: PrivateOvs) -> None:
    _random_kills(labs, ovs, False, 3)


def test_sigkill_at_a_random_moment_with_the_guest(labs: RelLabs, ovs: PrivateOvs) -> None:
    _random_kills(labs, ovs, True, 1)


@extended
def test_sigkill_at_random_moments_with_the_guest(labs: RelLabs, ovs: PrivateOvs) -> None:
    _random_kills(labs, ovs, True, 20)

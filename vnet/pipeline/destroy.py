"""destroy: the plan from what the host has of a lab to nothing, run by the same executor.

The plan orders the deletes by dependency and each kind's rank (guests first: they hold their
TAPs and VFs; OVS ports before their devices; VF netdevs leave the namespaces before those go),
and leaves out what goes with its container (a namespace's devices, addresses and routes).
The kernel driver deletes many devices the cheap ways (vnet/mechanisms/kernel/teardown.py).
Namespaces are freed by the kernel asynchronously, so destroy observes again until nothing of
the lab is left; a failure does not stop the rest, and is reported afterwards.
"""

from __future__ import annotations

import collections
import shutil
import time
from dataclasses import dataclass, field

from vnet.errors import UnavailableError, VnetError
from vnet.mechanisms.kernel.resources import Netns
from vnet.mechanisms.ovs.resources import OvsBridge
from vnet.pipeline.execute import kill_points, teardown_plan
from vnet.pipeline.lock import lab_dir
from vnet.pipeline.plan import make_plan
from vnet.pipeline.session import Session
from vnet.pipeline.stages import Drivers, observed_state
from vnet.resources import DesiredState, ResourceKey

SETTLE_SECONDS = 10.0  # how long destroy waits for the kernel to free what it deleted
HOST_DEVICE_KINDS = frozenset({"bridge", "tap", "veth", "stray"})


@dataclass(frozen=True)
class DestroyReport:
    lab: str
    seconds: float
    removed: dict[str, int] = field(default_factory=dict)  # deleted objects by kind

    @property
    def namespaces(self) -> int:
        return self.removed.get(Netns.kind, 0)

    @property
    def devices(self) -> int:
        return sum(n for kind, n in self.removed.items() if kind in HOST_DEVICE_KINDS)

    @property
    def ovs_bridges(self) -> int:
        return self.removed.get(OvsBridge.kind, 0)


def destroy_lab(lab: str, session: Session) -> DestroyReport:
    """Remove everything the lab owns on this host; raises when something could not be."""
    started = time.monotonic()
    boundary = kill_points()
    removed: collections.Counter[str] = collections.Counter()
    counted: set[ResourceKey] = set()
    session.teardown = True
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        observed = observed_state(lab, None, session)
        if not observed.resources:
            break
        plan = make_plan(DesiredState(lab, {}), observed, teardown=True)
        problems = teardown_plan(plan, Drivers(lab, session, None), boundary)
        if problems:
            raise UnavailableError(f"lab {lab}: could not remove: " + "; ".join(problems),
                                   "fix the cause and run destroy again: it removes what is left")
        removed.update(c.key[0] for c in plan.changes if c.key not in counted)
        counted.update(c.key for c in plan.changes)
        if time.monotonic() > deadline:
            names = ", ".join(sorted(r.describe() for r in observed.resources.values())[:5])
            raise VnetError(f"lab {lab}: still present after destroy: {names}",
                            "run destroy again; if it persists, report it")
        time.sleep(0.02)
    boundary()
    shutil.rmtree(lab_dir(lab), ignore_errors=True)
    return DestroyReport(lab, time.monotonic() - started, dict(removed))

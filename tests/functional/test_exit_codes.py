"""Exit codes of the verbs that name nodes, pairs and labs, run as the real `vnet` command.

A mistake in the file or the arguments (an unknown node, interface or lab name, a node of the
wrong kind, a pair the file gives nothing to trace) is 65 whatever the host holds; what the host
lacks (the lab not applied, a node's namespace gone, a VM not running) is 69. No such input is
ever 70, which says "a bug in vnet". The same mistake gets the same code in every command, and
the message names the cause with a hint. Each row sets up the host as it says and runs one
command; `test_one_code_per_mistake` proves the table itself keeps codes per mistake.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from vnet.errors import EX_DATAERR, EX_OK, EX_UNAVAILABLE, EX_VERIFY_FAILED

from .conftest import Labs
from .hostlib import run, vnet

pytestmark = pytest.mark.root

# h1 reaches h2 only through the router r1 (a routed pair); h6 has IPv6 only, so h1 and h6 have
# no address family in common; the tap node's guest has no address in the file.
LAB = """
name: $lab
switches:
  $b1: {type: linux}
  $b2: {type: linux}
nodes:
  h1: {kind: netns, routes: [{to: default, via: 198.18.80.1}]}
  h2: {kind: netns, routes: [{to: default, via: 198.18.81.1}]}
  h6: {kind: netns}
  r1: {kind: netns, forwarding: true}
  t1: {kind: tap}
links:
  - {endpoints: [h1:eth0, $b1], ip: 198.18.80.2/24}
  - {endpoints: [r1:eth0, $b1], ip: 198.18.80.1/24}
  - {endpoints: [r1:eth1, $b2], ip: 198.18.81.1/24}
  - {endpoints: [h2:eth0, $b2], ip: 198.18.81.2/24}
  - {endpoints: [h6:eth0, $b2], ip: "fd00:81::6/64"}
  - {endpoints: [t1:eth0, $b1]}
"""

# Only ever written, never applied: applying it would boot a guest.
VM_LAB = """
name: $lab
switches:
  $b1: {type: linux}
nodes:
  v1: {kind: vm}
links:
  - {endpoints: [v1:eth0, $b1], ip: 198.18.82.5/24}
"""

UNAPPLIED, APPLIED, H1_GONE = "unapplied", "applied", "applied, then h1's namespace removed by hand"


@dataclass(frozen=True)
class Mistake:
    """One kind of wrong input, and the single exit code every command gives it."""

    what: str
    code: int


UNKNOWN_NODE = Mistake("unknown node", EX_DATAERR)
SWITCH_AS_NODE = Mistake("a switch named as a node", EX_DATAERR)
WRONG_KIND = Mistake("a node of the wrong kind", EX_DATAERR)
BAD_INTERFACE = Mistake("an interface the node does not have", EX_DATAERR)
NOTHING_TO_TRACE = Mistake("a pair with no address family in common", EX_DATAERR)
BAD_LAB_NAME = Mistake("not a lab name", EX_DATAERR)
NOT_APPLIED = Mistake("the lab is not on the host", EX_UNAVAILABLE)
NODE_GONE = Mistake("the node is not on the host", EX_UNAVAILABLE)
# Not mistakes: what a command answers for an unapplied lab or a command in a node.
ANSWER = Mistake("an answer, not an error", EX_OK)
DRIFT = Mistake("the host differs from the file (trace: not delivered)", EX_VERIFY_FAILED)


@dataclass(frozen=True)
class Row:
    mistake: Mistake
    state: str
    argv: tuple[str, ...]  # `{file}`, `{vm_file}`, `{lab}` are filled in
    says: str  # stderr names the cause (for EX_OK/1 rows: stdout holds it)
    code: int | None = None  # only for the commands' own statuses (exec's 126/127)

    @property
    def expected(self) -> int:
        return self.mistake.code if self.code is None else self.code


ROWS = [
    # an unknown node, and a switch where a node belongs
    Row(UNKNOWN_NODE, UNAPPLIED, ("exec", "{file}", "nosuch", "--", "true"), "`nosuch` is not a node of lab"),
    Row(UNKNOWN_NODE, APPLIED, ("exec", "{file}", "nosuch", "--", "true"), "`nosuch` is not a node of lab"),
    Row(UNKNOWN_NODE, UNAPPLIED, ("trace", "{file}", "nosuch", "h2"), "`nosuch` is not a node of lab"),
    Row(UNKNOWN_NODE, APPLIED, ("trace", "{file}", "h1", "nosuch"), "`nosuch` is not a node of lab"),
    Row(UNKNOWN_NODE, UNAPPLIED, ("attach-info", "{file}", "nosuch"), "`nosuch` is not a node of lab"),
    Row(SWITCH_AS_NODE, UNAPPLIED, ("exec", "{file}", "{lab}b1", "--", "true"), "is a switch of lab"),
    Row(SWITCH_AS_NODE, APPLIED, ("trace", "{file}", "h1", "{lab}b2"), "is a switch of lab"),
    # a node of the wrong kind for the command
    Row(WRONG_KIND, UNAPPLIED, ("exec", "{file}", "t1", "--", "true"), "`t1` is a tap node"),
    Row(WRONG_KIND, APPLIED, ("exec", "{file}", "t1", "--", "true"), "`t1` is a tap node"),
    Row(WRONG_KIND, UNAPPLIED, ("attach-info", "{file}", "h1"), "`h1` is a netns node"),
    # interfaces: TARGET may be node:iface, SOURCE is a node
    Row(BAD_INTERFACE, UNAPPLIED, ("trace", "{file}", "h1", "h2:eth9"), "`h2` has no interface `eth9`"),
    Row(BAD_INTERFACE, APPLIED, ("trace", "{file}", "h1", "h2:eth9"), "`h2` has no interface `eth9`"),
    Row(BAD_INTERFACE, APPLIED, ("trace", "{file}", "h1", "h2:bad/name"), "has no interface `bad/name`"),
    Row(BAD_INTERFACE, APPLIED, ("trace", "{file}", "h1", "h2:"), "`h2:` names no interface"),
    Row(BAD_INTERFACE, APPLIED, ("trace", "{file}", "h1:eth0", "h2"), "names an interface"),
    # pairs the file gives nothing to trace: routed across r1 but of different families, a tap
    Row(NOTHING_TO_TRACE, UNAPPLIED, ("trace", "{file}", "h1", "h6"), "nothing to trace"),
    Row(NOTHING_TO_TRACE, APPLIED, ("trace", "{file}", "h1", "h6"), "nothing to trace"),
    Row(NOTHING_TO_TRACE, APPLIED, ("trace", "{file}", "h6", "h2:eth0"), "nothing to trace"),
    Row(NOTHING_TO_TRACE, APPLIED, ("trace", "{file}", "h1", "t1"), "the file gives t1 no address"),
    # lab names that are no lab's (destroy and status check them alike)
    Row(BAD_LAB_NAME, UNAPPLIED, ("status", "--lab", "Bad_Name"), "`Bad_Name` is not a lab name"),
    Row(BAD_LAB_NAME, UNAPPLIED, ("destroy", "--lab", "Bad_Name"), "`Bad_Name` is not a lab name"),
    Row(BAD_LAB_NAME, UNAPPLIED, ("status", "--lab", "../x"), "`../x` is not a lab name"),
    Row(BAD_LAB_NAME, UNAPPLIED, ("destroy", "--lab", ""), "`` is not a lab name"),
    Row(BAD_LAB_NAME, UNAPPLIED, ("status", "--lab", ""), "`` is not a lab name"),
    # what the host lacks
    Row(NOT_APPLIED, UNAPPLIED, ("exec", "{file}", "h1", "--", "true"), "node h1 of lab {lab} is not on"),
    Row(NOT_APPLIED, UNAPPLIED, ("exec", "{vm_file}", "v1", "--", "true"), "VM v1 of lab {lab} is not"),
    Row(NOT_APPLIED, UNAPPLIED, ("trace", "{file}", "h1", "h2"), "lab {lab} is not on this host"),
    Row(NOT_APPLIED, UNAPPLIED, ("verify", "{file}"), "lab {lab} is not on this host"),
    Row(NOT_APPLIED, UNAPPLIED, ("status", "--lab", "{lab}"), "no lab {lab} on this host"),
    Row(NODE_GONE, H1_GONE, ("exec", "{file}", "h1", "--", "true"), "node h1 of lab {lab} is not on"),
    # the command in a node is the node's business: a shell's codes, never 70
    Row(ANSWER, APPLIED, ("exec", "{file}", "h1", "--", "nosuch-command"), "command not found in node h1",
        code=127),
    Row(ANSWER, APPLIED, ("exec", "{file}", "h1", "--", "/etc/passwd"), "cannot run /etc/passwd", code=126),
    # answers: a routed pair traces; status FILE, plan and destroy (idempotent) of an unapplied lab
    # say so and succeed
    Row(ANSWER, APPLIED, ("trace", "{file}", "h1", "h2"), "delivered"),
    Row(ANSWER, APPLIED, ("trace", "{file}", "h2", "h1:eth0"), "(router 198.18.81.1)"),
    Row(ANSWER, UNAPPLIED, ("status", "{file}"), "changes"),
    Row(ANSWER, UNAPPLIED, ("plan", "{file}"), "to create"),
    Row(ANSWER, UNAPPLIED, ("destroy", "{file}"), "nothing of it is on this host"),
    Row(ANSWER, UNAPPLIED, ("attach-info", "{file}", "t1"), "lab {lab}, node t1"),
    # partly there is drift, not "not applied": trace and verify report it and exit 1
    Row(DRIFT, H1_GONE, ("trace", "{file}", "h1", "h2"), "not delivered"),
    Row(DRIFT, H1_GONE, ("verify", "{file}"), "the host differs from the topology"),
]


def _id(row: Row) -> str:
    return f"{row.argv[0]}-{row.mistake.what}-{row.state}".replace(" ", "_") + "-" + "_".join(row.argv[2:])


@pytest.mark.parametrize("row", ROWS, ids=[_id(r) for r in ROWS])
def test_exit_code(labs: Labs, row: Row) -> None:
    lab = labs.new("ec")
    vm_file = lab.write(VM_LAB, "vm.yaml")
    path = lab.write(LAB)  # written last: the lab's files[-1], what labs.cleanup destroys
    if row.state in (APPLIED, H1_GONE):
        applied = vnet("apply", str(path))
        assert applied.returncode == 0, applied.stderr
    if row.state == H1_GONE:
        run("ip", "netns", "delete", lab.namespace("h1"))
    values = {"file": str(path), "vm_file": str(vm_file), "lab": lab.name}
    argv = [arg.format(**values) for arg in row.argv]
    done = vnet(*argv)
    shown = f"vnet {' '.join(argv)}\nexit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    assert done.returncode == row.expected, shown
    assert "internal error" not in done.stderr, shown
    said = row.says.format(**values)
    if row.expected in (EX_OK, EX_VERIFY_FAILED):
        assert said in done.stdout, shown
    else:
        assert said in done.stderr, shown
        assert "hint: " in done.stderr, shown  # every error says what to do about it


def test_one_code_per_mistake() -> None:
    """The table cannot drift into giving one mistake two codes in different commands."""
    codes: dict[str, set[int]] = {}
    for row in ROWS:
        if row.mistake not in (ANSWER, DRIFT):
            codes.setdefault(row.mistake.what, set()).add(row.expected)
    assert all(len(found) == 1 for found in codes.values()), codes
    commands = {row.argv[0] for row in ROWS if row.mistake is UNKNOWN_NODE}
    assert commands == {"exec", "trace", "attach-info"}
    not_applied = {row.argv[0] for row in ROWS if row.mistake is NOT_APPLIED}
    assert not_applied == {"exec", "trace", "verify", "status"}


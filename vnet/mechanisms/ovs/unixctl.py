"""ovs-vswitchd's control socket (unixctl, what ovs-appctl speaks): flows and ofproto/trace.

- `flows(bridge)`: the bridge's OpenFlow flows (`bridge/dump-flows`), counters and durations
  removed, without vswitchd's own hidden ones (table 254, priorities above 65535): what vnet
  compares with what it expects on its bridges.
- `trace(bridge, flow)`: `ofproto/trace`, split into one section per bridge the frame crosses
  (patch ports continue the trace into the next bridge), each with the OpenFlow rules it matched
  and their actions, so that a drop is attributed to the bridge and rule that hold it.
- `datapath_ports()`: datapath port number -> port name (`dpif/show`), to name the output ports
  of "Datapath actions".

The socket is found next to the OVSDB socket (`ovs-vswitchd*.ctl` in its directory).
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass

from vnet.errors import UnavailableError

HIDDEN_TABLE = 254
MAX_VISIBLE_PRIORITY = 65535
_COUNTERS = re.compile(r"(?:duration|n_packets|n_bytes|idle_age|hard_age|idle_timeout)=[^,]*, ?")
_SECTION = re.compile(r'^bridge\("([^"]+)"\)$', re.MULTILINE)
_RULE = re.compile(r"^\s*(\d+)\. (?:(.*), )?priority (\d+)(?:, cookie \S+)?$")
_DPIF_PORT = re.compile(r"^\s+(\S+) (\d+)/(\d+|none):")


@dataclass(frozen=True)
class Rule:
    """An OpenFlow rule a traced frame matched, with what it did."""

    table: int
    match: str
    priority: int
    actions: tuple[str, ...]

    @property
    def drops(self) -> bool:
        return self.actions[:1] == ("drop",)

    def __str__(self) -> str:
        return f"table {self.table}, priority {self.priority}, {self.match or 'any frame'}: " + "; ".join(
            self.actions)


@dataclass(frozen=True)
class Section:
    bridge: str
    rules: tuple[Rule, ...]
    notes: tuple[str, ...]  # what NORMAL said (`-> forwarding to learned port`, `dropping`, ...)

    @property
    def dropped_by(self) -> Rule | None:
        return next((r for r in self.rules if r.drops), None)


@dataclass(frozen=True)
class TraceResult:
    sections: tuple[Section, ...]
    datapath_actions: str

    def section(self, bridge: str) -> Section | None:
        return next((s for s in self.sections if s.bridge == bridge), None)


def control_socket(ovsdb: str) -> str | None:
    run_dir = os.path.dirname(ovsdb.removeprefix("unix:"))
    candidates = glob.glob(os.path.join(run_dir, "ovs-vswitchd*.ctl"))
    return sorted(candidates)[0] if candidates else None


def call(ovsdb: str, command: str, *args: str) -> str:
    """One unixctl command to the ovs-vswitchd next to `ovsdb`; its reply."""
    path = control_socket(ovsdb)
    if path is None:
        raise UnavailableError(f"ovs-vswitchd's control socket was not found next to {ovsdb}",
                               "is ovs-vswitchd running for this OVSDB?")
    import ovs.unixctl.client  # noqa: PLC0415 (~20 ms of imports: only when vswitchd is asked)

    error, client = ovs.unixctl.client.UnixctlClient.create(path)
    if error:
        raise UnavailableError(f"cannot reach ovs-vswitchd at {path}: {os.strerror(error)}")
    try:
        error, failure, reply = client.transact(command, list(args))
    finally:
        client.close()
    if error or failure:
        raise UnavailableError(f"ovs-vswitchd {command}: {failure or os.strerror(error)}")
    return str(reply)


def normalize_flow(line: str) -> str | None:
    """A dump-flows line without counters; None for vswitchd's hidden flows."""
    text = _COUNTERS.sub("", line.strip())
    if not text:
        return None
    table = re.search(r"\btable_id=(\d+), ?", text)
    number = int(table.group(1)) if table else 0
    priority = re.search(r"\bpriority=(\d+)", text)
    if number == HIDDEN_TABLE or (priority and int(priority.group(1)) > MAX_VISIBLE_PRIORITY):
        return None
    text = text.replace(table.group(0), "") if table else text
    return (f"table={number}," if number else "") + text


def flows(ovsdb: str, bridge: str) -> tuple[str, ...]:
    found = (normalize_flow(line) for line in call(ovsdb, "bridge/dump-flows", bridge).splitlines())
    return tuple(sorted(f for f in found if f))


def parse_trace(text: str) -> TraceResult:
    parts = _SECTION.split(text)
    sections = []
    for bridge, body in zip(parts[1::2], parts[2::2], strict=True):
        rules: list[Rule] = []
        notes: list[str] = []
        for line in body.split("\n\n", 1)[0].splitlines():
            if not line.strip() or set(line.strip()) == {"-"}:
                continue
            found = _RULE.match(line)
            if found:
                rules.append(Rule(int(found.group(1)), found.group(2) or "", int(found.group(3)), ()))
            elif line.strip().startswith("->"):
                notes.append(line.strip().removeprefix("->").strip())
            elif rules:
                last = rules[-1]
                rules[-1] = Rule(last.table, last.match, last.priority, (*last.actions, line.strip()))
        sections.append(Section(bridge, tuple(rules), tuple(notes)))
    actions = next((ln.split(":", 1)[1].strip() for ln in text.splitlines()
                    if ln.startswith("Datapath actions:")), "")
    return TraceResult(tuple(sections), actions)


def trace(ovsdb: str, bridge: str, flow: str) -> TraceResult:
    return parse_trace(call(ovsdb, "ofproto/trace", bridge, flow))


def datapath_ports(ovsdb: str) -> dict[int, str]:
    ports = {}
    for line in call(ovsdb, "dpif/show").splitlines():
        found = _DPIF_PORT.match(line)
        if found and found.group(3) != "none":
            ports[int(found.group(3))] = found.group(1)
    return ports


def name_ports(actions: str, ports: dict[int, str]) -> str:
    """Datapath actions with each output port number replaced by the port's name."""
    return re.sub(r"(?<![\w=(:])(\d+)(?![\w.)])", lambda m: ports.get(int(m.group(1)), m.group(1)), actions)

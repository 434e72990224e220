"""The OVS driver: a wave's changes in one OVSDB transaction (ovsdbapp, check_error=True).

- All changes of a wave go into one ovsdbapp command inside one transaction. The command inserts
  and edits rows directly: ovsdbapp's per-command lookups (add_port scans the Port table each
  time) made 500 ports cost ~1 s, the direct edit a fraction of that.
- Traps avoided: maps (options, other_config, external_ids) are assigned whole, never merged,
  so stale keys go; ports are looked up by name on *this* bridge's rows, not "anywhere".
- When something is created the transaction bumps next_cfg and waits (bounded) until
  ovs-vswitchd has applied it, then reads each new Interface's `ofport` and `error`: a port
  vswitchd refused fails its change (and the apply rolls back). ovsdbapp itself only logs these.
- Flows someone added to a vnet bridge (drift) are removed over OpenFlow (openflow.py).
Every failure is a vnet Failure: no ovsdbapp or OVS exception leaves the driver.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ovsdbapp.backend.ovs_idl import command, transaction

from vnet.errors import UnavailableError
from vnet.mechanisms.ovs import openflow
from vnet.mechanisms.ovs.client import LAB_KEY, RESOURCE_KEY, OvsdbClient
from vnet.mechanisms.ovs.resources import OvsBridge, OvsPort
from vnet.resources import Action, Change, Failure, Resource


def external_ids(lab: str, resource: Resource) -> dict[str, str]:
    return {LAB_KEY: lab, RESOURCE_KEY: f"{resource.key[0]}:{resource.key[1]}"}


def optional(value: object | None) -> list[object]:
    """An OVSDB optional column (0 or 1 values) as the IDL wants it."""
    return [] if value is None else [value]


@dataclass
class _Rows:
    """Name-indexed rows for one transaction, updated as rows are inserted."""

    root: Any
    bridges: dict[str, Any]
    ports: dict[str, Any]
    bridge_of_port: dict[str, Any]
    new_interfaces: list[tuple[str, uuid.UUID]] = field(default_factory=list)


def _set_bridge(bridge: Any, want: OvsBridge, lab: str) -> None:
    bridge.datapath_type = want.datapath
    bridge.fail_mode = [want.fail_mode]
    bridge.stp_enable = want.stp
    bridge.rstp_enable = want.rstp
    bridge.other_config = dict(want.other_config)
    bridge.external_ids = external_ids(lab, want)


def _bridge_create(txn: Any, tables: Any, rows: _Rows, want: OvsBridge, lab: str) -> None:
    bridge = txn.insert(tables["Bridge"])
    bridge.name = want.name
    _set_bridge(bridge, want, lab)
    local = txn.insert(tables["Interface"])  # the bridge's own internal port, as ovs-vsctl adds it
    local.name, local.type, local.mtu_request = want.name, "internal", optional(want.mtu)
    port = txn.insert(tables["Port"])
    port.name, port.interfaces = want.name, [local]
    bridge.ports = [port]
    rows.root.addvalue("bridges", bridge)
    rows.bridges[want.name] = bridge


def _bridge_update(txn: Any, tables: Any, rows: _Rows, want: OvsBridge, lab: str) -> None:
    bridge = rows.bridges[want.name]
    _set_bridge(bridge, want, lab)
    for port in bridge.ports:
        if port is not None and port.name == want.name:
            port.interfaces[0].mtu_request = optional(want.mtu)


def _bridge_delete(txn: Any, tables: Any, rows: _Rows, have: OvsBridge, lab: str) -> None:
    bridge = rows.bridges.get(have.name)
    if bridge is not None:
        rows.root.delvalue("bridges", bridge)  # ports and interfaces go with it (not root rows)


def _set_port(port: Any, interface: Any, want: OvsPort, lab: str) -> None:
    port.tag = optional(want.tag)
    port.trunks = list(want.trunks)
    port.vlan_mode = optional(want.vlan_mode)
    port.external_ids = external_ids(lab, want)
    interface.type = want.type
    interface.options = dict(want.options)
    interface.ingress_policing_rate = want.policing_rate
    interface.ingress_policing_burst = want.policing_burst
    interface.external_ids = external_ids(lab, want)


def _port_create(txn: Any, tables: Any, rows: _Rows, want: OvsPort, lab: str) -> None:
    interface = txn.insert(tables["Interface"])
    interface.name = want.name
    port = txn.insert(tables["Port"])
    port.name, port.interfaces = want.name, [interface]
    _set_port(port, interface, want, lab)
    rows.bridges[want.bridge].addvalue("ports", port)
    rows.new_interfaces.append((want.name, interface.uuid))


def _port_update(txn: Any, tables: Any, rows: _Rows, want: OvsPort, lab: str) -> None:
    port = rows.ports[want.name]
    _set_port(port, port.interfaces[0], want, lab)


def _port_delete(txn: Any, tables: Any, rows: _Rows, have: OvsPort, lab: str) -> None:
    bridge = rows.bridge_of_port.get(have.name)
    if bridge is not None:
        bridge.delvalue("ports", rows.ports[have.name])


Handler = Callable[[Any, Any, _Rows, Any, str], None]
# (kind, action) -> how the change is written into the transaction's rows
HANDLERS: dict[tuple[str, Action], Handler] = {
    ("ovs-bridge", Action.CREATE): _bridge_create,
    ("ovs-bridge", Action.UPDATE): _bridge_update,
    ("ovs-bridge", Action.DELETE): _bridge_delete,
    ("ovs-port", Action.CREATE): _port_create,
    ("ovs-port", Action.UPDATE): _port_update,
    ("ovs-port", Action.DELETE): _port_delete,
}


class _ApplyCommand(command.BaseCommand):  # type: ignore[misc]
    """Every change of one wave, written into the transaction in one pass over the rows."""

    def __init__(self, api: Any, lab: str, changes: Sequence[Change]) -> None:
        super().__init__(api)
        self.lab = lab
        self.changes = changes
        self.rows: _Rows | None = None

    def run_idl(self, txn: Any) -> None:
        tables = self.api._tables
        bridges = {b.name: b for b in tables["Bridge"].rows.values()}
        # A replica limited to one lab (monitor conditions) holds no rows for other ports: None.
        bridge_of_port = {p.name: b for b in bridges.values() for p in b.ports if p is not None}
        ports = {p.name: p for p in tables["Port"].rows.values()}
        root = next(iter(tables["Open_vSwitch"].rows.values()))
        self.rows = _Rows(root, bridges, ports, bridge_of_port)
        for change in self.changes:
            HANDLERS[(change.key[0], change.action)](txn, tables, self.rows, change.resource, self.lab)


class _Transaction(transaction.Transaction):  # type: ignore[misc]
    """Commits; when interfaces were added, waits for vswitchd and collects the refused ones."""

    def __init__(self, client: OvsdbClient, wait: bool) -> None:
        super().__init__(client.api, client.connection, client.timeout, check_error=True, log_errors=False)
        self.wait = wait
        self.refused: dict[str, str] = {}  # port name -> why vswitchd refused it
        self.unconfirmed = ""  # committed, but vswitchd did not apply it in time: why

    def pre_commit(self, txn: Any) -> None:
        if self.wait:
            self.api._ovs.increment("next_cfg")

    def post_commit(self, txn: Any) -> None:
        super().post_commit(txn)
        if not self.wait:
            return
        next_cfg = txn.get_increment_new_value()
        # Give up before commit() stops waiting for the result (self.timeout after it queued us):
        # past that the caller would report a failure without knowing that the rows are in.
        deadline = time.monotonic() + 0.8 * self.timeout - (time.time() - self.start_time)
        while self.api._ovs.cur_cfg < next_cfg and time.monotonic() < deadline:
            self.api.idl.run()
            self.ovsdb_connection.poller.timer_wait(100)
            self.api.idl.wait(self.ovsdb_connection.poller)
            self.ovsdb_connection.poller.block()
        if self.api._ovs.cur_cfg < next_cfg:
            self.unconfirmed = "ovs-vswitchd did not apply the change in time (is it running?)"
            return
        for cmd in self.commands:
            for name, temp in cmd.rows.new_interfaces if cmd.rows else ():
                self._check_interface(txn, name, temp)

    def _check_interface(self, txn: Any, name: str, temp: uuid.UUID) -> None:
        real = txn.get_insert_uuid(temp)
        interface = self.api.tables["Interface"].rows.get(real) if real else None
        if interface is None:
            return
        error = interface.error[0] if interface.error else ""
        if error or not interface.ofport or interface.ofport[0] == -1:
            self.refused[name] = (f"ovs-vswitchd refused it: {error}" if error else
                                  "ovs-vswitchd assigned it no OpenFlow port (see ovs-vswitchd.log; with "
                                  "the userspace datapath, another ovs-vswitchd on this host holding the "
                                  "`ovs-netdev` device is a common cause)")


class OvsDriver:
    """Executes OVS changes: one transaction per wave (the planner puts them in one wave)."""

    def __init__(self, lab: str, client: OvsdbClient, bridges: Iterable[str] = ()) -> None:
        self.lab = lab
        self.client = client
        self.bridges = set(bridges)  # the desired bridges: the replica holds their rows

    def execute(self, changes: Sequence[Change]) -> list[Failure | None]:
        named = {r.bridge if isinstance(r, OvsPort) else r.name for c in changes
                 if isinstance(r := c.resource, OvsPort | OvsBridge)}
        self.client.scope(self.lab, self.bridges | named)
        # Wait for vswitchd when it makes something: new ports (their ofport is checked) and new
        # bridges (their flow table, which the next observe reads). And when it removes an
        # internal port: the port may be re-made next (its device is gone), and a vswitchd that
        # reads both transactions in one reconfiguration keeps the old device, deleted or not.
        wait = any(c.action is Action.CREATE or (c.action is Action.DELETE and _internal(c))
                   for c in changes)
        txn = _Transaction(self.client, wait=wait)
        txn.add(_ApplyCommand(self.client.api, self.lab, changes))
        try:
            txn.commit()
        except Exception as exc:  # ovsdbapp raises RuntimeError/TimeoutException and OVS errors
            return [Failure(f"OVSDB transaction failed: {exc}")] * len(changes)
        if txn.unconfirmed:  # committed, but vswitchd did not confirm: take all of it out again
            self._undo(changes)
            return [Failure(txn.unconfirmed)] * len(changes)
        refused = [c for c in changes if isinstance(c.resource, OvsPort) and c.key[1] in txn.refused]
        if refused:  # their rows were committed: take them out again before reporting
            self._undo(refused)
        errors: list[Failure | None] = [Failure(txn.refused[c.key[1]]) if c in refused else None
                                        for c in changes]
        for k, change in enumerate(changes):
            if errors[k] is None and _flows_changed(change):
                errors[k] = self._reset_flows(change)
        return errors

    def _reset_flows(self, change: Change) -> Failure | None:
        """Flows someone added by hand (or removed): the bridge's table as vnet expects it."""
        want = change.desired
        assert isinstance(want, OvsBridge)
        try:
            openflow.reset_flows(openflow.mgmt_socket(self.client.remote, want.name),
                                 normal=bool(want.flows))
        except UnavailableError as exc:
            return Failure(exc.message, hint=exc.hint)
        return None

    def _undo(self, changes: Sequence[Change]) -> None:
        """Revert committed changes that are reported as failed (so rollback need not know)."""
        cleanup = _Transaction(self.client, wait=False)
        cleanup.add(_ApplyCommand(self.client.api, self.lab, [c.inverse() for c in changes]))
        cleanup.commit()


def _internal(change: Change) -> bool:
    return isinstance(change.resource, OvsPort) and change.resource.type == "internal"


def _flows_changed(change: Change) -> bool:
    want, have = change.desired, change.observed
    return (change.action is Action.UPDATE and isinstance(want, OvsBridge) and isinstance(have, OvsBridge)
            and have.flows is not None and want.flows != have.flows)


"""Open vSwitch through OVSDB: observe a lab's rows, apply its changes in one transaction (ovsdbapp).

- Reads (observe, status) go through `OvsdbReader` (vnet/drivers/ovsdb_rpc.py): one `transact`
  of `select`s, parsed by the standard library's json. Writes go through ovsdbapp; its IDL
  replica (Open_vSwitch, Bridge, Port, Interface) is started on the first write only, and
  once observe has named the lab (`scope`), it replicates only that lab's rows (OVSDB monitor
  conditions: external_ids vnet-lab, plus the bridges' own ports by name), not the whole host.
- All changes of a wave go into one ovsdbapp command inside one transaction (check_error=True).
  The command inserts and edits rows directly: ovsdbapp's per-command lookups (add_port scans
  the Port table each time) made 500 ports cost ~1 s, the direct edit a fraction of that.
- Traps avoided: maps (options, other_config, external_ids) are assigned whole, never merged,
  so stale keys go; ports are looked up by name on *this* bridge's rows, not "anywhere".
- When interfaces are created the transaction bumps next_cfg and waits (bounded) until
  ovs-vswitchd has applied it, then reads each new Interface's `ofport` and `error`: a port
  vswitchd refused fails its change (and the apply rolls back). ovsdbapp itself only logs these.
Ownership: every row vnet writes carries external_ids vnet-lab and vnet-key.
"""

from __future__ import annotations

import threading
import time
import types
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ovs.db import idl as ovs_idl
from ovsdbapp.backend.ovs_idl import command, connection, transaction
from ovsdbapp.schema.open_vswitch import impl_idl

from vnet.drivers import openflow
from vnet.drivers.ovsdb_rpc import OvsdbReader, OvsdbRpcError, python
from vnet.errors import UnavailableError, VnetError
from vnet.reconcile.plan import Action, Change
from vnet.resources import OvsBridge, OvsPort, Resource

DATABASE = "Open_vSwitch"
# Only the columns vnet reads or writes: the replica's first fetch and every update are parsed in
# Python, and the rest (Interface statistics and status above all) is most of the data; with
# 500 ports, registering whole tables made a no-op plan spend ~0.7 s more in the IDL.
COLUMNS = {
    "Open_vSwitch": ("bridges", "next_cfg", "cur_cfg"),
    "Bridge": ("name", "ports", "datapath_type", "fail_mode", "stp_enable", "rstp_enable",
               "other_config", "external_ids"),
    "Port": ("name", "interfaces", "tag", "trunks", "vlan_mode", "external_ids"),
    "Interface": ("name", "type", "options", "mtu_request", "ingress_policing_rate",
                  "ingress_policing_burst", "external_ids", "ofport", "error"),
}
TABLES = tuple(COLUMNS)
LAB_KEY, RESOURCE_KEY = "vnet-lab", "vnet-key"


def lab_clause(lab: str) -> list[Any]:
    """The OVSDB condition "external_ids has vnet-lab=<lab>"."""
    return ["external_ids", "includes", ["map", [[LAB_KEY, lab]]]]


def monitor_conditions(lab: str, bridges: Iterable[str]) -> dict[str, list[Any]]:
    """What the IDL replicates for one lab (clauses are ORed): its rows, and the bridges' own
    ports and interfaces (named as the bridge, carrying no mark; they hold the bridge's MTU)."""
    local = [["name", "==", name] for name in sorted(bridges)]
    return {"Bridge": [lab_clause(lab)], "Port": [lab_clause(lab), *local],
            "Interface": [lab_clause(lab), *local]}


class OvsdbClient:
    """The OVS database at `remote`: reads at once, the ovsdbapp connection on first write."""

    def __init__(self, remote: str, timeout: float = 30.0) -> None:
        self.remote = remote
        self.timeout = timeout
        try:
            self.reader = OvsdbReader(remote, timeout)
        except OvsdbRpcError as exc:
            raise UnavailableError(f"no OVSDB answers at {remote}: {exc}",
                                   "start Open vSwitch (`vnet ovs start`), or point --ovsdb / "
                                   "VNET_OVSDB at a running ovsdb-server") from None
        self._scope: dict[str, list[Any]] | None = None
        self._connection: connection.Connection | None = None
        self._api: Any = None

    def scope(self, lab: str, bridges: Iterable[str]) -> None:
        """Replicate only `lab`'s rows when the IDL starts (no effect once it has started)."""
        self._scope = monitor_conditions(lab, bridges)

    @property
    def api(self) -> Any:
        """The ovsdbapp backend; starts the IDL replica on first use."""
        if self._api is None:
            self._start()
        return self._api

    @property
    def connection(self) -> connection.Connection:
        if self._connection is None:
            self._start()
        assert self._connection is not None
        return self._connection

    def _start(self) -> None:
        try:
            helper = ovs_idl.SchemaHelper(None, self.reader.get_schema(DATABASE))
        except OvsdbRpcError as exc:
            raise UnavailableError(f"OVSDB at {self.remote}: {exc}") from None
        for table, columns in COLUMNS.items():
            helper.register_columns(table, list(columns))
        idl = connection.OvsdbIdl(self.remote, helper)
        for table, condition in (self._scope or {}).items():
            idl.cond_change(table, condition)  # before the first monitor request: its `where`
        self._connection = connection.Connection(idl, self.timeout)
        # ovsdbapp keeps a backend's connection in a class attribute, and the first one set wins:
        # a second client in the same process would read through the first (stopped) connection
        # and queue its transactions on one no thread serves. Each client gets its own subclass.
        backend = type("VnetOvsdbIdl", (impl_idl.OvsdbIdl,), {"_ovsdb_connection": None})
        self._api = backend(self._connection)

    @property
    def lock(self) -> threading.RLock:
        lock: threading.RLock = self.connection.lock
        return lock

    def select(self, selects: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """Rows of each `select` ({"table", "where", "columns"}), in one read transaction."""
        try:
            return self.reader.select(DATABASE, selects)
        except OvsdbRpcError as exc:
            raise UnavailableError(f"OVSDB at {self.remote}: {exc}") from None

    def rows(self, table: str) -> list[Any]:
        """Every row of `table` (the columns vnet uses), as attribute namespaces of Python values."""
        found = self.select([{"table": table, "columns": list(COLUMNS[table])}])[0]
        return [types.SimpleNamespace(**{k: python(v) for k, v in row.items()}) for row in found]

    def close(self) -> None:
        self.reader.close()
        if self._connection is not None and self._connection.stop():
            # stop() ends the IDL thread but closes neither its socket nor the queue's wake-up
            # pipe: they would wait for the garbage collector (the client sits in cycles).
            self._connection.idl.close()
            self._connection.txns.close()


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
        self.refused: dict[str, str] = {}

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
            self.refused["*"] = "ovs-vswitchd did not apply the change in time (is it running?)"
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

    kinds: tuple[str, ...] = ("ovs-bridge", "ovs-port")

    def __init__(self, lab: str, client: OvsdbClient) -> None:
        self.lab = lab
        self.client = client

    def execute(self, changes: Sequence[Change]) -> list[str | None]:
        # Wait for vswitchd when it makes something: new ports (their ofport is checked) and new
        # bridges (their flow table, which the next observe reads).
        creates = any(c.action is Action.CREATE for c in changes)
        txn = _Transaction(self.client, wait=creates)
        txn.add(_ApplyCommand(self.client.api, self.lab, changes))
        try:
            txn.commit()
        except Exception as exc:  # ovsdbapp raises RuntimeError/TimeoutException and OVS errors
            reason = f"OVSDB transaction failed: {exc}"
            return [reason] * len(changes)
        if "*" in txn.refused:  # committed, but vswitchd did not confirm: take all of it out again
            self._undo(changes)
            return [txn.refused["*"]] * len(changes)
        refused = [c for c in changes if c.key[0] == "ovs-port" and c.key[1] in txn.refused]
        if refused:  # their rows were committed: take them out again before reporting
            self._undo(refused)
        errors = [txn.refused.get(c.key[1]) if c.key[0] == "ovs-port" else None for c in changes]
        for k, change in enumerate(changes):
            if errors[k] is None and _flows_changed(change):
                errors[k] = self._reset_flows(change)
        return errors

    def _reset_flows(self, change: Change) -> str | None:
        """Flows someone added by hand (or removed): the bridge's table as vnet expects it."""
        want = change.desired
        assert isinstance(want, OvsBridge)
        try:
            openflow.reset_flows(openflow.mgmt_socket(self.client.remote, want.name),
                                 normal=bool(want.flows))
        except UnavailableError as exc:
            return exc.message
        return None

    def _undo(self, changes: Sequence[Change]) -> None:
        """Revert committed changes that are reported as failed (so rollback need not know)."""
        cleanup = _Transaction(self.client, wait=False)
        cleanup.add(_ApplyCommand(self.client.api, self.lab, [c.inverse() for c in changes]))
        cleanup.commit()


def _flows_changed(change: Change) -> bool:
    want, have = change.desired, change.observed
    return (change.action is Action.UPDATE and isinstance(want, OvsBridge) and isinstance(have, OvsBridge)
            and have.flows is not None and want.flows != have.flows)


def require_client(client: OvsdbClient | None) -> OvsdbClient:
    if client is None:
        raise VnetError("this lab needs Open vSwitch but no OVSDB connection was made")
    return client

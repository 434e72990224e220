"""The OVS database at a remote: reads at once, the ovsdbapp connection on first write.

- Reads (observe, status) go through `OvsdbReader` (ovsdb_rpc.py): one `transact` of `select`s,
  parsed by the standard library's json. Writes go through ovsdbapp; its IDL replica
  (Open_vSwitch, Bridge, Port, Interface) is started on the first write only, and once the
  driver has named the lab (`scope`), it replicates only that lab's rows (OVSDB monitor
  conditions: external_ids vnet-lab, plus the bridges' own ports by name), not the whole host.
Every row vnet writes carries external_ids vnet-lab and vnet-key.
"""

from __future__ import annotations

import threading
import types
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from vnet.errors import UnavailableError
from vnet.mechanisms.ovs.ovsdb_rpc import OvsdbReader, OvsdbRpcError, python

if TYPE_CHECKING:
    from ovsdbapp.backend.ovs_idl import connection

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
        # Imported here: reads (every plan) never need ovsdbapp and the IDL, only a write does.
        from ovs.db import idl as ovs_idl  # noqa: PLC0415
        from ovsdbapp.backend.ovs_idl import connection  # noqa: PLC0415
        from ovsdbapp.schema.open_vswitch import impl_idl  # noqa: PLC0415

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



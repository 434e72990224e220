"""observe for Open vSwitch: the lab's bridges and ports (external_ids vnet-lab), and names
the lab wants that other OVS rows hold.

One read transaction (OvsdbClient.select): every bridge, every port (their names are needed to
report collisions), the lab's interfaces and the internal ones (a bridge's own interface holds
its MTU). Then the client is scoped to the lab, so that a later write replicates only its rows.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from vnet.drivers import ovs_unixctl
from vnet.drivers.ovs import COLUMNS, LAB_KEY, OvsdbClient, lab_clause
from vnet.drivers.ovsdb_rpc import atoms, mapping, scalar
from vnet.errors import UnavailableError
from vnet.resources import DesiredState, ObservedState, OvsBridge, OvsInternal, OvsPort, Resource, ResourceKey

OVS_NAMESPACE = "ovs"  # the namespace part of foreign_names keys for OVS bridge/port names
Row = dict[str, Any]


def _holder(ids: dict[str, str]) -> str:
    lab = ids.get(LAB_KEY)
    return f"vnet lab `{lab}`" if lab else "something other than vnet (an OVS row without vnet's mark)"


def _bridge(row: Row, local: Row | None, remote: str) -> OvsBridge:
    mtu = scalar(local["mtu_request"]) if local is not None else None
    try:
        flows: tuple[str, ...] | None = ovs_unixctl.flows(remote, row["name"])
    except UnavailableError:
        flows = None  # ovs-vswitchd does not answer: the flows are unknown
    return OvsBridge(row["name"], row["datapath_type"] or "system", scalar(row["fail_mode"]) or "standalone",
                     bool(row["stp_enable"]), bool(row["rstp_enable"]),
                     tuple(sorted(mapping(row["other_config"]).items())), mtu, flows)


def _port(bridge: str, row: Row, interface: Row | None) -> OvsPort:
    options: tuple[tuple[str, str], ...] = ()
    if interface is None:
        kind, rate, burst = "", 0, 0
    else:
        kind, options = interface["type"], tuple(sorted(mapping(interface["options"]).items()))
        rate, burst = interface["ingress_policing_rate"], interface["ingress_policing_burst"]
    trunks = tuple(sorted(atoms(row["trunks"])))
    return OvsPort(bridge, row["name"], kind, options, scalar(row["tag"]), trunks, scalar(row["vlan_mode"]),
                   rate, burst)


def _read(lab: str, client: OvsdbClient) -> tuple[list[Row], list[Row], dict[str, Row], dict[str, Row]]:
    """(bridges, ports, the lab's interfaces by uuid, internal interfaces by name)."""
    def columns(table: str) -> list[str]:
        return ["_uuid", *COLUMNS[table]]

    bridges, ports, interfaces, internal = client.select([
        {"table": "Bridge", "columns": columns("Bridge")},
        {"table": "Port", "columns": columns("Port")},
        {"table": "Interface", "where": [lab_clause(lab)], "columns": columns("Interface")},
        {"table": "Interface", "where": [["type", "==", "internal"]], "columns": ["name", "mtu_request"]},
    ])
    return (bridges, ports, {row["_uuid"][1]: row for row in interfaces},
            {row["name"]: row for row in internal})


def _internal_devices(found: dict[ResourceKey, Resource], desired: DesiredState,
                      kernel: ObservedState) -> None:
    """Tie each internal port (attach: internal) to its device: recreating the device means
    recreating the port (`device_key`: the plan cascades), and a port whose device is gone
    from the kernel is recreated (`device_present`): ovs-vswitchd makes a device only then."""
    for want in desired.resources.values():
        port = found.get(("ovs-port", want.port)) if isinstance(want, OvsInternal) else None
        if isinstance(port, OvsPort) and isinstance(want, OvsInternal):
            found[port.key] = replace(port, device_key=want.key, device_present=want.key in kernel.resources)


def observe_ovs(lab: str, desired: DesiredState | None, client: OvsdbClient,
                kernel: ObservedState | None = None
                ) -> tuple[dict[ResourceKey, Resource], dict[tuple[str, str], str]]:
    """(the lab's OVS resources, names it wants that others hold). `kernel`: the lab's kernel
    objects, observed just before (needed to judge internal ports)."""
    keys = desired.resources if desired else {}
    wanted = {key[1] for key in keys if key[0] in ("ovs-bridge", "ovs-port")}
    bridges, ports, interfaces, internal = _read(lab, client)
    found: dict[ResourceKey, Resource] = {}
    foreign: dict[tuple[str, str], str] = {}
    bridge_of = {uuid: row["name"] for row in bridges for uuid in atoms(row["ports"])}
    for row in bridges:
        ids = mapping(row["external_ids"])
        if ids.get(LAB_KEY) == lab:
            found[("ovs-bridge", row["name"])] = _bridge(row, internal.get(row["name"]), client.remote)
        elif row["name"] in wanted:
            foreign[(OVS_NAMESPACE, row["name"])] = _holder(ids)
    for row in ports:
        bridge = bridge_of.get(row["_uuid"][1])
        if bridge is None or row["name"] == bridge:
            continue  # on no bridge, or the bridge's own internal port (it belongs to the bridge)
        ids = mapping(row["external_ids"])
        if ids.get(LAB_KEY) == lab:
            first = next(iter(atoms(row["interfaces"])), None)
            found[("ovs-port", row["name"])] = _port(bridge, row, interfaces.get(first or ""))
        elif row["name"] in wanted:
            foreign[(OVS_NAMESPACE, row["name"])] = _holder(ids)
    client.scope(lab, {key[1] for key in (*found, *keys) if key[0] == "ovs-bridge"})
    if desired is not None and kernel is not None:
        _internal_devices(found, desired, kernel)
    return found, foreign

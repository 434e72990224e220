"""observe for Open vSwitch: the lab's bridges and ports (external_ids vnet-lab), and names
the lab wants that other OVS rows hold."""

from __future__ import annotations

from typing import Any

from vnet.drivers.ovs import LAB_KEY, OvsdbClient
from vnet.resources import DesiredState, OvsBridge, OvsPort, Resource, ResourceKey

OVS_NAMESPACE = "ovs"  # the namespace part of foreign_names keys for OVS bridge/port names


def _first(column: list[Any]) -> Any:
    return column[0] if column else None


def _holder(row: Any) -> str:
    lab = row.external_ids.get(LAB_KEY)
    return f"vnet lab `{lab}`" if lab else "something other than vnet (an OVS row without vnet's mark)"


def _bridge(row: Any) -> OvsBridge:
    local = next((p.interfaces[0] for p in row.ports if p.name == row.name and p.interfaces), None)
    mtu = _first(local.mtu_request) if local is not None else None
    return OvsBridge(row.name, row.datapath_type or "system", _first(row.fail_mode) or "standalone",
                     bool(row.stp_enable), bool(row.rstp_enable), tuple(sorted(row.other_config.items())),
                     mtu)


def _port(bridge: str, row: Any) -> OvsPort:
    interface = row.interfaces[0] if row.interfaces else None
    options = tuple(sorted(interface.options.items())) if interface is not None else ()
    return OvsPort(bridge, row.name, interface.type if interface is not None else "", options,
                   _first(row.tag), tuple(sorted(row.trunks)), _first(row.vlan_mode),
                   interface.ingress_policing_rate if interface is not None else 0,
                   interface.ingress_policing_burst if interface is not None else 0)


def observe_ovs(lab: str, desired: DesiredState | None, client: OvsdbClient
                ) -> tuple[dict[ResourceKey, Resource], dict[tuple[str, str], str]]:
    """(the lab's OVS resources, names it wants that others hold)."""
    keys = desired.resources if desired else {}
    wanted = {key[1] for key in keys if key[0] in ("ovs-bridge", "ovs-port")}
    found: dict[ResourceKey, Resource] = {}
    foreign: dict[tuple[str, str], str] = {}
    with client.lock:
        bridges = list(client.api.tables["Bridge"].rows.values())
        for row in bridges:
            mine = row.external_ids.get(LAB_KEY) == lab
            if mine:
                found[("ovs-bridge", row.name)] = _bridge(row)
            elif row.name in wanted:
                foreign[(OVS_NAMESPACE, row.name)] = _holder(row)
            for port in row.ports:
                if port.name == row.name:
                    continue  # the bridge's own internal port belongs to the bridge
                if port.external_ids.get(LAB_KEY) == lab:
                    found[("ovs-port", port.name)] = _port(row.name, port)
                elif port.name in wanted:
                    foreign[(OVS_NAMESPACE, port.name)] = _holder(port)
    return found, foreign

"""What OVS has of a lab: its bridges and ports (external_ids vnet-lab), the devices of its
internal ports, and the names other OVS rows hold.

One read transaction (OvsdbClient.select): every bridge, every port (their names are needed to
report collisions), the lab's interfaces and the internal ones (a bridge's own interface holds
its MTU); the flows of the lab's bridges from ovs-vswitchd (unixctl.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from vnet.errors import UnavailableError
from vnet.mechanisms.base import Observation
from vnet.mechanisms.kernel.observe import Scan, device_end
from vnet.mechanisms.kernel.resources import DeviceEnd, StrayDevice
from vnet.mechanisms.ovs import unixctl as ovs_unixctl
from vnet.mechanisms.ovs.client import COLUMNS, LAB_KEY, OvsdbClient, lab_clause
from vnet.mechanisms.ovs.ovsdb_rpc import atoms, mapping, scalar
from vnet.mechanisms.ovs.resources import OVS_NAMESPACE, OvsBridge, OvsInternal, OvsPort
from vnet.netlink.parse import LinkMsg
from vnet.resources import HOST, DesiredState, ObservedState

# Kinds of an OVS internal port's device: a TAP (userspace datapath), `openvswitch` (kernel).
INTERNAL_KINDS = frozenset({"tun", "openvswitch"})
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


@dataclass
class Internal:
    """What the OVS observer found of `attach: internal` devices, for `match`."""

    devices: dict[tuple[str, str], DeviceEnd] = field(default_factory=dict)  # in lab namespaces
    unmoved: set[str] = field(default_factory=set)  # ports whose device is in the host namespace


def claims_internal_device(lab: str, namespace: str, link: LinkMsg) -> bool:
    """Devices of OVS internal ports (attach: internal) in a lab namespace are OVS's: a TAP on the
    userspace datapath, an `openvswitch` device on the kernel one."""
    return namespace != HOST and link.kind in INTERNAL_KINDS


def observe(lab: str, client: OvsdbClient, found: Scan) -> Observation:
    """The lab's bridges and ports (external_ids vnet-lab), their internal ports' devices, and
    the bridge and port names others hold."""
    bridges, ports, interfaces, internal = _read(lab, client)
    out = Observation(raw=Internal())
    bridge_of = {uuid: row["name"] for row in bridges for uuid in atoms(row["ports"])}
    mine = {row["name"] for row in bridges if mapping(row["external_ids"]).get(LAB_KEY) == lab}
    for row in bridges:
        if row["name"] in mine:
            bridge = _bridge(row, internal.get(row["name"]), client.remote)
            out.resources[bridge.key] = bridge
        else:
            out.held[(OVS_NAMESPACE, row["name"])] = _holder(mapping(row["external_ids"]))
    for row in ports:
        bridge_name = bridge_of.get(row["_uuid"][1])
        ids = mapping(row["external_ids"])
        if bridge_name is None or (row["name"] == bridge_name and bridge_name in mine):
            continue  # on no bridge, or the lab's bridge's own internal port (it goes with it)
        if ids.get(LAB_KEY) == lab:
            first = next(iter(atoms(row["interfaces"])), None)
            port = _port(bridge_name, row, interfaces.get(first or ""))
            out.resources[port.key] = port
            if port.type == "internal" and port.name in found.links:
                out.raw.unmoved.add(port.name)
        else:
            out.held[(OVS_NAMESPACE, row["name"])] = _holder(ids)
    for namespace, inside in found.namespaces.items():
        names = {link.index: name for name, link in inside.links.items()}
        for link in inside.links.values():
            if claims_internal_device(lab, namespace, link):
                out.raw.devices[(namespace, link.name)] = device_end(found, namespace, link, names)
    return out


def match(desired: DesiredState | None, observed: ObservedState, own: Observation) -> None:
    """Devices of internal ports where the desired ones say, the rest strays; each internal port
    tied to its device: recreating the device recreates the port (`device_key`: the plan
    cascades), and a port whose device is gone is recreated (`device_present`: ovs-vswitchd
    makes a device only then). A device named after its port in the host namespace was made by
    ovs-vswitchd and not moved yet (or again, after a vswitchd restart): `moved=False`."""
    observed.resources.update(own.resources)
    found: Internal = own.raw
    for want in (desired.resources.values() if desired else ()):
        if not isinstance(want, OvsInternal):
            continue
        end = found.devices.pop((want.end.netns, want.end.name), None)
        if want.port in found.unmoved:
            device: OvsInternal | None = replace(want, moved=False)
        else:
            device = OvsInternal(end, want.port) if end is not None else None
        if device is not None:
            observed.resources[device.key] = device
        port = observed.resources.get(OvsPort.key_of(want.port))
        if isinstance(port, OvsPort):
            observed.resources[port.key] = replace(port, device_key=want.key,
                                                   device_present=device is not None)
    for (namespace, name), end in found.devices.items():
        stray = StrayDevice(namespace, name, end.alias)
        observed.resources[stray.key] = stray

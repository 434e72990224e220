"""What plan tells the user about a lab's SR-IOV: hardware offload needs a host-wide OVS setting."""

from __future__ import annotations

from vnet.mechanisms.ovs.resources import OvsBridge, OvsPort
from vnet.mechanisms.sriov.compile import HW_OFFLOAD
from vnet.resources import DesiredState
from vnet.topology.lab import Lab


def notes(lab: Lab, desired: DesiredState) -> list[str]:
    found = []
    resources = desired.resources.values()
    offloaded = sorted({r.bridge for r in resources if isinstance(r, OvsPort)
                        and r.device_key is not None and r.device_key[0] == "sriov-rep"})
    for bridge in offloaded:
        wanted = desired.resources.get(OvsBridge.key_of(bridge))
        if isinstance(wanted, OvsBridge) and HW_OFFLOAD in wanted.other_config:
            found.append(f"OVS bridge {bridge}: VF representors are its ports and it has other_config "
                         "hw-offload=true; Open vSwitch offloads flows to the NIC only with "
                         "`ovs-vsctl set Open_vSwitch . other_config:hw-offload=true` (host-wide) and after "
                         "ovs-vswitchd restarts: vnet changes neither the host-wide setting nor restarts "
                         "a system ovs-vswitchd (e.g. `systemctl restart openvswitch-switch`)")
    return found

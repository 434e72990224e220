"""Drivers: one module (or package) per host mechanism (netlink, namespaces, OVS, SR-IOV, QEMU)."""

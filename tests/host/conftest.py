"""The snapshot trees copy sysfs's symlink cycles (net/<nic>/device -> the PCI device): never collect them."""

collect_ignore = ["snapshots"]

"""QEMU guests: the built-in `image: tiny` guest (tiny.py), its guest agent (agent.py) and the launcher.

`tiny.py` builds a kernel + busybox initramfs from the host's own files (no download); the guest is
configured from `vnet.*` kernel parameters by `guest/init` and then serves `agent.py`'s line protocol
on the virtio-serial port `org.vnet.agent`, which is how vnet runs commands inside guests.
"""

"""What vnet's own objects need: namespaces, TUN, vhost-net, OVS, hugepages, QEMU."""

from __future__ import annotations

import os

from vnet.host.checks.base import HostView, Result, Status, capability, one
from vnet.host.checks.pci import kernel_module, kernel_release


@capability("netns", basic=True)
def network_namespaces(host: HostView) -> list[Result]:
    name = "netns"
    if not host.exists("/proc/self/ns/net"):
        return one(name, Status.FAIL, "/proc/self/ns/net: absent", "a kernel with CONFIG_NET_NS")
    limit = host.read("/proc/sys/user/max_net_namespaces")
    evidence = "/proc/self/ns/net: " + (host.link_name("/proc/self/ns/net") or "exists")
    if limit == "0":
        return one(name, Status.FAIL, f"{evidence}; /proc/sys/user/max_net_namespaces: 0",
                   "sysctl -w user.max_net_namespaces=10000")
    return one(name, Status.PASS, evidence + (f"; max_net_namespaces {limit}" if limit else ""))


@capability("tun", basic=True)
def tun(host: HostView) -> list[Result]:
    path = host.path("/dev/net/tun")
    if not host.exists("/dev/net/tun"):
        return one("tun", Status.FAIL, "/dev/net/tun: absent (TAP devices for guests need it)",
                   "modprobe tun; or mkdir -p /dev/net && mknod /dev/net/tun c 10 200")
    if not os.access(path, os.R_OK | os.W_OK):
        return one("tun", Status.FAIL, "/dev/net/tun: exists, not readable and writable",
                   "run vnet as root (chmod 0666 /dev/net/tun is the usual mode)")
    return one("tun", Status.PASS, "/dev/net/tun: exists, read-write")


@capability("vhost-net")
def vhost_net(host: HostView) -> list[Result]:
    if host.exists("/dev/vhost-net"):
        return one("vhost-net", Status.PASS, "/dev/vhost-net: exists")
    return one("vhost-net", Status.WARN, "/dev/vhost-net: absent; QEMU moves guest packets in "
               "userspace (slower virtio-net)", "modprobe vhost_net (CONFIG_VHOST_NET)")


@capability("ovs-kernel-datapath")
def ovs_kernel(host: HostView) -> list[Result]:
    name = "ovs-kernel-datapath"
    if host.probes.genl_family("ovs_datapath"):
        return one(name, Status.PASS, "generic netlink family ovs_datapath: present")
    evidence = "generic netlink family ovs_datapath: absent"
    fallback = "; OVS switches use the userspace datapath (datapath_type=netdev, slower)"
    module = kernel_module(host, "kernel/net/openvswitch/openvswitch.ko")
    if module is not None and module != "builtin":
        return one(name, Status.WARN, f"{evidence}; {module}: not loaded{fallback}", "modprobe openvswitch")
    return one(name, Status.WARN, f"{evidence}; no openvswitch module for kernel "
               f"{kernel_release(host) or '?'}{fallback}", "a kernel with CONFIG_OPENVSWITCH")


@capability("ovs-userspace")
def ovs_userspace(host: HostView) -> list[Result]:
    found = {binary: host.which(binary) for binary in ("ovs-vswitchd", "ovsdb-server")}
    evidence = "; ".join(f"{b}: {path or 'not on PATH'}" for b, path in found.items())
    if all(found.values()):
        return one("ovs-userspace", Status.PASS, evidence)
    return one("ovs-userspace", Status.WARN, f"{evidence}; `type: ovs` switches need it",
               "apt install openvswitch-switch")


@capability("hugepages")
def hugepages(host: HostView) -> list[Result]:
    meminfo = dict(line.split(":", 1) for line in (host.read("/proc/meminfo") or "").splitlines()
                   if ":" in line)
    total = meminfo.get("HugePages_Total", "").strip()
    pools = [f"{size}: {host.read(f'/sys/kernel/mm/hugepages/{size}/nr_hugepages') or '?'}"
             for size in host.listdir("/sys/kernel/mm/hugepages")]
    evidence = f"/proc/meminfo HugePages_Total: {total or 'absent'}; /sys/kernel/mm/hugepages: " + (
        ", ".join(pools) or "absent")
    if not total and not pools:
        return one("hugepages", Status.WARN, f"{evidence} (kernel without hugetlbfs)",
                   "a kernel with CONFIG_HUGETLBFS")
    if total not in ("", "0"):
        return one("hugepages", Status.PASS, evidence)
    return one("hugepages", Status.WARN, f"{evidence}: none reserved; guests use ordinary pages (fine "
               "for labs; vhost-user and DPDK need hugepages)",
               "echo 1024 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages")


def _binary(host: HostView, name: str, binary: str, package: str, needed_for: str) -> list[Result]:
    path = host.which(binary)
    if path:
        return one(name, Status.PASS, f"{binary}: {path}")
    return one(name, Status.WARN, f"{binary}: not on PATH; {needed_for}", f"apt install {package}")


@capability("qemu-system")
def qemu_system(host: HostView) -> list[Result]:
    return _binary(host, "qemu-system", "qemu-system-x86_64", "qemu-system-x86", "`kind: vm` nodes need it")


@capability("qemu-img")
def qemu_img(host: HostView) -> list[Result]:
    # vnet attaches disks with snapshot=on and never needs it; users convert images with it.
    return _binary(host, "qemu-img", "qemu-img", "qemu-utils",
                   "vnet does not need it; it converts images to qcow2/raw for `image: {disk}`")

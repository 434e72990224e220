"""vnet's own rtnetlink codec and batch socket (links, addresses, routes).

pyroute2 spends ~0.4 ms encoding one RTM_NEWLINK and ~0.5 ms parsing one link of a dump; this
package encodes a request in 4-10 us and decodes a link in ~25 us with `struct`, and sends
hundreds of requests per sendto. Encoders: `wire`; decoders and parsed dataclasses: `parse`;
the socket: `socket`.

    with netns.entered("vnet-lab-h1"):       # optional: the socket binds to this namespace
        sock = NetlinkSocket()
    acks = sock.transact([
        wire.new_link(create=True, ifname="br0", index=1000, kind="bridge", group=7, up=True),
        wire.new_link(index=1000, alias="vnet:lab:br0"),          # alias: a second message
        wire.new_link(create=True, ifname="h1", index=1001, kind="veth", master=1000, up=True,
                      peer=VethPeer("eth0", netns_fd=fd)),      # peer straight into a namespace
    ])                                                          # one Ack(errno, message) each
    links = sock.links()

Kernel behaviour this API is shaped by (measured on 6.18):
- IFLA_IFALIAS is ignored when a device is created: `new_link(create=True, alias=...)` is
  refused; send a modifying `new_link` right after it in the same batch.
- A veth peer gets name, group, mtu, mac, namespace at creation; its master and alias are
  ignored and IFF_UP fails with ENOTCONN, so those need a second message (in the peer's
  namespace). Its requested index is honoured only when the first end has one too.
- Explicit indexes (ifi_index on create) let later messages of the same batch refer to a
  device (master=..., index=...) without a dump in between. Indexes are per namespace.
- Bringing devices up is cheap, but their IPv6 autoconfiguration then keeps kworkers busy
  under the RTNL lock for a while, which slows whatever comes next.
- `del_link_group` removes veths at ~0.2 ms each, but bridges still cost ~16 ms each inside
  the kernel, group or not (rcu_barrier() in br_multicast_dev_del); deleting a namespace defers
  that work (asynchronously), but a bridge cannot leave its namespace (netns_local). Renaming a
  device costs one expedited RCU grace period (~1 ms). `reaper` deletes devices by name from a
  background process (standard library only) for `vnet destroy`.
- The operational state (`LinkMsg.oper_state`) follows IFF_UP asynchronously (linkwatch,
  up to ~1 s).
"""

from vnet.netlink.errors import NetlinkError, WireError
from vnet.netlink.parse import Ack, AddrMsg, BridgeInfo, LinkMsg, Message, RouteMsg
from vnet.netlink.socket import NetlinkSocket
from vnet.netlink.wire import BridgeOptions, VethPeer

__all__ = [
    "Ack",
    "AddrMsg",
    "BridgeInfo",
    "BridgeOptions",
    "LinkMsg",
    "Message",
    "NetlinkError",
    "NetlinkSocket",
    "RouteMsg",
    "VethPeer",
    "WireError",
]

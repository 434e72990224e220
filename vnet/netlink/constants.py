"""Kernel constants for rtnetlink, named as in the kernel's uapi headers.

Sources: linux/netlink.h, linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h, linux/veth.h,
linux/if.h. Only what vnet encodes or decodes is listed.
"""

from __future__ import annotations

import socket

AF_UNSPEC = socket.AF_UNSPEC
AF_INET = socket.AF_INET
AF_INET6 = socket.AF_INET6
NETLINK_ROUTE = 0

# Socket options (SOL_NETLINK level).
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
NETLINK_GET_STRICT_CHK = 12
SO_RCVBUFFORCE = 33

# struct nlmsghdr: message types.
NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4

# nlmsg_flags.
NLM_F_REQUEST = 0x01
NLM_F_MULTI = 0x02
NLM_F_ACK = 0x04
NLM_F_ECHO = 0x08
NLM_F_DUMP_INTR = 0x10
NLM_F_DUMP_FILTERED = 0x20
NLM_F_ROOT = 0x100  # GET requests
NLM_F_MATCH = 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
NLM_F_REPLACE = 0x100  # NEW requests
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_APPEND = 0x800
NLM_F_CAPPED = 0x100  # flags of an NLMSG_ERROR acknowledgement
NLM_F_ACK_TLVS = 0x200

# Extended acknowledgement attributes (after struct nlmsgerr).
NLMSGERR_ATTR_MSG = 1
NLMSGERR_ATTR_OFFS = 2

# Attribute header flags.
NLA_F_NESTED = 0x8000
NLA_F_NET_BYTEORDER = 0x4000
NLA_TYPE_MASK = 0x3FFF

# rtnetlink message types.
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
RTM_SETLINK = 19
RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22
RTM_NEWROUTE = 24
RTM_DELROUTE = 25
RTM_GETROUTE = 26
RTM_NEWNETCONF = 80
RTM_GETNETCONF = 82
RTM_NEWNEIGH = 28
RTM_DELNEIGH = 29
RTM_GETNEIGH = 30
NDA_DST = 1
NUD_PERMANENT = 0x80

# Per-namespace IP settings (struct netconfmsg; linux/netconf.h).
NETCONFA_IFINDEX = 1
NETCONFA_FORWARDING = 2
NETCONFA_IFINDEX_ALL = -1  # the `all` entry: net.ipv4.conf.all.* (ip_forward)

# Link attributes (struct ifinfomsg).
IFLA_ADDRESS = 1
IFLA_BROADCAST = 2
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_LINK = 5
IFLA_MASTER = 10
IFLA_OPERSTATE = 16
IFLA_LINKINFO = 18
IFLA_IFALIAS = 20
IFLA_GROUP = 27
IFLA_NET_NS_FD = 28
IFLA_EXT_MASK = 29
IFLA_LINK_NETNSID = 37

IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
IFLA_INFO_SLAVE_KIND = 4
IFLA_INFO_SLAVE_DATA = 5

# Bridge port flags vnet manages (IFLA_INFO_SLAVE_DATA of a bridge port), by the names plan uses.
BRIDGE_PORT_FLAGS = {"learning": 8, "flood": 9, "mcast_flood": 27, "bcast_flood": 30, "isolated": 33}

VETH_INFO_PEER = 1

IFLA_BR_FORWARD_DELAY = 1
IFLA_BR_AGEING_TIME = 4
IFLA_BR_STP_STATE = 5
IFLA_BR_VLAN_FILTERING = 7

RTEXT_FILTER_VF = 1 << 0
RTEXT_FILTER_SKIP_STATS = 1 << 3

IFF_UP = 0x1
ARPHRD_ETHER = 1
USER_HZ = 100  # clock_t ticks per second in the bridge's netlink attributes

# IF_OPER_* (RFC 2863 operational states), as /sys/class/net/*/operstate spells them.
OPER_STATES = ("unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant", "up")

# Address attributes (struct ifaddrmsg).
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_LABEL = 3
IFA_FLAGS = 8

IFA_F_SECONDARY = 0x01
IFA_F_NODAD = 0x02
IFA_F_TENTATIVE = 0x40
IFA_F_PERMANENT = 0x80

# Route attributes (struct rtmsg).
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PRIORITY = 6
RTA_TABLE = 15

RT_TABLE_UNSPEC = 0
RT_TABLE_MAIN = 254
RT_TABLE_LOCAL = 255

RTPROT_UNSPEC = 0
RTPROT_KERNEL = 2
RTPROT_BOOT = 3
RTPROT_STATIC = 4

RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RT_SCOPE_HOST = 254
RT_SCOPE_NOWHERE = 255

RTN_UNSPEC = 0
RTN_UNICAST = 1
RTN_LOCAL = 2

# IFLA_INFO_DATA of a macvlan
IFLA_MACVLAN_MODE = 1
MACVLAN_MODES = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8, "source": 16}

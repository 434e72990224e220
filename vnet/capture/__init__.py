"""`vnet capture`: packets of a lab's interfaces into one pcapng file, without tcpdump or libpcap.

pcapng.py writes the file format, socket.py captures on one device (AF_PACKET, inside a node's
namespace or on the host), decode.py is the one-line summary printed without a file, and
session.py resolves `node:iface` targets to devices and runs the capture loop.
"""

"""How long a request has already waited before the gatekeeper's handler saw it.

A connection the event loop is too busy to accept waits in the kernel's accept queue, and a
request on an accepted connection waits in its receive buffer: the handler cannot see either
wait, yet a bot may have given up meanwhile. Linux tells, per socket, how long ago its last
data segment arrived (``tcp_info.tcpi_last_data_recv``, milliseconds): read when the handler
starts, that is the request's wait so far (its last byte's, so never more than the real
wait). Elsewhere it is 0 and only the gatekeeper's own waits count.
"""

from __future__ import annotations

import asyncio
import socket
import struct

# struct tcp_info (linux/tcp.h): 8 bytes of u8 fields, then u32s; tcpi_last_data_recv is the
# 14th u32 (after rto, ato, snd_mss, rcv_mss, unacked, sacked, lost, retrans, fackets,
# last_data_sent, last_ack_sent).
_LAST_DATA_RECV_OFFSET = 8 + 4 * 11
_TCP_INFO_BYTES = 104


def queued_seconds(transport: asyncio.BaseTransport | None) -> float:
    """Seconds since the request's last byte reached this host (0 when unknown)."""
    tcp_info = getattr(socket, "TCP_INFO", None)
    if transport is None or tcp_info is None:
        return 0.0
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return 0.0
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, tcp_info, _TCP_INFO_BYTES)
    except OSError:
        return 0.0
    if len(info) < _LAST_DATA_RECV_OFFSET + 4:
        return 0.0
    (milliseconds,) = struct.unpack_from("=I", info, _LAST_DATA_RECV_OFFSET)
    return float(milliseconds) / 1000

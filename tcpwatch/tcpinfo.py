"""Unpack the kernel's `struct tcp_info` (the INET_DIAG_INFO attribute) into a TcpInfo.

The struct only ever grows at its end, so it is parsed by length: a field the kernel did
not send (an older kernel) is None. Offsets follow include/uapi/linux/tcp.h.

Outputs unpack tens of thousands of these at once, so each length gets one precompiled
Struct that skips the unused fields with pad bytes and yields TcpInfo's fields in order.
"""

from __future__ import annotations

import struct
from dataclasses import replace

from tcpwatch.model import TcpInfo

# The part every kernel since 2.6 sends: 8 u8 fields, then 24 u32 (rto .. total_retrans).
# Pad bytes skip options, wscale, flags, ato, fackets, last_ack_sent, rcv_ssthresh, advmss,
# reordering, rcv_rtt and rcv_space, which TcpInfo does not carry.
_BASE_FORMAT = "=5B3xI4x6I4xI4x3I4x4I16xI"
BASE_SIZE = struct.calcsize(_BASE_FORMAT)  # 104

# Later additions, in struct order: (offset, format); TcpInfo's fields after total_retrans.
_OPTIONAL: tuple[tuple[int, str], ...] = (
    (120, "Q"),  # bytes_acked
    (128, "Q"),  # bytes_received
    (136, "I"),  # segs_out
    (140, "I"),  # segs_in
    (144, "I"),  # notsent_bytes
    (148, "I"),  # min_rtt_us
    (160, "Q"),  # delivery_rate
    (200, "Q"),  # bytes_sent
    (208, "Q"),  # bytes_retrans
    (228, "I"),  # snd_wnd
    (232, "I"),  # rcv_wnd
)


def _layout(size: int) -> struct.Struct:
    """The Struct for a payload of `size` bytes: the base and every optional field it holds."""
    fmt = _BASE_FORMAT
    end = BASE_SIZE
    for offset, code in _OPTIONAL:
        if offset + struct.calcsize(code) > size:
            break
        fmt += f"{offset - end}x{code}" if offset > end else code
        end = offset + struct.calcsize(code)
    return struct.Struct(fmt)


# Payload length -> its Struct (a kernel sends one length, so this stays tiny).
_LAYOUTS: dict[int, struct.Struct] = {}


def parse_tcp_info(raw: bytes) -> TcpInfo:
    """Parse `raw` (the attribute payload); ValueError when shorter than the base part."""
    layout = _LAYOUTS.get(len(raw))
    if layout is None:
        if len(raw) < BASE_SIZE:
            raise ValueError(f"tcp_info too short: {len(raw)} bytes, need at least {BASE_SIZE}")
        layout = _LAYOUTS.setdefault(len(raw), _layout(len(raw)))
    return TcpInfo(*layout.unpack_from(raw))


def aged(info: TcpInfo, grown_ms: int) -> TcpInfo:
    """`info` read `grown_ms` later with nothing sent or received meanwhile: the times
    since the last data and ACK have grown by that much (see SocketRecord.dumped_at)."""
    if not grown_ms:
        return info
    return replace(
        info,
        last_data_sent_ms=info.last_data_sent_ms + grown_ms,
        last_data_recv_ms=info.last_data_recv_ms + grown_ms,
        last_ack_recv_ms=info.last_ack_recv_ms + grown_ms,
    )

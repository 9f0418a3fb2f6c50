"""Unpack the kernel's `struct tcp_info` (the INET_DIAG_INFO attribute) into a TcpInfo.

The struct only ever grows at its end, so it is parsed by length: a field the kernel did
not send (an older kernel) is None. Offsets follow include/uapi/linux/tcp.h.
"""

from __future__ import annotations

import struct

from tcpwatch.model import TcpInfo

# The part every kernel since 2.6 sends: 8 u8 fields, then 24 u32 (rto .. total_retrans).
_BASE = struct.Struct("=8B24I")
BASE_SIZE = _BASE.size  # 104

# Later additions: (TcpInfo field, offset, struct format), in struct order.
_OPTIONAL: tuple[tuple[str, int, struct.Struct], ...] = tuple(
    (name, offset, struct.Struct(fmt))
    for name, offset, fmt in (
        ("bytes_acked", 120, "=Q"),
        ("bytes_received", 128, "=Q"),
        ("segs_out", 136, "=I"),
        ("segs_in", 140, "=I"),
        ("notsent_bytes", 144, "=I"),
        ("min_rtt_us", 148, "=I"),
        ("delivery_rate", 160, "=Q"),
        ("bytes_sent", 200, "=Q"),
        ("bytes_retrans", 208, "=Q"),
        ("snd_wnd", 228, "=I"),
        ("rcv_wnd", 232, "=I"),
    )
)


def parse_tcp_info(raw: bytes) -> TcpInfo:
    """Parse `raw` (the attribute payload); ValueError when shorter than the base part."""
    if len(raw) < BASE_SIZE:
        raise ValueError(f"tcp_info too short: {len(raw)} bytes, need at least {BASE_SIZE}")
    (
        state,
        ca_state,
        retransmits,
        probes,
        backoff,
        _options,
        _wscale,
        _flags,
        rto,
        _ato,
        snd_mss,
        rcv_mss,
        unacked,
        sacked,
        lost,
        retrans,
        _fackets,
        last_data_sent,
        _last_ack_sent,
        last_data_recv,
        last_ack_recv,
        pmtu,
        _rcv_ssthresh,
        rtt,
        rttvar,
        snd_ssthresh,
        snd_cwnd,
        _advmss,
        _reordering,
        _rcv_rtt,
        _rcv_space,
        total_retrans,
    ) = _BASE.unpack_from(raw)
    size = len(raw)
    extra = {
        name: fmt.unpack_from(raw, offset)[0]
        for name, offset, fmt in _OPTIONAL
        if offset + fmt.size <= size
    }
    return TcpInfo(
        state=state,
        ca_state=ca_state,
        retransmits=retransmits,
        probes=probes,
        backoff=backoff,
        rto_us=rto,
        snd_mss=snd_mss,
        rcv_mss=rcv_mss,
        unacked=unacked,
        sacked=sacked,
        lost=lost,
        retrans=retrans,
        last_data_sent_ms=last_data_sent,
        last_data_recv_ms=last_data_recv,
        last_ack_recv_ms=last_ack_recv,
        pmtu=pmtu,
        rtt_us=rtt,
        rttvar_us=rttvar,
        snd_ssthresh=snd_ssthresh,
        snd_cwnd=snd_cwnd,
        total_retrans=total_retrans,
        **extra,
    )

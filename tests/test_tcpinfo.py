"""struct tcp_info parsing: offsets from the kernel header, by-length decoding, and a live
socket checked against `ss -ti` (an independent decoder of the same struct)."""

from __future__ import annotations

import re
import struct

import pytest

from tcpwatch.model import SocketRecord
from tcpwatch.sources.netlink import NetlinkSource
from tcpwatch.tcp.states import TcpState
from tcpwatch.tcpinfo import BASE_SIZE, parse_tcp_info
from tests.netns import netns_exec, private_netns, requires_root, run_scenario, wait_until

# Offsets and widths from include/uapi/linux/tcp.h (struct tcp_info): field -> (offset, fmt).
LAYOUT = {
    "state": (0, "B"),
    "ca_state": (1, "B"),
    "retransmits": (2, "B"),
    "probes": (3, "B"),
    "backoff": (4, "B"),
    "rto_us": (8, "I"),
    "snd_mss": (16, "I"),
    "rcv_mss": (20, "I"),
    "unacked": (24, "I"),
    "sacked": (28, "I"),
    "lost": (32, "I"),
    "retrans": (36, "I"),
    "last_data_sent_ms": (44, "I"),
    "last_data_recv_ms": (52, "I"),
    "last_ack_recv_ms": (56, "I"),
    "pmtu": (60, "I"),
    "rtt_us": (68, "I"),
    "rttvar_us": (72, "I"),
    "snd_ssthresh": (76, "I"),
    "snd_cwnd": (80, "I"),
    "total_retrans": (100, "I"),
    "bytes_acked": (120, "Q"),
    "bytes_received": (128, "Q"),
    "segs_out": (136, "I"),
    "segs_in": (140, "I"),
    "notsent_bytes": (144, "I"),
    "min_rtt_us": (148, "I"),
    "delivery_rate": (160, "Q"),
    "bytes_sent": (200, "Q"),
    "bytes_retrans": (208, "Q"),
    "snd_wnd": (228, "I"),
    "rcv_wnd": (232, "I"),
}
KERNEL_6_18_SIZE = 280


def synthetic() -> bytes:
    """A 280-byte tcp_info where every field holds a distinct value (its index + 1)."""
    raw = bytearray(KERNEL_6_18_SIZE)
    for index, (offset, fmt) in enumerate(LAYOUT.values()):
        struct.pack_into("=" + fmt, raw, offset, index + 1)
    return bytes(raw)


def test_every_field_comes_from_its_kernel_offset() -> None:
    info = parse_tcp_info(synthetic())
    for index, name in enumerate(LAYOUT):
        assert getattr(info, name) == index + 1, name


@pytest.mark.parametrize("size", [BASE_SIZE, 120, 136, 160, 200, 228, 232, 236, 280])
def test_fields_beyond_the_received_length_are_none(size: int) -> None:
    info = parse_tcp_info(synthetic()[:size])
    for index, (name, (offset, fmt)) in enumerate(LAYOUT.items()):
        present = offset + struct.calcsize(fmt) <= size
        assert getattr(info, name) == (index + 1 if present else None), (name, size)


def test_too_short_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="too short"):
        parse_tcp_info(synthetic()[: BASE_SIZE - 1])


EXCHANGE = r"""
lsock = listener()
c, a = pair(lsock)
c.sendall(b"q" * 1000)
got = 0
while got < 1000:
    got += len(a.recv(4096))
a.sendall(b"r" * 300)
got = 0
while got < 300:
    got += len(c.recv(4096))
report("ready", port=c.getsockname()[1])
command()
"""
SS_FIELDS = {
    "bytes_sent": "bytes_sent",
    "bytes_acked": "bytes_acked",
    "bytes_received": "bytes_received",
    "segs_out": "segs_out",
    "segs_in": "segs_in",
    "mss": "snd_mss",
    "rcvmss": "rcv_mss",
    "pmtu": "pmtu",
    "cwnd": "snd_cwnd",
}


@requires_root
def test_live_tcp_info_agrees_with_ss() -> None:
    with private_netns() as ns, run_scenario(ns, EXCHANGE) as scenario:
        port = scenario.expect("ready")["port"]
        source = NetlinkSource(netns=ns)

        def compare() -> dict[str, tuple[int, int | None]] | None:
            (record,) = [r for r in source.dump() if r.local.port == port]
            info = record.tcp_info
            assert info is not None and record.state is TcpState.ESTABLISHED
            text = netns_exec(ns, "ss", "-tinH", f"sport = :{port}")
            shown = {k: int(v) for k, v in re.findall(r"\b(\w+):(\d+)\b", text)}
            pairs = {key: (shown[key], getattr(info, field)) for key, field in SS_FIELDS.items()}
            return None if any(a != b for a, b in pairs.values()) else pairs

        try:
            pairs = wait_until(compare, timeout=5, what="tcp_info equal to ss -ti")
        finally:
            source.close()
        assert pairs["bytes_received"] == (300, 300)
        assert pairs["bytes_sent"] == (1000, 1000)


def test_a_reused_record_reads_its_ages_at_a_later_time() -> None:
    """A record handed out again by later dumps keeps the ages of the dump that made it;
    read later, the times since the last data and ACK have grown, nothing else."""
    from dataclasses import replace

    from tests.records import record

    socket_record = replace(record(TcpState.ESTABLISHED, raw=synthetic()), dumped_at=1_000.0)
    then = socket_record.tcp_info
    assert then is not None
    later = socket_record.tcp_info_at(1_002.5)
    assert later is not None
    assert later.last_data_sent_ms == then.last_data_sent_ms + 2500
    assert later.last_data_recv_ms == then.last_data_recv_ms + 2500
    assert later.last_ack_recv_ms == then.last_ack_recv_ms + 2500
    assert replace(later, last_data_sent_ms=0, last_data_recv_ms=0, last_ack_recv_ms=0) == replace(
        then, last_data_sent_ms=0, last_data_recv_ms=0, last_ack_recv_ms=0
    )
    assert socket_record.tcp_info_at(999.0) == then  # never younger than the dump
    assert replace(socket_record, dumped_at=None).tcp_info_at(1_002.5) == then


CHATTY = r"""
lsock = listener()
c, a = pair(lsock)
report("ready", port=c.getsockname()[1])
while (line := command()):
    c.sendall(b"x" * 100)
    got = 0
    while got < 100:
        got += len(a.recv(4096))
    report("sent")
"""


@requires_root
def test_live_idle_socket_keeps_its_record_until_traffic_moves() -> None:
    """Polled again, an idle connection comes back as the very same record; a segment
    sent makes a new one, with the new byte counts."""
    with private_netns() as ns, run_scenario(ns, CHATTY) as scenario:
        port = scenario.expect("ready")["port"]
        source = NetlinkSource(netns=ns)
        try:

            def client() -> SocketRecord:
                (record,) = [r for r in source.dump() if r.local.port == port]
                return record

            # Settle: the handshake's last ACK may still move a counter.
            first = wait_until(lambda: (a := client()) is client() and a, what="a reused record")
            assert client() is first and first.timer is None
            scenario.send("send")
            scenario.expect("sent")
            after = wait_until(
                lambda: (r := client()).tcp_info is not None and r.tcp_info.bytes_acked > 1 and r,
                what="the ACK of the data",
            )
            assert after is not first
            assert after.tcp_info is not None and first.tcp_info is not None
            assert after.tcp_info.bytes_acked == first.tcp_info.bytes_acked + 100
            assert after.dumped_at is not None and first.dumped_at is not None
            assert after.dumped_at > first.dumped_at
        finally:
            source.close()

"""Tag rules and thresholds, on records built by hand (the rules are pure functions)."""

from __future__ import annotations

import struct
from dataclasses import replace

import pytest

from tcpwatch.model import SocketRecord, Timer, TimerName
from tcpwatch.tcp.states import TcpState as S
from tcpwatch.tcp.tags import (
    Tag,
    TagThresholds,
    accept_queue_pressure,
    awaiting_accept,
    classify,
    dead_peer_evidence,
)
from tcpwatch.tcpinfo import parse_tcp_info
from tests.records import record as socket_record


def tcp_info_bytes(
    *, retransmits: int = 0, probes: int = 0, backoff: int = 0, unacked: int = 0
) -> bytes:
    """A struct tcp_info in the kernel's layout (232 bytes, as a 5.x kernel sends)."""
    u8 = (1, 0, retransmits, probes, backoff, 0, 0, 0)
    u32 = [0] * 24
    u32[4] = unacked  # rto, ato, snd_mss, rcv_mss, unacked
    return struct.pack("=8B24I", *u8, *u32).ljust(232, b"\0")


def record(
    state: S,
    *,
    inode: int = 1234,
    recv_q: int = 0,
    send_q: int = 0,
    timer: Timer | None = None,
    raw: bytes | None = None,
) -> SocketRecord:
    return socket_record(state, recv_q=recv_q, send_q=send_q, timer=timer, inode=inode, raw=raw)


def test_layout_matches_the_collector_parser() -> None:
    info = parse_tcp_info(tcp_info_bytes(retransmits=4, probes=2, backoff=3, unacked=7))
    assert (info.retransmits, info.probes, info.backoff, info.unacked) == (4, 2, 3, 7)


@pytest.mark.parametrize(
    ("state", "tags"),
    [
        (S.LISTEN, {Tag.LISTENER}),
        (S.SYN_SENT, {Tag.HALF_OPEN}),
        (S.SYN_RECV, {Tag.HALF_OPEN}),
        (S.ESTABLISHED, set()),
        (S.FIN_WAIT2, {Tag.HALF_CLOSED}),
        (S.CLOSE_WAIT, {Tag.HALF_CLOSED}),
        (S.TIME_WAIT, {Tag.LINGERING}),
        (S.FIN_WAIT1, set()),
        (S.LAST_ACK, set()),
        (S.CLOSING, set()),
    ],
)
def test_state_tags(state: S, tags: set[Tag]) -> None:
    assert classify(record(state)) == tags


def test_lingering_after_threshold_only() -> None:
    th = TagThresholds(lingering_s=30.0)
    for state in (S.FIN_WAIT1, S.FIN_WAIT2, S.CLOSING, S.LAST_ACK, S.CLOSE_WAIT):
        assert Tag.LINGERING not in classify(record(state), state_age_s=29.9, thresholds=th)
        assert Tag.LINGERING in classify(record(state), state_age_s=30.0, thresholds=th)
        assert Tag.LINGERING not in classify(record(state), state_age_s=None, thresholds=th)
    assert Tag.LINGERING in classify(
        record(S.FIN_WAIT2), state_age_s=5, thresholds=TagThresholds(lingering_s=5)
    )
    assert Tag.LINGERING not in classify(record(S.ESTABLISHED), state_age_s=1e6)


def test_orphan_is_a_closing_state_with_no_inode() -> None:
    for state in (S.FIN_WAIT1, S.FIN_WAIT2, S.CLOSING, S.LAST_ACK):
        assert Tag.ORPHAN in classify(record(state, inode=0))
        assert Tag.ORPHAN not in classify(record(state, inode=99))
    # TIME_WAIT and SYN_RECV have inode 0 too, but are not orphans.
    assert Tag.ORPHAN not in classify(record(S.TIME_WAIT, inode=0))
    assert Tag.ORPHAN not in classify(record(S.SYN_RECV, inode=0))
    assert classify(record(S.FIN_WAIT2, inode=0), state_age_s=60) == {
        Tag.HALF_CLOSED,
        Tag.LINGERING,
        Tag.ORPHAN,
    }


def test_unaccepted_is_established_or_close_wait_with_no_inode() -> None:
    """Before accept() a child has no file, so inode 0; a process that held it could leave
    ESTABLISHED and CLOSE_WAIT only by closing it (FIN_WAIT1, LAST_ACK)."""
    healthy = tcp_info_bytes()
    for state in (S.ESTABLISHED, S.CLOSE_WAIT):
        assert awaiting_accept(record(state, inode=0))
        assert not awaiting_accept(record(state, inode=99))
        assert Tag.UNACCEPTED in classify(record(state, inode=0))
        assert Tag.UNACCEPTED in classify(record(state, inode=0, raw=healthy))
        assert Tag.UNACCEPTED not in classify(record(state, inode=99, raw=healthy))
    for state in (S.SYN_RECV, S.TIME_WAIT, S.FIN_WAIT1, S.FIN_WAIT2, S.LAST_ACK, S.CLOSING):
        assert not awaiting_accept(record(state, inode=0))
        assert Tag.UNACCEPTED not in classify(record(state, inode=0))
    assert classify(record(S.CLOSE_WAIT, inode=0), state_age_s=60) == {
        Tag.HALF_CLOSED,
        Tag.LINGERING,
        Tag.UNACCEPTED,
    }
    # A peer gone dead while the connection waits for accept(): both tags.
    dying = record(S.ESTABLISHED, inode=0, raw=tcp_info_bytes(retransmits=3, backoff=3, unacked=1))
    assert classify(dying) == {Tag.HALF_OPEN, Tag.UNACCEPTED}


def test_dead_peer_from_tcp_info() -> None:
    est = record(S.ESTABLISHED, raw=tcp_info_bytes(retransmits=3, backoff=3, unacked=2))
    assert dead_peer_evidence(est) == "retransmits=3 backoff=3 unacked=2"
    assert classify(est) == {Tag.HALF_OPEN}
    # Retransmissions with nothing unacknowledged are not evidence.
    assert dead_peer_evidence(record(S.ESTABLISHED, raw=tcp_info_bytes(retransmits=5))) is None
    # Below the thresholds.
    mild = record(S.ESTABLISHED, raw=tcp_info_bytes(retransmits=2, backoff=1, unacked=1))
    assert dead_peer_evidence(mild) is None
    strict = TagThresholds(dead_retransmits=2)
    assert dead_peer_evidence(mild, strict) == "retransmits=2 backoff=1 unacked=1"
    assert classify(mild, thresholds=strict) == {Tag.HALF_OPEN}
    assert classify(record(S.ESTABLISHED, raw=tcp_info_bytes())) == set()


def test_dead_peer_from_keepalive_probes_but_not_zero_window_probes() -> None:
    keepalive = Timer(TimerName.KEEPALIVE, 5000, 2)
    est = record(S.ESTABLISHED, timer=keepalive, raw=tcp_info_bytes(probes=2))
    assert dead_peer_evidence(est) == "keepalive_probes=2"
    persist = Timer(TimerName.PERSIST, 5000, 2)
    assert dead_peer_evidence(replace(est, timer=persist)) is None
    assert dead_peer_evidence(replace(est, timer=None)) is None
    # Without tcp_info (the /proc source), the timer's count is the evidence.
    assert dead_peer_evidence(record(S.ESTABLISHED, timer=keepalive)) == "keepalive_probes=2"
    retrans = Timer(TimerName.RETRANSMIT, 800, 4)
    assert dead_peer_evidence(record(S.ESTABLISHED, timer=retrans)) == "retransmits=4"
    assert (
        dead_peer_evidence(record(S.ESTABLISHED, timer=Timer(TimerName.RETRANSMIT, 1, 1))) is None
    )
    assert dead_peer_evidence(record(S.CLOSE_WAIT, timer=retrans)) is None


def test_accept_queue_pressure() -> None:
    assert accept_queue_pressure(record(S.LISTEN, recv_q=9, send_q=10)) == pytest.approx(0.9)
    assert accept_queue_pressure(record(S.LISTEN, recv_q=11, send_q=10)) == pytest.approx(1.1)
    assert accept_queue_pressure(record(S.LISTEN, recv_q=7, send_q=10)) is None
    assert accept_queue_pressure(
        record(S.LISTEN, recv_q=7, send_q=10), TagThresholds(accept_queue_ratio=0.5)
    ) == pytest.approx(0.7)
    assert accept_queue_pressure(record(S.LISTEN, recv_q=0, send_q=0)) is None
    assert accept_queue_pressure(record(S.ESTABLISHED, recv_q=9, send_q=10)) is None

"""The sock_diag parser on dumps captured from a real kernel (tests/fixtures/capture.py).

The expected values come from `ss -tanHoe`, run right after the capture, so the parser is
checked against an independent decoder of the same kernel answer.
"""

from __future__ import annotations

import dataclasses
import errno
import struct
from pathlib import Path

import pytest

from tcpwatch.model import Family, SocketRecord, TimerName
from tcpwatch.sources import netlink
from tcpwatch.sources.base import SourceError
from tcpwatch.sources.netlink import (
    ACCELERATED,
    NLM_F_DUMP_INTR,
    NLMSG_DONE,
    NLMSG_ERROR,
    DumpParser,
    parse_dump,
)
from tcpwatch.tcp.states import TcpState
from tests.netns import SsSocket, parse_ss

FIXTURES = Path(__file__).resolve().parent / "fixtures"
WITH_INFO = (FIXTURES / "zoo_info.bin").read_bytes()
WITHOUT_INFO = (FIXTURES / "zoo_noinfo.bin").read_bytes()
SS_ROWS = parse_ss((FIXTURES / "zoo_ss.txt").read_text())
NLMSGHDR = struct.Struct("=IHHII")
EXPIRES_AT = 68  # idiag_expires, from the message's start
# The reuse tests run on both hit paths: the C extension's and the Python loop's.
HIT_PATHS = pytest.mark.parametrize(
    "accelerated",
    [
        pytest.param(False, id="python"),
        pytest.param(
            True,
            id="c",
            marks=pytest.mark.skipif(
                not ACCELERATED,
                reason="the C extension tcpwatch.sources._reuse was not built (no C compiler "
                "when tcpwatch was installed)",
            ),
        ),
    ],
)


def by_cookie(records: list[SocketRecord]) -> dict[int, SocketRecord]:
    cookies = {record.cookie: record for record in records}
    assert len(cookies) == len(records), "cookies must be unique"
    return cookies  # type: ignore[return-value]


def assert_matches_ss(record: SocketRecord, row: SsSocket) -> None:
    assert record.state.value == row.state
    assert (record.local.address, record.local.port) == row.local
    assert (record.remote.address, record.remote.port) == row.remote
    assert (record.recv_q, record.send_q) == (row.recv_q, row.send_q)
    assert (record.inode, record.uid) == (row.inode, row.uid)
    if row.timer is None:
        assert record.timer is None
    else:
        assert record.timer is not None
        assert record.timer.name.value == row.timer
        assert record.timer.retrans == row.timer_retrans
        # ss ran just after the capture, and rounds ("59sec", "119min").
        assert row.timer_ms is not None and row.timer_resolution_ms is not None
        assert abs(record.timer.expires_ms - row.timer_ms) <= row.timer_resolution_ms + 1000


@pytest.mark.parametrize("data", [WITH_INFO, WITHOUT_INFO], ids=["tcp_info", "no_tcp_info"])
def test_every_socket_matches_ss(data: bytes) -> None:
    records = by_cookie(parse_dump(data))
    rows = {row.cookie: row for row in SS_ROWS}
    assert set(records) == set(rows)
    for cookie, row in rows.items():
        assert_matches_ss(records[cookie], row)


def test_fixture_covers_every_holdable_state_in_both_families() -> None:
    records = parse_dump(WITH_INFO)
    states = {record.state for record in records}
    assert states == set(TcpState) - {TcpState.CLOSE, TcpState.CLOSING, TcpState.CLOSED}
    assert {record.family for record in records} == {Family.IPV4, Family.IPV6}
    v6_states = {record.state for record in records if record.family is Family.IPV6}
    assert {TcpState.LISTEN, TcpState.ESTABLISHED, TcpState.TIME_WAIT} <= v6_states


def test_addresses_are_spelled_like_ss() -> None:
    listeners = {
        (r.local.address, r.local.port) for r in parse_dump(WITH_INFO) if r.state is TcpState.LISTEN
    }
    assert ("0.0.0.0", 7001) in listeners  # IPv4 wildcard
    assert ("127.0.0.1", 7002) in listeners  # IPv4 specific
    assert ("::", 7003) in listeners  # IPv6 wildcard, no brackets in the data
    assert ("::1", 7004) in listeners
    mapped = [r for r in parse_dump(WITH_INFO) if r.local.address == "::ffff:127.0.0.1"]
    assert mapped and mapped[0].family is Family.IPV6 and mapped[0].local.port == 7005


def test_listener_queue_and_unaccepted_child() -> None:
    records = parse_dump(WITH_INFO)
    (queue_listener,) = [r for r in records if r.state is TcpState.LISTEN and r.local.port == 7006]
    assert (queue_listener.recv_q, queue_listener.send_q) == (1, 16)  # accept queue, backlog
    (child,) = [r for r in records if r.state is TcpState.ESTABLISHED and r.local.port == 7006]
    assert child.inode == 0  # not accepted yet: no file, no owner


def test_timers_and_inodes_by_kind_of_socket() -> None:
    records = parse_dump(WITH_INFO)
    for record in records:
        if record.state is TcpState.TIME_WAIT:
            assert record.timer is not None and record.timer.name is TimerName.TIMEWAIT
            assert 55_000 < record.timer.expires_ms <= 60_000
            assert record.inode == 0 and record.tcp_info_raw is None
        elif record.state is TcpState.SYN_RECV:
            assert record.timer is not None and record.timer.name is TimerName.RETRANSMIT
            assert record.inode == 0 and record.tcp_info_raw is None
        elif record.state is TcpState.SYN_SENT:
            assert record.timer is not None and record.timer.name is TimerName.RETRANSMIT
        elif record.state is TcpState.FIN_WAIT1:
            assert record.timer is not None and record.timer.name is TimerName.PERSIST
        else:
            assert record.tcp_info_raw is not None
    keepalive = [r for r in records if r.timer and r.timer.name is TimerName.KEEPALIVE]
    assert len(keepalive) == 1 and keepalive[0].remote.port == 7001


def test_tcp_info_belongs_to_its_socket() -> None:
    for record in parse_dump(WITH_INFO):
        info = record.tcp_info
        if info is not None:
            assert info.state == record.state.kernel
            assert info.bytes_acked is not None and info.rcv_wnd is not None
    assert all(record.tcp_info_raw is None for record in parse_dump(WITHOUT_INFO))


def test_fast_records_equal_constructed_ones() -> None:
    for record in parse_dump(WITH_INFO):
        values = {f.name: getattr(record, f.name) for f in dataclasses.fields(SocketRecord)}
        rebuilt = SocketRecord(**values)
        assert rebuilt == record and hash(rebuilt) == hash(record)


def test_parser_reuses_endpoints_and_layouts_across_polls() -> None:
    parser = DumpParser()
    first: list[SocketRecord] = []
    second: list[SocketRecord] = []
    for out in (first, second):
        for chunk in split_replies(WITH_INFO):
            parser.feed(chunk, out)
    assert first == second
    assert all(a.local is b.local for a, b in zip(first, second, strict=True))


def split_replies(data: bytes) -> list[bytes]:
    """Cut the two captured replies apart at their NLMSG_DONE messages."""
    chunks, start, off = [], 0, 0
    while off < len(data):
        length, kind, _flags, _seq, _pid = NLMSGHDR.unpack_from(data, off)
        off += (length + 3) & ~3
        if kind == NLMSG_DONE:
            chunks.append(data[start:off])
            start = off
    return chunks


def first_message_length() -> int:
    return NLMSGHDR.unpack_from(WITH_INFO, 0)[0]


def error_message(code: int) -> bytes:
    request = NLMSGHDR.pack(72, 20, 0x301, 1, 0)
    return NLMSGHDR.pack(16 + 4 + 16, NLMSG_ERROR, 0, 1, 0) + struct.pack("=i", -code) + request


def malformed_cases() -> dict[str, tuple[bytes, str]]:
    length = first_message_length()
    head = bytearray(WITH_INFO[:length])
    too_long = bytearray(head)
    struct.pack_into("=I", too_long, 0, length + 400)
    too_small = bytearray(head)
    struct.pack_into("=I", too_small, 0, 8)
    short_message = bytearray(head[:60])
    struct.pack_into("=I", short_message, 0, 60)
    bad_attribute = bytearray(head)
    struct.pack_into("=H", bad_attribute, 88, 2000)  # first attribute claims 2000 bytes
    cut_attribute = bytearray(head[: 88 + 2])
    struct.pack_into("=I", cut_attribute, 0, 90)
    bad_state = bytearray(head)
    bad_state[17] = 42
    return {
        "truncated header": (WITH_INFO[:10], "truncated netlink header"),
        "length beyond data": (bytes(too_long), "bad netlink message length"),
        "length below header": (bytes(too_small), "bad netlink message length"),
        "cut in the middle": (WITH_INFO[: length - 7], "bad netlink message length"),
        "cut between messages": (WITH_INFO[: 2 * length], "ends without NLMSG_DONE"),
        "short socket message": (bytes(short_message), "shorter than inet_diag_msg"),
        "attribute overruns": (bytes(bad_attribute), "truncated attribute"),
        "attribute header cut": (bytes(cut_attribute), "truncated attribute header"),
        "unknown state": (bytes(bad_state), "unknown TCP state 42"),
        "EPERM": (error_message(errno.EPERM), "permission denied"),
        "ENOENT": (error_message(errno.ENOENT), "tcp_diag"),
        "EOPNOTSUPP": (error_message(errno.EOPNOTSUPP), "tcp_diag"),
        "done with error": (
            NLMSGHDR.pack(20, NLMSG_DONE, 0, 1, 0) + struct.pack("=i", -errno.EINVAL),
            "Invalid argument",
        ),
    }


@pytest.mark.parametrize("case", sorted(malformed_cases()))
def test_malformed_input_is_one_clear_line(case: str) -> None:
    data, expected = malformed_cases()[case]
    with pytest.raises(SourceError) as raised:
        parse_dump(data)
    message = str(raised.value)
    assert expected in message
    assert "\n" not in message


def test_interrupted_dump_is_reported() -> None:
    flagged = bytearray(split_replies(WITH_INFO)[0])
    struct.pack_into("=H", flagged, 6, NLM_F_DUMP_INTR)
    out: list[SocketRecord] = []
    done, interrupted = DumpParser().feed(bytes(flagged), out)
    assert done and interrupted and out


def test_messages_of_another_dump_are_skipped() -> None:
    out: list[SocketRecord] = []
    done, _ = DumpParser().feed(split_replies(WITH_INFO)[0], out, seq=99)
    assert not done and out == []


def poll_fixture(parser: DumpParser, chunks: list[bytes], dumped_at: float) -> list[SocketRecord]:
    """One poll over captured replies, each with the sequence number it was captured with."""
    out: list[SocketRecord] = []
    parser.start_poll(len(out), dumped_at)
    for chunk in chunks:
        (_, _, _, seq, _) = NLMSGHDR.unpack_from(chunk, 0)
        parser.feed(chunk, out, seq)
    return out


def message_of(chunks: list[bytes], cookie: int) -> tuple[int, int]:
    """(reply index, offset) of the socket message with `cookie`."""
    for index, chunk in enumerate(chunks):
        off = 0
        while off < len(chunk):
            length, kind, _, _, _ = NLMSGHDR.unpack_from(chunk, off)
            if kind == 20 and struct.unpack_from("=Q", chunk, off + 60)[0] == cookie:
                return index, off
            off += (length + 3) & ~3
    raise AssertionError(f"no message for cookie {cookie:#x}")


def info_at(chunks: list[bytes], cookie: int) -> int:
    """Where `cookie`'s tcp_info starts in its message (after its attribute header)."""
    index, off = message_of(chunks, cookie)
    chunk = chunks[index]
    length = NLMSGHDR.unpack_from(chunk, off)[0]
    pos = 88  # nlmsghdr + inet_diag_msg, then the attributes
    while pos < length:
        size, kind = struct.unpack_from("=HH", chunk, off + pos)
        if kind == 2:  # INET_DIAG_INFO
            return pos + 4
        pos += (size + 3) & ~3
    raise AssertionError("no tcp_info")


def edited(chunks: list[bytes], cookie: int, at: int, value: bytes) -> list[bytes]:
    """The replies with `value` written at offset `at` of `cookie`'s message."""
    index, off = message_of(chunks, cookie)
    chunk = bytearray(chunks[index])
    chunk[off + at : off + at + len(value)] = value
    return [bytes(chunk) if n == index else c for n, c in enumerate(chunks)]


def idle_established(records: list[SocketRecord]) -> SocketRecord:
    return next(
        r
        for r in records
        if r.state is TcpState.ESTABLISHED and r.timer is None and r.tcp_info_raw is not None
    )


@HIT_PATHS
def test_reuse_hands_out_the_same_record_while_a_socket_is_unchanged(accelerated: bool) -> None:
    chunks = split_replies(WITH_INFO)
    parser = DumpParser(reuse=True, accelerated=accelerated)
    first = poll_fixture(parser, chunks, 100.0)
    second = poll_fixture(parser, chunks, 101.0)
    assert second == first
    for a, b in zip(first, second, strict=True):
        # A running timer counts down between dumps: those are never reused.
        assert (a is b) == (a.timer is None)
    assert all(r.dumped_at == 100.0 for r in first)
    assert {r.dumped_at for r in second if r.timer is not None} == {101.0}


@HIT_PATHS
def test_reuse_ignores_the_tcp_info_ages_and_nothing_else(accelerated: bool) -> None:
    chunks = split_replies(WITH_INFO)
    parser = DumpParser(reuse=True, accelerated=accelerated)
    first = poll_fixture(parser, chunks, 100.0)
    idle = idle_established(first)
    info = info_at(chunks, idle.cookie)
    # Only the milliseconds since the last data and ACK moved: the same record.
    aged = edited(chunks, idle.cookie, info + 44, struct.pack("=4I", 5000, 0, 5001, 5002))
    second = poll_fixture(parser, aged, 101.0)
    assert next(r for r in second if r.cookie == idle.cookie) is idle
    # Bytes received moved (after the ages): a new record with the new value.
    grown = edited(aged, idle.cookie, info + 128, struct.pack("=Q", 123456))
    third = poll_fixture(parser, grown, 102.0)
    fresh = next(r for r in third if r.cookie == idle.cookie)
    assert fresh is not idle and fresh.dumped_at == 102.0
    assert fresh.tcp_info is not None and fresh.tcp_info.bytes_received == 123456
    # Recv-Q moved (before the ages): a new record again.
    queued = edited(grown, idle.cookie, 16 + 4 + 48 + 4, struct.pack("=I", 77))
    fourth = poll_fixture(parser, queued, 103.0)
    assert next(r for r in fourth if r.cookie == idle.cookie).recv_q == 77


@HIT_PATHS
def test_reuse_remembers_only_the_last_dump(accelerated: bool) -> None:
    """A socket missing from one dump is parsed afresh when it shows up again: the parser
    keeps nothing of sockets that are gone, so churn cannot grow it."""
    v4, v6 = split_replies(WITH_INFO)
    parser = DumpParser(reuse=True, accelerated=accelerated)
    first = poll_fixture(parser, [v4, v6], 100.0)
    poll_fixture(parser, [v4], 101.0)
    third = poll_fixture(parser, [v4, v6], 102.0)
    v6_cookies = {r.cookie for r in first if r.family is Family.IPV6}
    assert v6_cookies
    for a, b in zip(first, third, strict=True):
        assert (a is b) == (a.timer is None and a.cookie not in v6_cookies)


@HIT_PATHS
def test_reuse_skips_other_dumps_and_reports_interruptions(accelerated: bool) -> None:
    chunks = split_replies(WITH_INFO)
    parser = DumpParser(reuse=True, accelerated=accelerated)
    poll_fixture(parser, chunks, 100.0)
    parser.start_poll(0, 101.0)
    out: list[SocketRecord] = []
    assert parser.feed(chunks[0], out, seq=99) == (False, False)
    assert out == []  # a leftover of another dump, however familiar
    flagged = bytearray(chunks[0])
    off = 0
    while off < len(flagged):
        length = NLMSGHDR.unpack_from(flagged, off)[0]
        struct.pack_into("=H", flagged, off + 6, NLM_F_DUMP_INTR | 2)
        off += (length + 3) & ~3
    done, interrupted = parser.feed(bytes(flagged), out, seq=1)
    assert done and interrupted and len(out) == len(parse_dump(chunks[0]))


def test_without_reuse_every_dump_builds_new_records() -> None:
    chunks = split_replies(WITH_INFO)
    parser = DumpParser()
    first = poll_fixture(parser, chunks, 100.0)
    second = poll_fixture(parser, chunks, 101.0)
    assert second == first
    assert not any(a is b for a, b in zip(first, second, strict=True))
    assert all(r.dumped_at is None for r in first)


@pytest.mark.skipif(not ACCELERATED, reason="the C extension tcpwatch.sources._reuse was not built")
def test_both_hit_paths_hand_out_the_same_records_poll_after_poll() -> None:
    """Every other idle socket changes between polls (bytes received), so hits and misses
    alternate within a reply: the C and the Python hit paths reuse exactly the same ones."""
    chunks = split_replies(WITH_INFO)
    idle = [r.cookie for r in parse_dump(WITH_INFO) if r.timer is None and r.tcp_info_raw]
    assert len(idle) >= 4
    waiting = [r for r in parse_dump(WITH_INFO) if r.state is TcpState.TIME_WAIT]
    assert waiting
    polls = [chunks]
    for step in range(1, 4):
        changed = polls[-1]
        for cookie in idle[step % 2 :: 2]:
            at = info_at(changed, cookie) + 128
            changed = edited(changed, cookie, at, struct.pack("=Q", step * 1000 + 1))
        for record in waiting:  # one second later, one second less to go
            assert record.timer is not None
            left = struct.pack("=I", record.timer.expires_ms - step * 1000)
            changed = edited(changed, record.cookie, EXPIRES_AT, left)
        polls.append(changed)
    runs = []
    for accelerated in (False, True):
        parser = DumpParser(reuse=True, accelerated=accelerated)
        outs = [poll_fixture(parser, data, 100.0 + n) for n, data in enumerate(polls)]
        runs.append(outs)
    python_run, c_run = runs
    for n in range(1, len(polls)):
        assert c_run[n] == python_run[n]
        reused_python = [a is b for a, b in zip(python_run[n - 1], python_run[n], strict=True)]
        reused_c = [a is b for a, b in zip(c_run[n - 1], c_run[n], strict=True)]
        assert reused_c == reused_python
        assert 0 < sum(reused_c) < len(reused_c)
        kept = {id(r) for r in c_run[n - 1]}
        assert all(id(r) in kept for r in c_run[n] if r.state is TcpState.TIME_WAIT)
        assert [r.dumped_at for r in c_run[n]] == [r.dumped_at for r in python_run[n]]


@HIT_PATHS
def test_reuse_follows_a_time_wait_counting_down_but_not_a_re_armed_one(
    accelerated: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TIME_WAIT socket's 2MSL deadline is fixed: while only its expiry counts down with
    the clock, the record is reused (its timer read as of its `dumped_at`); a re-armed
    timer (a retransmitted FIN restarts 2MSL) moves the deadline: a new record."""
    chunks = split_replies(WITH_INFO)
    parser = DumpParser(reuse=True, accelerated=accelerated)
    first = poll_fixture(parser, chunks, 100.0)
    waiting = next(r for r in first if r.state is TcpState.TIME_WAIT)
    assert waiting.timer is not None and waiting.timer.name is TimerName.TIMEWAIT
    expires = waiting.timer.expires_ms
    later = edited(chunks, waiting.cookie, EXPIRES_AT, struct.pack("=I", expires - 2500))
    keys: list[object] = []
    masked = netlink._masked
    monkeypatch.setattr(netlink, "_masked", lambda *a: keys.append(masked(*a)) or keys[-1])
    second = poll_fixture(parser, later, 102.5)
    assert next(r for r in second if r.cookie == waiting.cookie) is waiting
    # Python builds keys only for the messages that are not hits: with the C extension,
    # for the other running timers and the other TIME_WAIT sockets (whose expiry did not
    # count down, so their deadline moved); a hit that C missed would come here too.
    if accelerated:
        assert len(keys) == sum(1 for a, b in zip(first, second, strict=True) if a is not b)
    rearmed = edited(chunks, waiting.cookie, EXPIRES_AT, struct.pack("=I", expires + 20_000))
    third = poll_fixture(parser, rearmed, 103.5)
    fresh = next(r for r in third if r.cookie == waiting.cookie)
    assert fresh is not waiting and fresh.dumped_at == 103.5
    assert fresh.timer is not None and fresh.timer.expires_ms == expires + 20_000
    # Other running timers (retransmit, keepalive) count down every dump: never reused.
    others = [r for r in third if r.timer is not None and r.timer.name is not TimerName.TIMEWAIT]
    fourth = poll_fixture(parser, rearmed, 104.5)
    assert others and not any(a is b for a in others for b in fourth)


def without(chunks: list[bytes], cookie: int) -> list[bytes]:
    """The replies with `cookie`'s message cut out: that socket is gone."""
    index, off = message_of(chunks, cookie)
    chunk = chunks[index]
    length = NLMSGHDR.unpack_from(chunk, off)[0]
    cut = chunk[:off] + chunk[off + ((length + 3) & ~3) :]
    return [cut if n == index else c for n, c in enumerate(chunks)]


@HIT_PATHS
def test_each_dump_says_what_changed_since_the_one_before(accelerated: bool) -> None:
    """`fresh` is every record not handed out before, `outdated` the last dump's records
    they replace, `vanished()` the last dump's records of sockets no longer there: with the
    reused records, exactly the dump."""
    chunks = split_replies(WITH_INFO)
    parser = DumpParser(reuse=True, accelerated=accelerated)
    first = poll_fixture(parser, chunks, 100.0)
    assert [id(r) for r in parser.fresh] == [id(r) for r in first]  # nothing to reuse yet
    assert parser.outdated == [] and parser.vanished() == ()
    idle = [r.cookie for r in first if r.timer is None and r.tcp_info_raw is not None]
    changed, closed = idle[0], idle[1]
    later = edited(chunks, changed, info_at(chunks, changed) + 128, struct.pack("=Q", 99))
    later = without(later, closed)
    second = poll_fixture(parser, later, 101.0)
    before = {id(r) for r in first}
    new_objects = [r for r in second if id(r) not in before]
    assert [id(r) for r in parser.fresh] == [id(r) for r in new_objects]
    assert changed in {r.cookie for r in parser.fresh}
    # Running timers (retransmit, keepalive) change every dump: fresh each time.
    assert all(
        id(r) not in before for r in second if r.timer and r.timer.name is not TimerName.TIMEWAIT
    )
    old_by_cookie = by_cookie(first)
    assert [id(r) for r in parser.outdated] == [
        id(old_by_cookie[r.cookie]) for r in parser.fresh if r.cookie in old_by_cookie
    ]
    assert [r.cookie for r in parser.vanished()] == [closed]
    assert parser.vanished()[0] is old_by_cookie[closed]
    # The same bytes a second later: what has a timer is fresh (a 2MSL that did not count
    # down was re-armed), the rest is reused.
    third = poll_fixture(parser, later, 102.0)
    assert parser.vanished() == ()
    assert {r.cookie for r in parser.fresh} == {r.cookie for r in third if r.timer}

"""Inference rules of the tracker, through the real Tracker on hand-built snapshots."""

from __future__ import annotations

import dataclasses
import itertools
import struct

import pytest

from tcpwatch.model import (
    EventKind,
    ProcessInfo,
    Snapshot,
    SocketRecord,
    SourceKind,
    Timer,
    TimerName,
)
from tcpwatch.tcp.states import TcpState
from tcpwatch.tcp.tags import Tag, TagThresholds
from tcpwatch.tracker import Tracker, TrackerSettings, first_view
from tests.records import record

S = TcpState
LO = "127.0.0.1"
_cookies = itertools.count(0x100)


def sock(
    state: TcpState,
    local: tuple[str, int],
    remote: tuple[str, int] = ("0.0.0.0", 0),
    *,
    cookie: int | None = None,
    recv_q: int = 0,
    send_q: int = 0,
    timer: Timer | None = None,
    inode: int = 0,
) -> SocketRecord:
    return record(
        state,
        local,
        remote,
        cookie=cookie,
        recv_q=recv_q,
        send_q=send_q,
        timer=timer,
        inode=inode,
    )


def snap(t: float, *records: SocketRecord, owners: dict[int, ProcessInfo] | None = None):
    return Snapshot(
        taken_at=1_800_000_000.0 + t,
        monotonic=1000.0 + t,
        host="test",
        netns=None,
        source=SourceKind.NETLINK,
        sockets=tuple(records),
        owners=owners or {},
    )


def life(events, conn_id: str) -> list[TcpState]:
    """Concatenate one connection's event paths (each path starts where the last ended)."""
    states: list[TcpState] = []
    for event in events:
        if event.connection.id != conn_id:
            continue
        assert event.path[-1] is event.to_state
        if event.from_state is None:
            assert not states
            states.extend(event.path)
        else:
            assert event.path[0] is event.from_state is states[-1]
            states.extend(event.path[1:])
    return states


class Pair:
    """A client and its accepted server end on loopback, each with its own cookie."""

    def __init__(self, port: int = 8080, client_port: int = 40000) -> None:
        self.server = (LO, port)
        self.client = (LO, client_port)
        self.c_cookie = next(_cookies)
        self.s_cookie = next(_cookies)

    def c(self, state: TcpState, **kw) -> SocketRecord:
        return sock(state, self.client, self.server, cookie=self.c_cookie, **kw)

    def s(self, state: TcpState, **kw) -> SocketRecord:
        return sock(state, self.server, self.client, cookie=self.s_cookie, **kw)

    @property
    def cid(self) -> str:
        return f"0x{self.c_cookie:x}"

    @property
    def sid(self) -> str:
        return f"0x{self.s_cookie:x}"


def run(*polls: tuple[SocketRecord, ...], settings: TrackerSettings | None = None):
    tracker = Tracker(settings) if settings else Tracker()
    deltas = [tracker.update(snap(i * 0.2, *records)) for i, records in enumerate(polls)]
    events = [e for d in deltas for e in d.events]
    return tracker, deltas, events


def listener(port: int = 8080, address: str = LO) -> SocketRecord:
    return sock(S.LISTEN, (address, port), cookie=port, inode=port)


def test_first_sighting_outgoing_and_accepted() -> None:
    p = Pair()
    _, deltas, events = run((listener(), p.c(S.ESTABLISHED), p.s(S.ESTABLISHED)))
    assert set(deltas[0].new) == {"0x1f90", p.cid, p.sid}
    by_id = {e.connection.id: e for e in events}
    assert by_id[p.cid].path == (S.SYN_SENT, S.ESTABLISHED)
    assert by_id[p.sid].path == (S.SYN_RECV, S.ESTABLISHED)
    assert by_id[p.cid].inferred and by_id[p.sid].inferred
    assert by_id["0x1f90"].path == (S.LISTEN,) and not by_id["0x1f90"].inferred
    assert all(e.kind is EventKind.NEW and e.from_state is None for e in events)
    assert "8080" in by_id[p.sid].reason


@pytest.mark.parametrize("address", ["0.0.0.0", "::"])
def test_accepted_by_wildcard_listener(address: str) -> None:
    p = Pair()
    _, _, events = run((listener(address=address), p.s(S.ESTABLISHED)))
    assert [e.path for e in events if e.connection.id == p.sid] == [(S.SYN_RECV, S.ESTABLISHED)]


def test_without_listener_a_connection_is_outgoing() -> None:
    p = Pair()
    _, _, events = run((p.s(S.ESTABLISHED),))
    assert events[0].path == (S.SYN_SENT, S.ESTABLISHED)


def test_observed_handshake_is_not_inferred() -> None:
    p = Pair()
    _, _, events = run((p.c(S.SYN_SENT),), (p.c(S.ESTABLISHED),))
    assert [(e.kind, e.path, e.inferred) for e in events] == [
        (EventKind.NEW, (S.SYN_SENT,), False),
        (EventKind.TRANSITION, (S.SYN_SENT, S.ESTABLISHED), False),
    ]


def test_syn_recv_request_sock_becomes_the_child_by_cookie() -> None:
    p = Pair()
    _, deltas, events = run((listener(), p.s(S.SYN_RECV)), (listener(), p.s(S.ESTABLISHED)))
    assert deltas[1].new == () and deltas[1].changed == (p.sid,)
    assert life(events, p.sid) == [S.SYN_RECV, S.ESTABLISHED]


def test_active_close_with_time_wait_by_cookie() -> None:
    p = Pair()
    _, deltas, events = run(
        (listener(), p.c(S.ESTABLISHED), p.s(S.ESTABLISHED)),
        (listener(), p.c(S.TIME_WAIT)),
    )
    assert life(events, p.cid) == [
        S.SYN_SENT, S.ESTABLISHED, S.FIN_WAIT1, S.FIN_WAIT2, S.TIME_WAIT
    ]  # fmt: skip
    # The server end vanished while the client reached TIME_WAIT: a passive close.
    assert life(events, p.sid) == [
        S.SYN_RECV, S.ESTABLISHED, S.CLOSE_WAIT, S.LAST_ACK, S.CLOSED
    ]  # fmt: skip
    assert deltas[1].gone == (p.sid,)
    assert deltas[1].connections[p.sid].gone_at is not None
    assert deltas[1].connections[p.cid].state is S.TIME_WAIT


def test_reset_when_both_ends_vanish() -> None:
    p = Pair()
    _, _, events = run((listener(), p.c(S.ESTABLISHED), p.s(S.ESTABLISHED)), (listener(),))
    assert life(events, p.cid)[-2:] == [S.ESTABLISHED, S.CLOSED]
    assert life(events, p.sid)[-2:] == [S.ESTABLISHED, S.CLOSED]
    gone = [e for e in events if e.kind is EventKind.GONE]
    assert all(not e.inferred for e in gone)
    assert all("reset" in e.reason for e in gone)


def test_simultaneous_close_when_both_ends_reach_time_wait() -> None:
    p = Pair()
    _, _, events = run(
        (listener(), p.c(S.ESTABLISHED), p.s(S.ESTABLISHED)),
        (listener(), p.c(S.TIME_WAIT), p.s(S.TIME_WAIT)),
    )
    for conn_id in (p.cid, p.sid):
        assert life(events, conn_id)[1:] == [
            S.ESTABLISHED, S.FIN_WAIT1, S.CLOSING, S.TIME_WAIT
        ]  # fmt: skip


def test_passive_close_observed_step_by_step() -> None:
    p = Pair()
    _, _, events = run(
        (listener(), p.s(S.ESTABLISHED), p.c(S.ESTABLISHED)),
        (listener(), p.s(S.CLOSE_WAIT, recv_q=1), p.c(S.FIN_WAIT2)),
        (listener(), p.c(S.TIME_WAIT)),
    )
    server = [e for e in events if e.connection.id == p.sid]
    assert [(e.path, e.inferred) for e in server[1:]] == [
        ((S.ESTABLISHED, S.CLOSE_WAIT), False),
        ((S.CLOSE_WAIT, S.LAST_ACK, S.CLOSED), True),
    ]
    client = [e for e in events if e.connection.id == p.cid]
    assert client[1].path == (S.ESTABLISHED, S.FIN_WAIT1, S.FIN_WAIT2)
    assert client[2].path == (S.FIN_WAIT2, S.TIME_WAIT)


def test_history_marks_only_polled_states_observed() -> None:
    p = Pair()
    tracker, deltas, _ = run(
        (listener(), p.c(S.ESTABLISHED), p.s(S.ESTABLISHED)),
        (listener(), p.c(S.TIME_WAIT)),
    )
    observed = {S.ESTABLISHED, S.TIME_WAIT}
    history = deltas[-1].connections[p.cid].history
    assert [(h.to_state, h.inferred) for h in history] == [
        (s, s not in observed)
        for s in (S.SYN_SENT, S.ESTABLISHED, S.FIN_WAIT1, S.FIN_WAIT2, S.TIME_WAIT)
    ]
    assert tracker.latest(p.cid) == p.c(S.TIME_WAIT)


def test_retention_drops_gone_connections() -> None:
    p = Pair()
    settings = TrackerSettings(retention_s=0.5)
    tracker = Tracker(settings)
    tracker.update(snap(0, p.c(S.ESTABLISHED)))
    assert p.cid in tracker.update(snap(0.2)).connections
    assert p.cid in tracker.update(snap(0.6)).connections
    assert p.cid not in tracker.update(snap(0.8)).connections


def test_history_is_capped() -> None:
    p = Pair()
    tracker = Tracker(TrackerSettings(history_cap=3))
    states = [S.ESTABLISHED, S.CLOSE_WAIT] * 5
    delta = None
    for i, state in enumerate(states):
        delta = tracker.update(snap(i, p.c(state)))
    assert delta is not None
    assert len(delta.connections[p.cid].history) == 3


def test_unchanged_connections_keep_their_objects() -> None:
    p = Pair()
    tracker = Tracker()
    tw = Timer(TimerName.TIMEWAIT, 60000, 0)
    first = tracker.update(snap(0, p.c(S.ESTABLISHED), p.s(S.TIME_WAIT, timer=tw)))
    counted_down = Timer(TimerName.TIMEWAIT, 59800, 0)
    second = tracker.update(snap(0.2, p.c(S.ESTABLISHED), p.s(S.TIME_WAIT, timer=counted_down)))
    assert second.events == () and second.changed == ()
    assert second.connections[p.cid] is first.connections[p.cid]
    assert second.connections[p.sid] is first.connections[p.sid]
    assert tracker.latest(p.sid).timer == counted_down
    third = tracker.update(snap(0.4, p.c(S.ESTABLISHED, send_q=10), p.s(S.TIME_WAIT, timer=tw)))
    assert third.changed == (p.cid,) and third.events == ()
    assert third.connections[p.cid].record.send_q == 10
    assert third.connections[p.cid].state_since is None


def test_proc_source_keys_by_tuple_and_reuse_is_a_new_connection() -> None:
    client = sock(S.ESTABLISHED, (LO, 40000), (LO, 8080))
    again = sock(S.TIME_WAIT, (LO, 40000), (LO, 8080))
    tracker, deltas, events = run((client,), (again,), (client,))
    ids = [e.connection.id for e in events]
    assert ids[0] == "127.0.0.1:40000-127.0.0.1:8080"
    assert [e.kind for e in events] == [
        EventKind.NEW, EventKind.TRANSITION, EventKind.GONE, EventKind.NEW
    ]  # fmt: skip
    assert ids[3] != ids[0]
    del tracker, deltas


def test_owner_appearing_later_refreshes_process() -> None:
    p = Pair()
    tracker = Tracker()
    tracker.update(snap(0, p.c(S.ESTABLISHED, inode=7)))
    proc = ProcessInfo(pid=1, name="curl", cmdline=("curl",), user="root")
    delta = tracker.update(snap(0.2, p.c(S.ESTABLISHED, inode=7), owners={7: proc}))
    assert delta.connections[p.cid].process == proc


def test_a_socket_nobody_holds_has_no_process_but_remembers_its_former_owner() -> None:
    """TIME_WAIT (inode 0): no process holds it, as `ss` shows; whose it was stays known."""
    p = Pair()
    nginx = ProcessInfo(pid=1201, name="nginx", cmdline=("nginx",), user="www-data")
    tracker = Tracker()
    owned = tracker.update(snap(0, p.c(S.ESTABLISHED, inode=7), owners={7: nginx}))
    assert owned.connections[p.cid].process == nginx
    assert owned.connections[p.cid].former_process is None
    timer = Timer(TimerName.TIMEWAIT, 60_000, 0)
    closed = tracker.update(snap(0.2, p.c(S.TIME_WAIT, timer=timer), owners={7: nginx}))
    conn = closed.connections[p.cid]
    assert conn.process is None
    assert conn.former_process == nginx
    assert [e.connection.former_process for e in closed.events] == [nginx]
    # A re-armed timer rebuilds the connection: still nobody's, still nginx's before.
    rearmed = Timer(TimerName.TIMEWAIT, 59_000, 0)
    later = tracker.update(snap(5, p.c(S.TIME_WAIT, timer=rearmed)))
    assert later.connections[p.cid] is not conn
    assert later.connections[p.cid].process is None
    assert later.connections[p.cid].former_process == nginx
    gone = tracker.update(snap(5.2))
    assert gone.connections[p.cid].process is None
    assert gone.connections[p.cid].former_process == nginx


def test_an_orphan_loses_its_owner_and_an_owned_socket_keeps_it() -> None:
    """FIN_WAIT2 after close(): inode 0, an orphan. The other end, in CLOSE_WAIT, still
    belongs to the process that has not closed it, even in a poll that missed its owner."""
    p = Pair()
    nginx = ProcessInfo(pid=1201, name="nginx", cmdline=("nginx",), user="www-data")
    java = ProcessInfo(pid=4242, name="java", cmdline=("java",), user="app")
    owners = {7: nginx, 8: java}
    tracker = Tracker()
    tracker.update(snap(0, p.c(S.ESTABLISHED, inode=7), p.s(S.ESTABLISHED, inode=8), owners=owners))
    delta = tracker.update(snap(0.2, p.c(S.FIN_WAIT2), p.s(S.CLOSE_WAIT, inode=8)))
    client, server = delta.connections[p.cid], delta.connections[p.sid]
    assert (client.process, client.former_process) == (None, nginx)
    assert Tag.ORPHAN in client.tags
    assert (server.process, server.former_process) == (java, None)


# -- destroy notifications ---------------------------------------------------------------


def final(record: SocketRecord, *, unacked: int = 0, bytes_acked: int = 1) -> SocketRecord:
    """A destroy notification's record: state CLOSE, final tcp_info."""
    raw = bytearray(280)
    struct.pack_into("=I", raw, 24, unacked)
    struct.pack_into("=Q", raw, 120, bytes_acked)
    return dataclasses.replace(record, state=S.CLOSE, tcp_info_raw=bytes(raw), inode=0)


def test_connection_seen_only_by_its_destroy_notification() -> None:
    p = Pair()
    tracker = Tracker()
    tracker.update(snap(0, listener()))
    # Born and ended between two polls: the server end left only a notification; the
    # client end lives on in TIME_WAIT. The notification may postdate the dump, so the
    # tracker waits one poll before calling it short-lived.
    tracker.note_destroyed([final(p.s(S.ESTABLISHED))])
    first = tracker.update(snap(0.2, listener(), p.c(S.TIME_WAIT)))
    assert [e.connection.id for e in first.events] == [p.cid]
    second = tracker.update(snap(0.4, listener(), p.c(S.TIME_WAIT)))
    (event,) = second.events
    assert event.kind is EventKind.GONE and event.from_state is None and event.inferred
    assert event.path == (S.SYN_RECV, S.ESTABLISHED, S.CLOSE_WAIT, S.LAST_ACK, S.CLOSED)
    assert event.connection.id == p.sid and second.gone == (p.sid,)
    assert all(h.inferred for h in event.connection.history[:-1])


def test_time_wait_hand_over_notification_is_not_an_end() -> None:
    p = Pair()
    tracker = Tracker()
    tracker.update(snap(0, p.c(S.ESTABLISHED)))
    tracker.note_destroyed([final(p.c(S.FIN_WAIT2))])  # the full socket freed into TIME_WAIT
    delta = tracker.update(snap(0.2, p.c(S.TIME_WAIT)))
    assert [e.kind for e in delta.events] == [EventKind.TRANSITION]
    later = tracker.update(snap(0.4, p.c(S.TIME_WAIT)))
    assert later.events == ()


def test_connect_that_never_completed_seen_only_by_its_notification() -> None:
    p = Pair(port=9)
    tracker = Tracker()
    tracker.update(snap(0))
    tracker.note_destroyed([final(p.c(S.SYN_SENT), bytes_acked=0)])
    tracker.update(snap(0.2))
    (event,) = tracker.update(snap(0.4)).events
    assert event.path == (S.SYN_SENT, S.CLOSED)
    assert "refused" in event.reason
    # A refused connect() clears the peer from the socket: its notification says nothing.
    refused = sock(S.CLOSE, ("0.0.0.0", 40000), (LO, 0), cookie=77)
    tracker.note_destroyed([final(refused, bytes_acked=0)])
    tracker.update(snap(0.6))
    assert tracker.update(snap(0.8)).events == ()


def test_final_tcp_info_with_unacked_data_means_reset() -> None:
    remote = ("192.0.2.1", 443)
    orderly = sock(S.ESTABLISHED, (LO, 40001), remote, cookie=1)
    reset = sock(S.ESTABLISHED, (LO, 40002), remote, cookie=2)
    tracker = Tracker()
    tracker.update(snap(0, orderly, reset))
    tracker.note_destroyed([final(orderly), final(reset, unacked=3)])
    paths = {e.connection.id: e.path for e in tracker.update(snap(0.2)).events}
    assert paths["0x1"] == (S.ESTABLISHED, S.CLOSE_WAIT, S.LAST_ACK, S.CLOSED)
    assert paths["0x2"] == (S.ESTABLISHED, S.CLOSED)


def test_vanished_request_sock_with_notification_was_accepted_then_closed() -> None:
    p, q = Pair(), Pair(client_port=40001)
    tracker = Tracker()
    tracker.update(snap(0, listener(), p.s(S.SYN_RECV), q.s(S.SYN_RECV)))
    tracker.note_destroyed([final(p.s(S.ESTABLISHED))])
    paths = {e.connection.id: e.path for e in tracker.update(snap(0.2, listener())).events}
    assert paths[p.sid] == (S.SYN_RECV, S.ESTABLISHED, S.CLOSE_WAIT, S.LAST_ACK, S.CLOSED)
    assert paths[q.sid] == (S.SYN_RECV, S.CLOSED)


# -- tags ---------------------------------------------------------------------------------


def test_tags_follow_state_and_time() -> None:
    p = Pair()
    settings = TrackerSettings(thresholds=TagThresholds(lingering_s=1.0))
    tracker = Tracker(settings)
    first = tracker.update(snap(0, listener(), p.s(S.ESTABLISHED, inode=5)))
    assert first.connections["0x1f90"].tags == {Tag.LISTENER}
    assert first.connections[p.sid].tags == frozenset()
    moved = tracker.update(snap(0.5, listener(), p.s(S.CLOSE_WAIT, recv_q=1, inode=5)))
    assert moved.connections[p.sid].tags == {Tag.HALF_CLOSED}
    still = tracker.update(snap(1.0, listener(), p.s(S.CLOSE_WAIT, recv_q=1, inode=5)))
    assert still.changed == ()
    aged = tracker.update(snap(1.6, listener(), p.s(S.CLOSE_WAIT, recv_q=1, inode=5)))
    assert aged.changed == (p.sid,) and aged.events == ()
    assert aged.connections[p.sid].tags == {Tag.HALF_CLOSED, Tag.LINGERING}


def test_memory_stays_bounded_under_churn() -> None:
    tracker = Tracker(TrackerSettings(retention_s=1.0))
    sizes = []
    for i in range(300):
        # Ten short connections per poll, each seen once; every 4-tuple reused (/proc).
        records = [
            sock(S.ESTABLISHED, (LO, 40000 + n), (LO, 80), cookie=None if n % 2 else i * 10 + n)
            for n in range(10)
        ]
        if i % 2:
            records = [dataclasses.replace(r, state=S.TIME_WAIT) for r in records]
        sizes.append(len(tracker.update(snap(i * 0.2, *records)).connections))
    # Live ones plus about five polls' worth of gone ones, however long it runs.
    assert max(sizes[50:]) <= 10 + 6 * 10
    assert max(sizes[50:]) == max(sizes[250:])


def test_vanished_connect_with_acknowledged_syn_was_established() -> None:
    p, q = Pair(), Pair(client_port=40001)
    tracker = Tracker()
    tracker.update(snap(0, p.c(S.SYN_SENT), q.c(S.SYN_SENT)))
    tracker.note_destroyed([final(p.c(S.ESTABLISHED), bytes_acked=1)])
    tracker.note_destroyed([final(q.c(S.SYN_SENT), bytes_acked=0)])
    paths = {e.connection.id: e.path for e in tracker.update(snap(0.2)).events}
    assert paths[p.cid] == (S.SYN_SENT, S.ESTABLISHED, S.CLOSE_WAIT, S.LAST_ACK, S.CLOSED)
    assert paths[q.cid] == (S.SYN_SENT, S.CLOSED)


def test_peer_is_the_other_local_end() -> None:
    p = Pair()
    tracker = Tracker()
    tracker.update(snap(0, listener(), p.c(S.ESTABLISHED), p.s(S.ESTABLISHED)))
    delta = tracker.update(snap(0.2, listener(), p.c(S.TIME_WAIT)))
    peer = tracker.peer(p.cid)
    assert peer is not None and peer.id == p.sid and peer.state is S.CLOSED
    assert tracker.peer(p.sid) is delta.connections[p.cid]
    assert tracker.peer("0x1f90") is None and tracker.peer("nope") is None


def test_both_ends_first_seen_in_time_wait_closed_simultaneously() -> None:
    p = Pair()
    _, _, events = run((listener(), p.s(S.TIME_WAIT), p.c(S.TIME_WAIT)))
    for conn_id in (p.sid, p.cid):
        assert life(events, conn_id)[-3:] == [S.FIN_WAIT1, S.CLOSING, S.TIME_WAIT]


def test_first_view_is_the_first_update_without_history() -> None:
    """The one-shot view: exactly the first update's connections, minus their histories
    (cookies and /proc 4-tuples, a reused 4-tuple, owners, every tag source)."""
    java = ProcessInfo(pid=10, name="java", cmdline=("java",), user="app")
    listener = sock(S.LISTEN, (LO, 80), cookie=next(_cookies), inode=5)
    records = (
        listener,
        sock(S.ESTABLISHED, (LO, 80), (LO, 40000), cookie=next(_cookies), inode=6),
        sock(S.ESTABLISHED, (LO, 40000), (LO, 80), cookie=next(_cookies), inode=7),
        sock(S.TIME_WAIT, (LO, 40001), (LO, 80), cookie=next(_cookies)),
        sock(S.FIN_WAIT2, ("::1", 40002), ("::1", 80), cookie=next(_cookies)),
        sock(S.SYN_SENT, (LO, 40003), ("10.0.0.1", 443), timer=Timer(TimerName.RETRANSMIT, 900, 7)),
        sock(S.CLOSE_WAIT, (LO, 80), (LO, 40004), inode=8),
        sock(S.TIME_WAIT, (LO, 40005), (LO, 80)),
        sock(S.ESTABLISHED, (LO, 40005), (LO, 80), inode=9),
        sock(S.LISTEN, ("0.0.0.0", 81), inode=11),
        sock(S.LISTEN, ("0.0.0.0", 81), inode=12),
    )
    snapshot = snap(0, *records, owners={5: java, 6: java, 8: java})
    expected = {
        conn_id: dataclasses.replace(conn, history=())
        for conn_id, conn in Tracker().update(snapshot).connections.items()
    }
    view = first_view(snapshot)
    assert list(view) == list(expected)
    assert view == expected
    assert any(conn.history for conn in Tracker().update(snapshot).connections.values())

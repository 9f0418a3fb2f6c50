"""Turns consecutive snapshots into connections, transitions and events.

Cost matters: at 50k sockets a poll must not rebuild 50k `Connection`s. Each poll walks
the records once; a record the source handed out again (an idle socket, see DumpParser) is
skipped by identity, and for the others the few fields a user sees change are compared
(state, queues, inode, an owner found at last, timer kind and retransmit count). New
`Connection` objects are built only for sockets that were born, changed or gone, or whose
timer was re-armed. Everything else keeps its object, so `Delta.connections[id] is` the
previous poll's object means "unchanged". A record's timer expiry and tcp_info therefore
date from the last rebuild; `latest(id)` gives the newest sighting.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from tcpwatch.model import (
    Connection,
    Delta,
    Event,
    EventKind,
    ProcessInfo,
    Snapshot,
    SocketRecord,
    Transition,
)
from tcpwatch.slots import all_slot_setters
from tcpwatch.tcp.states import TcpState
from tcpwatch.tcp.tags import DEFAULT_THRESHOLDS, Tag, TagThresholds, classify
from tcpwatch.tracker.inference import (
    Evidence,
    established_then_closed,
    path_between,
    path_from_start,
    reason,
)
from tcpwatch.tracker.view import build_connection, connection_id

_WILDCARDS = ("0.0.0.0", "::")
# States whose tags change with time alone (lingering after a threshold).
_AGEING = frozenset(
    {
        TcpState.FIN_WAIT1,
        TcpState.FIN_WAIT2,
        TcpState.CLOSING,
        TcpState.LAST_ACK,
        TcpState.CLOSE_WAIT,
    }
)
# A timer whose expiry moved more than this against its countdown was re-armed.
_REARM_MS = 1000.0
# Destroy notifications are kept this many polls: one for the dump they may postdate,
# one to show whether their socket lives on in TIME_WAIT.
_DESTROY_POLLS = 2


@dataclass(frozen=True, slots=True)
class TrackerSettings:
    """retention_s: how long gone connections stay visible; history_cap: transitions kept
    per connection; thresholds: the tag rules' numbers."""

    retention_s: float = 10.0
    history_cap: int = 32
    thresholds: TagThresholds = field(default=DEFAULT_THRESHOLDS)


DEFAULT_SETTINGS = TrackerSettings()


class _Track:
    """The tracker's mutable bookkeeping for one connection (outputs see `conn` only)."""

    __slots__ = (
        "accepted",
        "conn",
        "gone_mono",
        "key",
        "latest",
        "since_mono",
        "tuple",
    )

    def __init__(self, key: object, conn: Connection, mono: float, accepted: bool) -> None:
        self.key = key
        self.conn = conn
        self.latest = conn.record  # the newest sighting, refreshed every poll
        self.since_mono = mono  # when the current state began, or was first seen
        self.accepted = accepted
        self.gone_mono: float | None = None
        record = conn.record
        self.tuple = record.four_tuple if record.remote.port else None


def _tuple_key(record: SocketRecord) -> tuple[object, ...]:
    """Identity without a cookie (/proc): the 4-tuple; unconnected sockets (listeners) also
    by inode, as several may share one address (SO_REUSEPORT)."""
    if not record.remote.port:
        return (*record.four_tuple, record.inode)
    return record.four_tuple


class Tracker:
    """Keeps every connection's story across polls; call `update` once per poll.

    Identity is the socket cookie (stable for a socket's life, carried from a SYN_RECV
    request sock into the accepted child and into TIME_WAIT); sources without cookies
    (/proc) fall back to the 4-tuple (plus the inode for listeners). A state is marked
    observed only when a poll saw it; everything between two sightings is inferred from
    what the host shows (see `tcpwatch.tracker.inference`). Destroy notifications, when
    the caller has them, go to `note_destroyed` before the `update` of the next poll.
    """

    def __init__(self, settings: TrackerSettings = DEFAULT_SETTINGS) -> None:
        self.settings = settings
        self._live: dict[object, _Track] = {}
        self._gone: dict[str, _Track] = {}  # by id: a /proc 4-tuple may be reused
        self._by_id: dict[str, _Track] = {}
        self._expiry: deque[tuple[float, str]] = deque()
        self._ageing: list[tuple[float, int, object]] = []
        self._view: dict[str, Connection] = {}
        self._by_tuple: dict[tuple[str, int, str, int], _Track] = {}
        self._listeners: dict[int, dict[str, int]] = {}
        self._destroyed: dict[int, tuple[SocketRecord, int]] = {}
        # One poll's history steps per (path, first sighting): churn shares them.
        self._steps: dict[tuple[tuple[TcpState, ...], bool], tuple[Transition, ...]] = {}
        self._steps_at = 0.0
        # One poll's first-sighting inferences: (state, id(evidence), local port) ->
        # (path, history, reason).
        self._firsts: dict[
            tuple[TcpState, int, int | None],
            tuple[tuple[TcpState, ...], tuple[Transition, ...], str],
        ] = {}
        self._firsts_at = 0.0
        self._last_mono = 0.0
        self._fresh_by_tuple: dict[tuple[str, int, str, int], object] = {}
        # This poll's changes to the view, for the Delta (see Delta.replaced).
        self._polls = 0
        self._dump: int | None = None  # the source's number of the dump taken last
        self._replaced: list[str] = []
        self._dropped: list[str] = []

    # -- public -------------------------------------------------------------------------

    def latest(self, conn_id: str) -> SocketRecord | None:
        """The newest sighting of a connection (its timer and tcp_info as of the last poll)."""
        track = self._by_id.get(conn_id)
        return None if track is None else track.latest

    def peer(self, conn_id: str) -> Connection | None:
        """The other end of a connection when both ends are on this host (loopback,
        containers in the same namespace): the one whose local is our remote and back."""
        track = self._by_id.get(conn_id)
        if track is None or track.tuple is None:
            return None
        local_address, local_port, remote_address, remote_port = track.tuple
        other = self._by_tuple.get((remote_address, remote_port, local_address, local_port))
        return None if other is None else other.conn

    def live(self) -> Iterator[tuple[Connection, SocketRecord]]:
        """Every live connection with its newest sighting."""
        for track in self._live.values():
            yield track.conn, track.latest

    def note_destroyed(self, records: Iterable[SocketRecord]) -> None:
        """Destroy notifications (final records, state CLOSE) received since the last poll.

        The next `update` uses them as evidence: a socket that vanished with one was a full
        socket, and its final tcp_info may show a reset; a socket never polled at all is
        reported as a connection that lived and ended between polls. A notification for a
        socket that lives on (the hand-over to a TIME_WAIT minisocket sends one) is ignored.
        """
        for record in records:
            if record.cookie is not None:
                self._destroyed[record.cookie] = (record, 0)

    def update(self, snapshot: Snapshot) -> Delta:
        """Take one poll; return what changed, with the whole current view.

        When the snapshot says how it differs from the dump this tracker took last
        (`Snapshot.changes`), only the sockets that came, changed or went are looked at:
        every other record is the one already taken, which the loop below would skip.
        """
        mono = snapshot.monotonic
        live = self._live
        owners = snapshot.owners
        changes = snapshot.changes
        # The changes against the dump taken last, if that is what they are against.
        since_last = changes if changes is not None and changes.follows(self._dump) else None
        self._dump = None if changes is None else changes.dump
        self._polls += 1
        self._replaced.clear()
        self._dropped.clear()
        seen: set[object] = set()
        seen_add = seen.add
        live_get = live.get
        # A timer counts down by the time between polls; more than that, it was re-armed.
        elapsed_ms = (mono - self._last_mono) * 1000.0
        self._last_mono = mono
        fresh: list[tuple[object, SocketRecord]] = []
        moved: list[tuple[_Track, SocketRecord]] = []
        touched: list[tuple[_Track, SocketRecord]] = []
        for record in snapshot.sockets if since_last is None else since_last.fresh:
            cookie = record.cookie
            key = cookie if cookie is not None else _tuple_key(record)
            seen_add(key)
            track = live_get(key)
            if track is None:
                fresh.append((key, record))
                continue
            old = track.latest
            if record is old:  # the source reused it: nothing about the socket changed
                continue
            track.latest = record
            if record.state is not old.state:
                moved.append((track, record))
                continue
            if (
                record.recv_q != old.recv_q
                or record.send_q != old.send_q
                or record.inode != old.inode
                or (track.conn.process is None and record.inode and record.inode in owners)
            ):
                touched.append((track, record))
                continue
            timer, old_timer = record.timer, old.timer
            if timer is old_timer:
                continue
            if (
                timer is None
                or old_timer is None
                or timer.name is not old_timer.name
                or timer.retrans != old_timer.retrans
            ):
                touched.append((track, record))
            elif abs(timer.expires_ms - old_timer.expires_ms + elapsed_ms) > _REARM_MS:
                self._rebuild(track, record, owners, mono)
        if since_last is not None:
            # `seen` holds only the fresh keys; a key not in it that is still live after
            # the gone ones leave was seen too (its record is the one taken before).
            gone = []
            for record in since_last.vanished:
                key = record.cookie if record.cookie is not None else _tuple_key(record)
                track = live_get(key)
                if track is not None and key not in seen:
                    gone.append(track)
        else:
            gone = [live[key] for key in live.keys() - seen]
        return self._finish(snapshot, seen, fresh, moved, touched, gone)

    # -- internals ----------------------------------------------------------------------

    def _finish(
        self,
        snapshot: Snapshot,
        seen: set[object],
        fresh: list[tuple[object, SocketRecord]],
        moved: list[tuple[_Track, SocketRecord]],
        touched: list[tuple[_Track, SocketRecord]],
        gone: list[_Track],
    ) -> Delta:
        now, mono, owners = snapshot.taken_at, snapshot.monotonic, snapshot.owners
        # Every key's state as this poll leaves it, for the other end's evidence.
        after: dict[object, TcpState] = {}
        # Under /proc a closing socket "turning back" into an opening one on the same
        # 4-tuple is a new connection that reused it.
        for item in list(moved):
            track, record = item
            if record.cookie is None and _reopened(track.conn.record.state, record.state):
                moved.remove(item)
                gone.append(track)
                fresh.append((track.key, record))
        for track, record in moved:
            after[track.key] = record.state
        for track in gone:
            after[track.key] = TcpState.CLOSED
        # First sightings are each other's peers too (both ends born since the last poll).
        self._fresh_by_tuple.clear()
        for key, record in fresh:
            after[key] = record.state
            if record.state is TcpState.LISTEN:
                self._add_listener(record)
            elif record.remote.port:
                self._fresh_by_tuple[record.four_tuple] = key
        events: list[Event] = []
        changed_ids: list[str] = []
        gone_ids: list[str] = []
        destroyed = self._destroyed
        for track in gone:
            self._end(track, now, mono, after, destroyed, events, gone_ids)
        # A notification drained after this poll's dump may belong to a socket born after
        # it, now in TIME_WAIT: only a poll later can tell it lived and ended unseen.
        short_lived = [
            record
            for cookie, (record, age) in destroyed.items()
            if age > 0
            and record.remote.port  # a failed connect() forgets its peer: nothing to show
            and cookie not in seen
            and cookie not in self._live
            and f"0x{cookie:x}" not in self._by_id
        ]
        for track, record in moved:
            self._move(track, record, now, mono, owners, after, events, changed_ids)
        for track, record in touched:
            self._rebuild(track, record, owners, mono)
            changed_ids.append(track.conn.id)
        new_ids = [
            self._begin(key, record, now, mono, owners, after, events) for key, record in fresh
        ]
        for record in short_lived:
            self._short_lived(record, now, mono, after, events, gone_ids)
        self._age_destroyed()
        changed_ids.extend(self._reclassify(mono))
        self._purge(mono)
        return Delta(
            snapshot=snapshot,
            connections=dict(self._view),
            new=tuple(new_ids),
            changed=tuple(changed_ids),
            gone=tuple(gone_ids),
            events=tuple(events),
            poll=self._polls,
            replaced=tuple(self._replaced),
            dropped=tuple(self._dropped),
        )

    def _begin(
        self,
        key: object,
        record: SocketRecord,
        now: float,
        mono: float,
        owners: Mapping[int, ProcessInfo],
        after: dict[object, TcpState],
        events: list[Event],
    ) -> str:
        """A first sighting: a new connection whose start is inferred."""
        accepted = self._accepted(record)
        evidence = self._evidence(record.four_tuple, accepted, after, record.cookie)
        state = record.state
        local_port = record.local.port if accepted else None
        # A first poll (or churn) sees thousands of sockets with the same few (state,
        # evidence) pairs: infer each start, its history steps and its reason once per poll.
        # Evidence objects are interned (see `_evidence`), so their id is a cheap key.
        if self._firsts_at != now:
            self._firsts.clear()
            self._firsts_at = now
        memo_key = (state, id(evidence), local_port)
        first = self._firsts.get(memo_key)
        if first is None:
            path = path_from_start(state, evidence)
            first = self._firsts[memo_key] = (
                path,
                self._history((), path, now, first=True),
                reason(path, first=True, evidence=evidence, local_port=local_port),
            )
        path, history, why = first
        conn = build_connection(
            self._new_id(record),
            record,
            owners.get(record.inode) if record.inode else None,
            now,
            None,
            history,
            classify(record, state_age_s=None, thresholds=self.settings.thresholds),
            None,
            None,
        )
        track = _Track(key, conn, mono, accepted)
        self._live[key] = track
        self._by_id[conn.id] = track
        self._set(track, conn)
        if track.tuple is not None:
            self._by_tuple[track.tuple] = track
        self._schedule_ageing(track)
        events.append(_event(EventKind.NEW, now, conn, None, state, path, len(path) > 1, why))
        return conn.id

    def _move(
        self,
        track: _Track,
        record: SocketRecord,
        now: float,
        mono: float,
        owners: Mapping[int, ProcessInfo],
        after: dict[object, TcpState],
        events: list[Event],
        changed_ids: list[str],
    ) -> None:
        """A state change between two sightings."""
        old = track.conn
        old_state = old.record.state
        evidence = self._evidence(track.tuple, track.accepted, after, record.cookie)
        path = path_between(old_state, record.state, evidence)
        process, former = _owners(old, record, owners)
        conn = Connection(
            id=old.id,
            record=record,
            process=process,
            first_seen=old.first_seen,
            state_since=now,
            history=self._history(old.history, path, now, first=False),
            tags=self._classify(record, 0.0),
            former_process=former,
        )
        if record.state is TcpState.LISTEN:
            self._add_listener(record)
        if track.tuple is None and record.remote.port:  # a bound socket that connected
            track.tuple = record.four_tuple
            self._by_tuple[track.tuple] = track
        self._set(track, conn)
        track.since_mono = mono
        self._schedule_ageing(track)
        changed_ids.append(conn.id)
        events.append(
            _step_event(EventKind.TRANSITION, now, conn, old_state, record.state, path, evidence)
        )

    def _end(
        self,
        track: _Track,
        now: float,
        mono: float,
        after: dict[object, TcpState],
        destroyed: dict[int, tuple[SocketRecord, int]],
        events: list[Event],
        gone_ids: list[str],
    ) -> None:
        """A connection no longer in the poll."""
        old = track.conn
        old_state = old.record.state
        evidence = self._evidence(track.tuple, track.accepted, after, old.record.cookie)
        path = path_between(old_state, TcpState.CLOSED, evidence)
        conn = Connection(
            id=old.id,
            record=track.latest,
            process=old.process,
            first_seen=old.first_seen,
            state_since=now,
            history=self._history(old.history, path, now, first=False),
            tags=old.tags,
            gone_at=now,
            former_process=old.former_process,
        )
        if old.record.cookie is not None:
            destroyed.pop(old.record.cookie, None)
        self._retire(track, conn, mono)
        gone_ids.append(conn.id)
        events.append(
            _step_event(EventKind.GONE, now, conn, old_state, TcpState.CLOSED, path, evidence)
        )

    def _short_lived(
        self,
        record: SocketRecord,
        now: float,
        mono: float,
        after: dict[object, TcpState],
        events: list[Event],
        gone_ids: list[str],
    ) -> None:
        """A destroy notification for a socket no poll ever saw: it lived and ended between
        two polls. One `gone` event (from null) carries its whole, inferred, life."""
        assert record.cookie is not None
        accepted = self._accepted(record)
        evidence = self._evidence(record.four_tuple, accepted, after, record.cookie)
        del self._destroyed[record.cookie]
        start = TcpState.SYN_RECV if accepted else TcpState.SYN_SENT
        path = path_between(start, TcpState.CLOSED, evidence)
        conn = Connection(
            id=self._new_id(record),
            record=record,
            process=None,
            first_seen=now,
            state_since=now,
            history=self._history((), path, now, first=True),
            tags=frozenset(),
            gone_at=now,
        )
        track = _Track(record.cookie, conn, mono, accepted)
        self._by_id[conn.id] = track
        if track.tuple is not None:
            self._by_tuple.setdefault(track.tuple, track)
        self._retire(track, conn, mono)
        gone_ids.append(conn.id)
        events.append(
            Event(
                kind=EventKind.GONE,
                at=now,
                connection=conn,
                from_state=None,
                to_state=TcpState.CLOSED,
                path=path,
                inferred=True,
                reason=reason(
                    path,
                    first=True,
                    evidence=evidence,
                    local_port=record.local.port if accepted else None,
                )
                + " (seen only by its destroy notification)",
            )
        )

    def _retire(self, track: _Track, conn: Connection, mono: float) -> None:
        self._live.pop(track.key, None)
        self._set(track, conn)
        track.gone_mono = mono
        self._gone[conn.id] = track
        self._expiry.append((mono + self.settings.retention_s, conn.id))

    def _age_destroyed(self) -> None:
        """Forget notifications of sockets that live on (TIME_WAIT hand-overs)."""
        stale = []
        for cookie, (record, age) in self._destroyed.items():
            if age + 1 >= _DESTROY_POLLS:
                stale.append(cookie)
            else:
                self._destroyed[cookie] = (record, age + 1)
        for cookie in stale:
            del self._destroyed[cookie]

    def _rebuild(
        self, track: _Track, record: SocketRecord, owners: Mapping[int, ProcessInfo], mono: float
    ) -> None:
        """A new sighting without a state change: same story, fresher record."""
        old = track.conn
        process, former = _owners(old, record, owners)
        conn = build_connection(
            old.id,
            record,
            process,
            old.first_seen,
            old.state_since,
            old.history,
            self._classify(record, mono - track.since_mono),
            None,
            former,
        )
        self._set(track, conn)

    def _set(self, track: _Track, conn: Connection) -> None:
        track.conn = conn
        self._view[conn.id] = conn
        self._replaced.append(conn.id)

    def _classify(self, record: SocketRecord, age: float | None) -> frozenset[Tag]:
        return classify(record, state_age_s=age, thresholds=self.settings.thresholds)

    def _schedule_ageing(self, track: _Track) -> None:
        """Tags that change with time alone: look again when the lingering threshold passes."""
        if track.conn.record.state in _AGEING:
            due = track.since_mono + self.settings.thresholds.lingering_s
            heapq.heappush(self._ageing, (due, id(track), track.key))

    def _reclassify(self, mono: float) -> list[str]:
        changed = []
        heap = self._ageing
        while heap and heap[0][0] <= mono:
            _, _, key = heapq.heappop(heap)
            track = self._live.get(key)
            if track is None:
                continue
            record = track.conn.record
            tags = self._classify(record, mono - track.since_mono)
            if tags != track.conn.tags:
                self._rebuild(track, track.latest, {}, mono)
                changed.append(track.conn.id)
        return changed

    def _history(
        self,
        history: tuple[Transition, ...],
        path: tuple[TcpState, ...],
        at: float,
        *,
        first: bool,
    ) -> tuple[Transition, ...]:
        """Append a path's steps; every step but the last (the sighting) is inferred."""
        key = (path, first)
        steps = self._steps.get(key) if self._steps_at == at else None
        if steps is None:
            if self._steps_at != at:
                self._steps.clear()
                self._steps_at = at
            last = len(path) - 1
            built = [Transition(at, None, path[0], inferred=last > 0)] if first else []
            built.extend(
                Transition(at, path[index], path[index + 1], inferred=index + 1 < last)
                for index in range(last)
            )
            steps = self._steps[key] = tuple(built)
        combined = history + steps if history else steps
        cap = self.settings.history_cap
        return combined[-cap:] if len(combined) > cap else combined

    def _accepted(self, record: SocketRecord) -> bool:
        """Accepted from a local listener: its local address and port belong to one."""
        state = record.state
        if state is TcpState.SYN_RECV:
            return True
        if state is TcpState.SYN_SENT or state is TcpState.LISTEN or not record.remote.port:
            return False
        addresses = self._listeners.get(record.local.port)
        if not addresses:
            return False
        local = record.local.address
        if local in addresses or any(a in addresses for a in _WILDCARDS):
            return True
        # An IPv4 client of a dual-stack listener shows up as ::ffff:a.b.c.d.
        return local.startswith("::ffff:") and local[7:] in addresses

    def _evidence(
        self,
        four_tuple: tuple[str, int, str, int] | None,
        accepted: bool,
        after: dict[object, TcpState],
        cookie: int | None,
    ) -> Evidence:
        """The other end's states when both ends are on this host, and destroy notes.

        Always one of a few hundred shared objects (`_PLAIN`, `_interned`)."""
        note = None if cookie is None else self._destroyed.get(cookie)
        final = None if note is None else note[0]
        completed = final is not None and (accepted or established_then_closed(final))
        reset = final is not None and _unacked(final) > 0
        plain = _PLAIN[accepted, completed, reset]
        if four_tuple is None:
            return plain
        reverse = (four_tuple[2], four_tuple[3], four_tuple[0], four_tuple[1])
        fresh_key = self._fresh_by_tuple.get(reverse)
        if fresh_key is not None:  # the other end is a first sighting of this poll
            return _interned(accepted, None, after[fresh_key], completed, reset)
        peer = self._by_tuple.get(reverse)
        if peer is None:
            return plain
        before = TcpState.CLOSED if peer.gone_mono is not None else peer.conn.record.state
        return _interned(accepted, before, after.get(peer.key, before), completed, reset)

    def _add_listener(self, record: SocketRecord) -> None:
        ports = self._listeners.setdefault(record.local.port, {})
        ports[record.local.address] = ports.get(record.local.address, 0) + 1

    def _drop_listener(self, record: SocketRecord) -> None:
        ports = self._listeners.get(record.local.port)
        if not ports or record.local.address not in ports:
            return
        ports[record.local.address] -= 1
        if ports[record.local.address] <= 0:
            del ports[record.local.address]
        if not ports:
            del self._listeners[record.local.port]

    def _new_id(self, record: SocketRecord) -> str:
        return connection_id(record, self._by_id)

    def _purge(self, mono: float) -> None:
        """Forget gone connections older than the retention period."""
        expiry = self._expiry
        while expiry and expiry[0][0] <= mono:
            _, conn_id = expiry.popleft()
            track = self._gone.get(conn_id)
            if track is None or track.gone_mono is None:
                continue
            if track.gone_mono + self.settings.retention_s > mono:
                continue
            del self._gone[conn_id]
            conn = track.conn
            if self._by_id.get(conn.id) is track:
                del self._by_id[conn.id]
                del self._view[conn.id]
                self._dropped.append(conn.id)
            if track.tuple is not None and self._by_tuple.get(track.tuple) is track:
                del self._by_tuple[track.tuple]
            if conn.record.state is TcpState.LISTEN:
                self._drop_listener(conn.record)


# Events are built like connections (see `build_connection`): a first poll makes 50k.
_EVENT_SETTERS = all_slot_setters(
    Event, ("kind", "at", "connection", "from_state", "to_state", "path", "inferred", "reason")
)


def _event(
    kind: EventKind,
    at: float,
    connection: Connection,
    from_state: TcpState | None,
    to_state: TcpState,
    path: tuple[TcpState, ...],
    inferred: bool,
    why: str,
) -> Event:
    """Event(...) with every field given, positionally, built through its slots."""
    event = object.__new__(Event)
    s_kind, s_at, s_conn, s_from, s_to, s_path, s_inferred, s_reason = _EVENT_SETTERS
    s_kind(event, kind)
    s_at(event, at)
    s_conn(event, connection)
    s_from(event, from_state)
    s_to(event, to_state)
    s_path(event, path)
    s_inferred(event, inferred)
    s_reason(event, why)
    return event


def _step_event(
    kind: EventKind,
    at: float,
    connection: Connection,
    from_state: TcpState,
    to_state: TcpState,
    path: tuple[TcpState, ...],
    evidence: Evidence,
) -> Event:
    """The event of a known connection moving from its last sighting's state along `path`:
    inferred when it passed states no poll saw."""
    why = reason(path, first=False, evidence=evidence)
    return _event(kind, at, connection, from_state, to_state, path, len(path) > 2, why)


# Evidence without a local peer: eight values, built once.
_PLAIN = {
    (accepted, completed, reset): Evidence(accepted=accepted, completed=completed, reset=reset)
    for accepted in (False, True)
    for completed in (False, True)
    for reset in (False, True)
}


# Evidence with a local peer, one object per distinct value (at most a few hundred).
_EVIDENCE: dict[tuple[bool, TcpState | None, TcpState | None, bool, bool], Evidence] = {}


def _interned(
    accepted: bool,
    peer_before: TcpState | None,
    peer_now: TcpState | None,
    completed: bool,
    reset: bool,
) -> Evidence:
    key = (accepted, peer_before, peer_now, completed, reset)
    found = _EVIDENCE.get(key)
    if found is None:
        found = _EVIDENCE[key] = Evidence(accepted, peer_before, peer_now, completed, reset)
    return found


def _owners(
    old: Connection, record: SocketRecord, owners: Mapping[int, ProcessInfo]
) -> tuple[ProcessInfo | None, ProcessInfo | None]:
    """(current owner, former owner) of a new sighting of `old`'s socket.

    The current owner holds the socket's inode now; while the inode stays the same, an
    owner this poll did not name is still the one seen before. A socket nobody holds
    (inode 0: TIME_WAIT, orphans) has none, but remembers the last one seen."""
    inode = record.inode
    if inode:
        process = owners.get(inode)
        if process is None and inode == old.record.inode:
            process = old.process
        if process is not None:
            return process, None
    return None, old.process or old.former_process


def _unacked(record: SocketRecord) -> int:
    info = record.tcp_info
    return 0 if info is None else info.unacked


def _reopened(before: TcpState, after: TcpState) -> bool:
    closing = (TcpState.TIME_WAIT, TcpState.LAST_ACK, TcpState.CLOSING, TcpState.FIN_WAIT2)
    opening = (TcpState.SYN_SENT, TcpState.SYN_RECV, TcpState.ESTABLISHED)
    return before in closing and after in opening

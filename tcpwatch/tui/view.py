"""The table's model: which connections are shown, in which order, grouped how.

Kept free of widgets so that it can run in the polling thread: at 50k connections the UI
thread must only paint the visible rows. Each poll touches only the connections whose
`Connection` object changed (the tracker hands out new objects only for those); filter
results and sort keys of the others are reused, and only the touched rows leave and rejoin
the order, each by binary search.
"""

from __future__ import annotations

import enum
import ipaddress
import threading
from bisect import bisect_left
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from tcpwatch.filters import Filter, parse_filter
from tcpwatch.model import Connection, Delta, Snapshot
from tcpwatch.tcp.explain import Diagnosis, diagnose_population, serves
from tcpwatch.tcp.host import HostSettings
from tcpwatch.tcp.states import LIFECYCLE_ORDER, TcpState
from tcpwatch.tcp.tags import Tag, awaiting_accept
from tcpwatch.textsafe import printable
from tcpwatch.tracker.neighbours import Neighbours

FLASH_SECONDS = 2.0  # how long a new or changed row stays highlighted
GONE_SECONDS = 5.0  # how long a gone row stays on screen, in red
HISTORY_SAMPLES = 180  # sparkline length: three minutes at the default interval
GROUP_PREFIX = "\x00"  # ids of group heading rows; connection ids never start with it
# How often the host-wide findings are worked out again: one pass over every connection
# (about 40 ms at 78k), where a poll otherwise looks only at what changed.
FINDINGS_SECONDS = 5.0


class Column(enum.Enum):
    """The table's columns, in display order; each is also a sort order."""

    STATE = "state"
    LOCAL = "local"
    REMOTE = "remote"
    RECV_Q = "recv-q"
    SEND_Q = "send-q"
    TIMER = "timer"
    AGE = "in state"
    PROCESS = "process"
    TAGS = "tags"


class ViewMode(enum.Enum):
    ALL = "all connections"
    LISTENER = "by listener"
    PROCESS = "by process"


class Flash(enum.Enum):
    NEW = "new"
    CHANGED = "changed"
    GONE = "gone"


@dataclass(frozen=True, slots=True)
class ViewSettings:
    """What the user chose to see. Replaced whole when anything changes."""

    filter: Filter = field(default_factory=lambda: parse_filter(""))
    only: frozenset[Tag] = frozenset()  # quick toggles: show connections with any of these
    sort: Column = Column.STATE
    descending: bool = False
    mode: ViewMode = ViewMode.ALL


@dataclass(frozen=True, slots=True)
class TableView:
    """One immutable picture of the table, built off the UI thread, painted by the UI."""

    seq: int
    snapshot: Snapshot | None
    settings: ViewSettings
    rows: tuple[str, ...]  # connection ids and group heading ids, in display order
    connections: Mapping[str, Connection]
    groups: Mapping[str, str]  # group heading id -> heading text
    depth: Mapping[str, int]  # connection id -> indent level in grouped views
    seen: Mapping[str, float]  # connection id -> when its record was seen (timer countdowns)
    flash: Mapping[str, tuple[Flash, float]]  # id -> (kind, until)
    live: int  # connections not gone
    state_counts: Mapping[str, int]  # over all live connections, not only the shown ones
    tag_counts: Mapping[str, int]
    history: tuple[Mapping[str, int], ...]  # state and tag counts per poll, oldest first
    findings: tuple[Diagnosis, ...] = ()  # host-wide, worst first (`diagnose_population`)

    @property
    def now(self) -> float:
        return 0.0 if self.snapshot is None else self.snapshot.taken_at

    def flash_of(self, conn_id: str) -> Flash | None:
        entry = self.flash.get(conn_id)
        if entry is None or entry[1] < self.now:
            return None
        return entry[0]

    def index_of(self, row_id: str) -> int | None:
        try:
            return self.rows.index(row_id)
        except ValueError:
            return None

    def shown_connections(self) -> list[Connection]:
        """The connections of the filtered view that are still alive, in display order."""
        conns = self.connections
        return [
            conns[row]
            for row in self.rows
            if not row.startswith(GROUP_PREFIX) and conns[row].gone_at is None
        ]


EMPTY_VIEW = TableView(
    seq=0,
    snapshot=None,
    settings=ViewSettings(),
    rows=(),
    connections=MappingProxyType({}),
    groups=MappingProxyType({}),
    depth=MappingProxyType({}),
    seen=MappingProxyType({}),
    flash=MappingProxyType({}),
    live=0,
    state_counts=MappingProxyType({}),
    tag_counts=MappingProxyType({}),
    history=(),
)


@lru_cache(maxsize=65536)
def address_key(address: str) -> tuple[int, int]:
    """Numeric order for addresses (10.0.0.5 before 10.0.0.10)."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return (9, 0)
    return (parsed.version, int(parsed))


def _since(conn: Connection) -> float:
    return conn.state_since if conn.state_since is not None else conn.first_seen - 1e9


def tie_key(c: Connection) -> tuple[Any, ...]:
    """The 4-tuple in numeric order, then the id: what breaks ties in every sort order."""
    r = c.record
    local, remote = address_key(r.local.address), address_key(r.remote.address)
    return (*local, r.local.port, *remote, r.remote.port, c.id)


def sort_key(column: Column) -> Callable[[Connection, float, tuple[Any, ...]], Any]:
    """The key function for one column: given a connection, when its record was seen, and
    its `tie_key` (cached by the caller: a new sort order must not re-parse 50k addresses).

    Timers sort by when they expire, which stays right while the tracker keeps a
    counting-down timer's old record.
    """
    # Flat tuples: at 50k rows the sort's comparisons dominate, and flat ones are cheaper.
    keys: dict[Column, Callable[[Connection, float, tuple[Any, ...]], Any]] = {
        Column.STATE: lambda c, _, tie: (LIFECYCLE_ORDER[c.state], *tie),
        Column.LOCAL: lambda c, _, tie: tie,
        Column.REMOTE: lambda c, _, tie: (*tie[3:6], *tie),
        Column.RECV_Q: lambda c, _, tie: (c.record.recv_q, *tie),
        Column.SEND_Q: lambda c, _, tie: (c.record.send_q, *tie),
        Column.TIMER: lambda c, seen, tie: (
            c.record.timer is None,
            0.0 if c.record.timer is None else seen + c.record.timer.expires_ms / 1000,
            *tie,
        ),
        Column.AGE: lambda c, _, tie: (-_since(c), *tie),
        Column.PROCESS: lambda c, _, tie: (
            c.process is None,
            "" if c.process is None else c.process.name.lower(),
            0 if c.process is None else c.process.pid,
            *tie,
        ),
        Column.TAGS: lambda c, _, tie: (
            -len(c.tags),
            ",".join(sorted(t.value for t in c.tags)),
            *tie,
        ),
    }
    return keys[column]


def _as_alive(conn: Connection) -> Connection:
    """A gone connection as last seen, so that a filter on its old state still shows it."""
    return conn if conn.gone_at is None else replace(conn, gone_at=None)


def _wildcard(address: str) -> bool:
    return address in ("0.0.0.0", "::")


class ViewModel:
    """Turns deltas and settings into `TableView`s. Thread-safe; call from worker threads."""

    def __init__(
        self,
        settings: ViewSettings | None = None,
        *,
        host: HostSettings | None = None,
        lang: str = "en",
    ) -> None:
        self._lock = threading.Lock()
        # The index has its own lock, held only while it changes: a drill-down's worker
        # asks it during a poll without waiting for the poll's whole `apply`.
        self._near = Neighbours()
        self._near_lock = threading.Lock()
        self._settings = settings or ViewSettings()
        self._host = host or HostSettings()
        self._lang = lang
        self._findings: tuple[Diagnosis, ...] = ()
        self._findings_due = float("-inf")  # snapshot time of the next findings pass
        self._key = sort_key(self._settings.sort)
        self._snapshot: Snapshot | None = None
        self._conns: Mapping[str, Connection] = {}
        self._keys: dict[str, Any] = {}  # id -> sort key, for shown connections
        self._order: list[str] = []  # shown connection ids, sorted
        self._flash: dict[str, tuple[Flash, float]] = {}
        self._gone: dict[str, float] = {}  # shown gone ids -> when they leave the screen
        self._seen: dict[str, float] = {}
        self._ties: dict[str, tuple[Any, ...]] = {}
        self._states: Counter[str] = Counter()
        self._tags: Counter[str] = Counter()
        self._history: deque[Mapping[str, int]] = deque(maxlen=HISTORY_SAMPLES)
        self._seq = 0
        self._poll: int | None = None  # the tracker's number of the last delta applied
        self._view = EMPTY_VIEW

    @property
    def settings(self) -> ViewSettings:
        return self._settings

    def apply(self, delta: Delta) -> TableView:
        """Fold one poll's delta in; only changed connections are looked at individually."""
        with self._lock:
            now = delta.snapshot.taken_at
            conns = delta.connections
            prev = self._conns
            if self._poll is not None and delta.poll == self._poll + 1:
                # The tracker's own list of what it changed since the last delta.
                touched = [cid for cid in dict.fromkeys(delta.replaced) if cid in conns]
                removed: Iterable[str] = [cid for cid in delta.dropped if cid in prev]
            else:  # the first delta, or one from another tracker: compare every object
                touched = [cid for cid, conn in conns.items() if prev.get(cid) is not conn]
                removed = prev.keys() - conns.keys()
            self._poll = delta.poll
            with self._near_lock:
                for cid in removed:
                    self._near.remove(prev[cid])
                for cid in touched:
                    self._near.add(conns[cid])
            expired = [cid for cid, leave in self._gone.items() if leave < now]
            # Only touched, removed and expired rows can have moved or left: they come out
            # of the order while their keys are still the ones it was sorted by.
            self._order = _without(self._order, {*touched, *removed, *expired}, self._keys)
            # The views already handed out keep reading the times of their own poll.
            self._seen = dict(self._seen)
            for cid in removed:
                self._count(prev[cid], -1)
                self._keys.pop(cid, None)
                self._flash.pop(cid, None)
                self._gone.pop(cid, None)
                self._seen.pop(cid, None)
                self._ties.pop(cid, None)
            for cid in touched:
                self._seen[cid] = now
                self._ties[cid] = tie_key(conns[cid])
                old = prev.get(cid)
                if old is not None:
                    self._count(old, -1)
                self._count(conns[cid], +1)
            until = now + FLASH_SECONDS
            for cid in delta.new:
                self._flash[cid] = (Flash.NEW, until)
            for cid in delta.changed:
                self._flash[cid] = (Flash.CHANGED, until)
            for cid in delta.gone:
                self._flash[cid] = (Flash.GONE, now + GONE_SECONDS)
            self._flash = {k: v for k, v in self._flash.items() if v[1] >= now}
            self._snapshot = delta.snapshot
            self._conns = conns
            for cid in expired:  # some were removed meanwhile
                self._gone.pop(cid, None)
                self._keys.pop(cid, None)
            for cid in touched:
                self._update_one(cid, conns[cid], now)
            # The touched ones still shown go back in, each where its new key belongs.
            joining = [cid for cid in touched if cid in self._keys]
            self._order = _with(self._order, joining, self._keys)
            self._history.append({**self._states, **self._tags})
            # (A clock set back by more than the period starts it again.)
            if now >= self._findings_due or now < self._findings_due - FINDINGS_SECONDS:
                self._findings = diagnose_population(
                    conns.values(), self._host, self._lang, now=now
                )
                self._findings_due = now + FINDINGS_SECONDS
            return self._publish()

    def configure(self, settings: ViewSettings) -> TableView:
        """Apply new settings: every connection is filtered and keyed again."""
        with self._lock:
            old, self._settings = self._settings, settings
            self._key = sort_key(settings.sort)
            now = self._snapshot.taken_at if self._snapshot is not None else 0.0
            same_rows = (settings.filter, settings.only) == (old.filter, old.only)
            if same_rows and settings.sort is old.sort:
                return self._publish()  # `_order` is ascending; a reversal is in `_publish`
            if same_rows:  # a new order of the same rows: re-key from the cached ties
                conns, seen, ties, key = self._conns, self._seen, self._ties, self._key
                self._keys = {
                    cid: key(conns[cid], seen.get(cid, now), ties[cid]) for cid in self._keys
                }
            else:
                self._keys.clear()
                self._gone.clear()
                for cid, conn in self._conns.items():
                    self._update_one(cid, conn, now)
            self._order = sorted(self._keys, key=self._keys.__getitem__)
            return self._publish()

    @property
    def view(self) -> TableView:
        return self._view

    def nearby(self, conn: Connection, view: TableView) -> list[Connection]:
        """The connections of `view` (this model's, maybe a poll old) that an explanation
        of `conn` looks at: what `explain` finds among them is what it finds among all."""
        with self._near_lock:
            ids = self._near.around(conn)
        conns = view.connections
        return [other for cid in ids if (other := conns.get(cid)) is not None]

    # -- internals (called with the lock held) ----------------------------------------

    def _count(self, conn: Connection, sign: int) -> None:
        if conn.gone_at is not None:
            return
        self._states[conn.record.state.value] += sign
        for tag in conn.tags:
            self._tags[tag.value] += sign

    def _update_one(self, cid: str, conn: Connection, now: float) -> None:
        """Refresh one connection's membership and key."""
        settings = self._settings
        shown = settings.filter.matches(_as_alive(conn)) and (
            not settings.only or not settings.only.isdisjoint(conn.tags)
        )
        if shown and conn.gone_at is not None:
            leave = conn.gone_at + GONE_SECONDS
            if leave < now:
                shown = False
            else:
                self._gone[cid] = leave
        if shown:
            self._keys[cid] = self._key(conn, self._seen.get(cid, now), self._ties[cid])
        elif cid in self._keys:
            del self._keys[cid]
            self._gone.pop(cid, None)

    def _shown_order(self) -> Iterable[str]:
        """Shown connection ids in display order (`_order` is always ascending)."""
        return reversed(self._order) if self._settings.descending else self._order

    def _publish(self) -> TableView:
        self._seq += 1
        settings = self._settings
        groups: dict[str, str] = {}
        depth: dict[str, int] = {}
        if settings.mode is ViewMode.ALL:
            rows = tuple(self._shown_order())
        elif settings.mode is ViewMode.LISTENER:
            rows = self._by_listener(groups, depth)
        else:
            rows = self._by_process(groups, depth)
        live = sum(self._states.values())
        self._view = TableView(
            seq=self._seq,
            snapshot=self._snapshot,
            settings=settings,
            rows=rows,
            connections=self._conns,
            groups=MappingProxyType(groups),
            depth=MappingProxyType(depth),
            seen=MappingProxyType(self._seen),
            flash=MappingProxyType(dict(self._flash)),
            live=live,
            state_counts=MappingProxyType({k: v for k, v in self._states.items() if v}),
            tag_counts=MappingProxyType({k: v for k, v in self._tags.items() if v}),
            history=tuple(self._history),
            findings=self._findings,
        )
        return self._view

    def _by_listener(self, groups: dict[str, str], depth: dict[str, int]) -> tuple[str, ...]:
        """Each listener followed by the connections accepted on its address and port."""
        conns = self._conns
        listeners: dict[tuple[str, int], str] = {}
        for cid, conn in conns.items():
            if conn.record.state is TcpState.LISTEN and conn.gone_at is None:
                listeners[(conn.record.local.address, conn.record.local.port)] = cid
        members: dict[str, list[str]] = {cid: [] for cid in listeners.values()}
        other: list[str] = []
        for cid in self._shown_order():
            conn = conns[cid]
            if cid in members:
                continue
            local = conn.record.local
            owner = listeners.get((local.address, local.port))
            if owner is None:
                wildcard = "::" if ":" in local.address else "0.0.0.0"
                owner = listeners.get((wildcard, local.port)) or listeners.get(("::", local.port))
            if owner is None:
                other.append(cid)
            else:
                members[owner].append(cid)
        ordered = sorted(members, key=self._ties.__getitem__)
        rows: list[str] = []
        for lid in ordered:
            if not members[lid] and lid not in self._keys:
                continue
            heading = f"{GROUP_PREFIX}listener:{lid}"
            groups[heading] = _listener_heading(conns[lid], [conns[c] for c in members[lid]])
            rows.append(heading)
            rows.append(lid)
            for cid in members[lid]:
                depth[cid] = 1
            rows.extend(members[lid])
        if other:
            heading = f"{GROUP_PREFIX}other"
            groups[heading] = f"not accepted by a listener here: {len(other)} (outgoing and other)"
            rows.append(heading)
            for cid in other:
                depth[cid] = 1
            rows.extend(other)
        return tuple(rows)

    def _by_process(self, groups: dict[str, str], depth: dict[str, int]) -> tuple[str, ...]:
        """A heading per owning process (with its counts per state), then its connections."""
        conns = self._conns
        members: dict[tuple[Any, ...], list[str]] = {}
        for cid in self._shown_order():
            process = conns[cid].process
            key = (1, "", 0) if process is None else (0, process.name.lower(), process.pid)
            members.setdefault(key, []).append(cid)
        rows: list[str] = []
        for key in sorted(members):
            ids = members[key]
            first = conns[ids[0]].process
            states = Counter(conns[cid].state.value for cid in ids)
            summary = ", ".join(f"{n} {s}" for s, n in states.most_common())
            heading = f"{GROUP_PREFIX}pid:{key[2]}:{key[1]}"
            if first is None:
                groups[heading] = (
                    f"no owner (TIME_WAIT, orphans, not yet accepted, other users): {summary}"
                )
            else:
                user = f", user {printable(first.user)}" if first.user else ""
                groups[heading] = f"{printable(first.name)} (pid {first.pid}{user}): {summary}"
            rows.append(heading)
            for cid in ids:
                depth[cid] = 1
            rows.extend(ids)
        return tuple(rows)


def _without(order: list[str], stale: set[str], keys: Mapping[str, Any]) -> list[str]:
    """`order` (ascending by `keys`) without the `stale` ids, found by binary search on the
    keys they were sorted by: a few hundred searches and one copy instead of a pass over
    every row. Ids of `stale` without a key are not in `order`: they are ignored."""
    leaving = sorted(keys[cid] for cid in stale if cid in keys)
    if not leaving:
        return order
    key = keys.__getitem__
    kept: list[str] = []
    start = 0
    for position in (bisect_left(order, k, key=key) for k in leaving):
        kept += order[start:position]
        start = position + 1
    kept += order[start:]
    return kept


def _with(order: list[str], joining: list[str], keys: Mapping[str, Any]) -> list[str]:
    """`order` (ascending by `keys`) with the `joining` ids in their places: one binary
    search each and one copy, where a sort would compare every row's key again."""
    if not joining:
        return order
    key = keys.__getitem__
    merged: list[str] = []
    start = 0
    for cid in sorted(joining, key=key):
        position = bisect_left(order, key(cid), start, key=key)
        merged += order[start:position]
        merged.append(cid)
        start = position
    merged += order[start:]
    return merged


def _listener_heading(listener: Connection, members: list[Connection]) -> str:
    """`*:443 nginx (pid 1201): accept queue 3 of backlog 511, 40 accepted, 2 SYN_RECV`."""
    record = listener.record
    address = "*" if _wildcard(record.local.address) else printable(record.local.address)
    if ":" in address:
        address = f"[{address}]"
    owner = (
        ""
        if listener.process is None
        else (f" {printable(listener.process.name)} (pid {listener.process.pid})")
    )
    syn_recv = queued = 0  # queued: counted in recv_q, not accepted yet
    for member in members:
        if member.record.state is TcpState.SYN_RECV:
            syn_recv += 1
        elif member.gone_at is None and awaiting_accept(member.record):
            queued += 1
    return (
        f"{address}:{record.local.port}{owner}: accept queue {record.recv_q} of backlog "
        f"{record.send_q}, {len(members) - syn_recv - queued} accepted, {syn_recv} SYN_RECV"
    )


def listener_members(
    listener: Connection, connections: Iterable[Connection]
) -> tuple[list[Connection], int]:
    """The connections that arrived on a listener's address and port, and how many are
    SYN_RECV."""
    bound = listener.record.local
    accepted: list[Connection] = []
    syn_recv = 0
    for conn in connections:
        if conn.record.local.port != bound.port or not serves(bound, conn.record.local):
            continue
        if conn is listener or conn.record.state is TcpState.LISTEN or conn.gone_at is not None:
            continue
        if conn.record.state is TcpState.SYN_RECV:
            syn_recv += 1
        accepted.append(conn)
    return accepted, syn_recv


def find_peer(conn: Connection, connections: Iterable[Connection]) -> Connection | None:
    """The other end of `conn` when it is also on this host (loopback, containers)."""
    record = conn.record
    if record.state is TcpState.LISTEN:
        return None
    local, remote = record.local, record.remote
    for other in connections:
        r = other.record
        # Ports first: one int comparison rules out nearly every connection, where
        # Endpoint's __eq__ would be a Python call for each.
        if (
            r.local.port == remote.port
            and r.remote.port == local.port
            and r.local.address == remote.address
            and r.remote.address == local.address
            and other is not conn
            and other.gone_at is None
        ):
            return other
    return None

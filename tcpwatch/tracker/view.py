"""The one-shot view of a snapshot, and the pieces of a Connection the tracker shares.

Kept apart from the tracker (and its path inference) so that a one-shot `snapshot` imports
only what it runs.
"""

from __future__ import annotations

from collections.abc import Container

from tcpwatch.model import Connection, ProcessInfo, Snapshot, SocketRecord, Transition
from tcpwatch.slots import all_slot_setters
from tcpwatch.tcp.tags import DEFAULT_THRESHOLDS, Tag, TagThresholds, classify


def first_view(
    snapshot: Snapshot, thresholds: TagThresholds = DEFAULT_THRESHOLDS
) -> dict[str, Connection]:
    """`Tracker(settings).update(snapshot).connections` without the story, for settings
    with these tag `thresholds`: the same connections (ids, owners, tags, in the same
    order) with an empty history.

    For a one-shot view that shows no history (`snapshot`): inferring how each of 50k
    connections began, and the events saying so, cost more than reading the sockets.
    """
    owners = snapshot.owners
    now = snapshot.taken_at
    view: dict[str, Connection] = {}
    for record in snapshot.sockets:
        cookie = record.cookie
        conn_id = f"0x{cookie:x}" if cookie is not None else connection_id(record, view)
        inode = record.inode
        view[conn_id] = build_connection(
            conn_id,
            record,
            owners.get(inode) if inode else None,
            now,
            None,
            (),
            classify(record, state_age_s=None, thresholds=thresholds),
            None,
            None,
        )
    return view


def _endpoint_text(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def connection_id(record: SocketRecord, taken: Container[str]) -> str:
    """The socket cookie in hex; without one, the 4-tuple (plus the inode when unconnected),
    with a `~n` suffix when that text is `taken` already (a reused 4-tuple)."""
    if record.cookie is not None:
        return f"0x{record.cookie:x}"
    base = (
        f"{_endpoint_text(record.local.address, record.local.port)}-"
        f"{_endpoint_text(record.remote.address, record.remote.port)}"
    )
    if not record.remote.port:
        base += f"#{record.inode}"
    conn_id, n = base, 1
    while conn_id in taken:
        n += 1
        conn_id = f"{base}~{n}"
    return conn_id


# Built through the slots (see `tcpwatch.slots`): a first poll makes 50k connections.
_CONNECTION_SETTERS = all_slot_setters(
    Connection,
    (
        "id",
        "record",
        "process",
        "first_seen",
        "state_since",
        "history",
        "tags",
        "gone_at",
        "former_process",
    ),
)


def build_connection(
    conn_id: str,
    record: SocketRecord,
    process: ProcessInfo | None,
    first_seen: float,
    state_since: float | None,
    history: tuple[Transition, ...],
    tags: frozenset[Tag],
    gone_at: float | None,
    former_process: ProcessInfo | None,
) -> Connection:
    """Connection(...) with every field given, positionally, built through its slots."""
    conn = object.__new__(Connection)
    s_id, s_record, s_process, s_first, s_since, s_history, s_tags, s_gone, s_former = (
        _CONNECTION_SETTERS
    )
    s_id(conn, conn_id)
    s_record(conn, record)
    s_process(conn, process)
    s_first(conn, first_seen)
    s_since(conn, state_since)
    s_history(conn, history)
    s_tags(conn, tags)
    s_gone(conn, gone_at)
    s_former(conn, former_process)
    return conn

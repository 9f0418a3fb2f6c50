"""Which connections bear on the explanation of one: kept by endpoint as polls go by.

Explaining a connection looks at others (`explain`'s `others`): every listener, a
listener's accepted and queued connections (and a queued one's neighbours in that queue),
the other CLOSE_WAIT of a leaking process, the connections toward the same destination,
the other end on this host. Found by a pass over every connection, that look costs tens
of milliseconds at 50k, and more the longer the monitor runs (the objects scatter over the
heap). This index names the candidates in a few dictionary lookups; the explanation tests
them as it tested everything before.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable

from tcpwatch.model import Connection
from tcpwatch.tcp.states import TcpState

# A bucket holds one id as itself (most hold one: a client's port or endpoint) and more in
# a dict used as an ordered set: no dict of its own for each of tens of thousands.
_Bucket = str | dict[str, None]


def _add(index: dict[Hashable, _Bucket], key: Hashable, conn_id: str) -> None:
    bucket = index.get(key)
    if bucket is None:
        index[key] = conn_id
    elif isinstance(bucket, str):
        if bucket != conn_id:
            index[key] = {bucket: None, conn_id: None}
    else:
        bucket[conn_id] = None


def _discard(index: dict[Hashable, _Bucket], key: Hashable, conn_id: str) -> None:
    bucket = index.get(key)
    if bucket is None:
        return
    if isinstance(bucket, str):
        if bucket == conn_id:
            del index[key]
        return
    bucket.pop(conn_id, None)
    if len(bucket) == 1:
        index[key] = next(iter(bucket))


def _members(index: dict[Hashable, _Bucket], key: Hashable) -> Collection[str]:
    bucket = index.get(key)
    if bucket is None:
        return ()
    return (bucket,) if isinstance(bucket, str) else bucket


class Neighbours:
    """Connection ids by local port and by remote endpoint, plus every id seen in LISTEN
    or CLOSE_WAIT. Not thread-safe: its owner guards it.

    It answers for any view of the polls it was fed, not only the latest: an id leaves
    only when its connection leaves the tracker (after being gone for the retention
    period), and the state sets keep an id that moved on, so candidates are a superset and
    the explanation's own tests decide.
    """

    __slots__ = ("_by_port", "_by_remote", "_close_wait", "_listeners")

    def __init__(self) -> None:
        self._by_port: dict[Hashable, _Bucket] = {}
        self._by_remote: dict[Hashable, _Bucket] = {}  # by the record's own Endpoint
        self._listeners: dict[str, None] = {}
        self._close_wait: dict[str, None] = {}

    def add(self, conn: Connection) -> None:
        """A connection new to the tracker, or a new version of one already here."""
        record = conn.record
        cid = conn.id
        _add(self._by_port, record.local.port, cid)
        if record.state is TcpState.LISTEN:
            self._listeners[cid] = None
            return
        if record.state is TcpState.CLOSE_WAIT:
            self._close_wait[cid] = None
        _add(self._by_remote, record.remote, cid)

    def remove(self, conn: Connection) -> None:
        """A connection the tracker dropped: no view handed out from now on holds it alive."""
        record = conn.record
        cid = conn.id
        _discard(self._by_port, record.local.port, cid)
        self._listeners.pop(cid, None)
        self._close_wait.pop(cid, None)
        _discard(self._by_remote, record.remote, cid)

    def around(self, conn: Connection) -> list[str]:
        """Ids of every connection the explanation of `conn` may look at, once each."""
        record = conn.record
        local, remote = record.local, record.remote
        ids = dict.fromkeys(self._listeners)
        if record.state is TcpState.LISTEN:
            ids.update(dict.fromkeys(_members(self._by_port, local.port)))
            return list(ids)
        if record.state is TcpState.CLOSE_WAIT:
            ids.update(self._close_wait)
        ids.update(dict.fromkeys(_members(self._by_remote, remote)))
        # The other end on this host has our remote as its local and our local as its
        # remote: it is in both of these buckets, and one of them is small (a client's).
        toward_us = _members(self._by_remote, local)
        on_our_remote_port = _members(self._by_port, remote.port)
        ids.update(dict.fromkeys(min(toward_us, on_our_remote_port, key=len)))
        return list(ids)

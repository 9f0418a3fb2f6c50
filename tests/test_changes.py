"""Polling on what changed: a netlink poll says how it differs from the one before
(`Snapshot.changes`), and the tracker and the owner lookup then work on those changes
alone. Checked on real sockets in a private namespace: the answers must be exactly those
of a pass over every socket, poll after poll, while connections come, change and go.
"""

from __future__ import annotations

import dataclasses

from tcpwatch.model import Delta, Snapshot, SocketChanges, SocketRecord, SourceKind
from tcpwatch.sources.owners import OwnerResolver
from tcpwatch.sources.poller import open_poller
from tcpwatch.tcp.states import TcpState
from tcpwatch.tracker import Tracker
from tests.netns import private_netns, requires_root, run_scenario
from tests.records import record

# Each "step" opens pairs, closes the oldest (the client first: it lingers in TIME_WAIT),
# half-closes one, puts bytes in a receive queue, and resets one; "hold" changes nothing.
CHURN = r"""
import collections, socket, struct
l = listener(backlog=64)
l6 = listener(socket.AF_INET6, "::1", backlog=64)
pairs = collections.deque(pair(l) for _ in range(12))
pairs.extend(pair(l6, socket.AF_INET6, "::1") for _ in range(4))
report("ready")
while True:
    what = command()
    if what == "step":
        for n in range(3):
            pairs.append(pair(l6, socket.AF_INET6, "::1") if n == 2 else pair(l))
        for _ in range(2):
            c, a = pairs.popleft()
            c.close()
            a.close()
        pairs[0][0].shutdown(socket.SHUT_WR)
        pairs[1][0].send(b"unread")
        c, a = pairs[2]
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
        a.close()
        del pairs[2]
    report("done")
"""


def _same(full: Delta, following: Delta) -> None:
    assert following.connections == full.connections
    assert set(following.new) == set(full.new)
    assert set(following.changed) == set(full.changed)
    assert set(following.gone) == set(full.gone)
    key = lambda e: (e.kind.value, e.connection.id, e.to_state.value)  # noqa: E731
    assert sorted(following.events, key=key) == sorted(full.events, key=key)
    assert set(following.replaced) == set(full.replaced)
    assert set(following.dropped) == set(full.dropped)


@requires_root
def test_a_poll_on_what_changed_answers_like_a_pass_over_every_socket() -> None:
    following, full = Tracker(), Tracker()
    owners = OwnerResolver()  # told every socket each poll, as the poller is not
    snapshots: list[Snapshot] = []
    with private_netns() as netns, run_scenario(netns, CHURN) as scenario:
        poller = open_poller(netns=netns)
        try:
            scenario.expect("ready")
            for step in ["hold", "step", "hold", "step", "step", "hold", "step"]:
                scenario.send(step)
                scenario.expect("done")
                snapshot = poller.poll()
                snapshots.append(snapshot)
                expected = full.update(dataclasses.replace(snapshot, changes=None))
                _same(expected, following.update(snapshot))
                inodes = [record.inode for record in snapshot.sockets]
                assert snapshot.owners == owners.resolve(inodes, snapshot.sockets)[0]
        finally:
            poller.close()
    changes = [s.changes for s in snapshots if s.changes is not None]
    assert len(changes) == len(snapshots)
    # Each poll's changes are against the one before, and most sockets were reused.
    assert [c.base for c in changes[1:]] == [c.dump for c in changes[:-1]]
    later = list(zip(changes[1:], snapshots[1:], strict=True))
    assert all(len(c.fresh) < len(s.sockets) / 2 for c, s in later)
    assert any(c.vanished for c, _s in later) and any(c.outdated for c, _s in later)


def _snapshot(at: float, sockets: tuple[SocketRecord, ...], changes: SocketChanges) -> Snapshot:
    return Snapshot(at, at, "host", None, SourceKind.NETLINK, sockets, {}, changes=changes)


def test_a_tracker_that_missed_the_base_dump_takes_every_socket() -> None:
    """Changes against a dump this tracker never took (a poll it skipped, another tracker's
    source) are not enough: it goes over every socket, as without changes."""
    a = record(TcpState.ESTABLISHED, ("127.0.0.1", 40000), ("127.0.0.1", 80), cookie=1)
    b = record(TcpState.ESTABLISHED, ("127.0.0.1", 40001), ("127.0.0.1", 80), cookie=2)
    tracker = Tracker()
    tracker.update(_snapshot(1.0, (a,), SocketChanges(0, 1, (a,), (), ())))
    # Dump 3 against dump 2, which this tracker never took: b is not in the changes.
    delta = tracker.update(_snapshot(2.0, (a, b), SocketChanges(2, 3, (), (), ())))
    assert {conn.record.cookie for conn in delta.connections.values()} == {1, 2}
    # Against the dump it did take (3), the changes alone tell: b is gone.
    delta = tracker.update(_snapshot(3.0, (a,), SocketChanges(3, 4, (), (), (b,))))
    assert [delta.connections[cid].record.cookie for cid in delta.gone] == [2]

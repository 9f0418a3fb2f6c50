"""The drill-down's index of neighbours finds what a look at every connection finds.

`ViewModel.nearby` hands the explanation a few candidates instead of the whole view; the
explanation, the other end and a listener's members must come out exactly as they do from
the whole view, for every connection, in the view of the latest poll and of the one before.
"""

from __future__ import annotations

from tcpwatch.model import Connection
from tcpwatch.sources.poller import open_poller
from tcpwatch.tcp.explain import explain
from tcpwatch.tcp.host import HostSettings
from tcpwatch.tcp.states import TcpState
from tcpwatch.tracker.tracker import Tracker
from tcpwatch.tui.demo import BusyHost
from tcpwatch.tui.view import TableView, ViewModel, find_peer, listener_members
from tests.netns import (
    ZOO_SCENARIO,
    add_silent_route,
    private_netns,
    requires_root,
    run_scenario,
    ss,
    wait_for_zoo,
    wait_until,
)

HOST = HostSettings()
# An hour on: every CLOSE_WAIT and FIN_WAIT has lingered, so leaks are counted and named.
LATER = 3600.0


def _what_explain_sees(conn: Connection, others: list[Connection], now: float) -> tuple:
    peer = find_peer(conn, others)
    members: tuple = ()
    if conn.record.state is TcpState.LISTEN:
        accepted, syn_recv = listener_members(conn, others)
        members = (sorted(c.id for c in accepted), syn_recv)
    for at in (now, now + LATER):
        explanation = explain(conn, host=HOST, peer=peer, lang="en", now=at, others=others)
        members += (explanation,)
    return (peer.id if peer else None, members)


def assert_nearby_sees_what_all_see(model: ViewModel, view: TableView) -> int:
    """Check every connection of `view`; the number of candidates looked at in all."""
    everyone = list(view.connections.values())
    looked_at = 0
    for conn in everyone:
        near = model.nearby(conn, view)
        looked_at += len(near)
        assert _what_explain_sees(conn, near, view.now) == _what_explain_sees(
            conn, everyone, view.now
        ), conn.id
    return looked_at


@requires_root
def test_nearby_matches_every_connection_on_the_kernel() -> None:
    with private_netns() as ns:
        add_silent_route(ns)
        with run_scenario(ns, ZOO_SCENARIO) as scenario:
            scenario.expect("ready")
            wait_for_zoo(ns)
            poller = open_poller(netns=ns)
            try:
                model = ViewModel(host=HOST)
                view = model.apply(Tracker().update(poller.poll()))
            finally:
                poller.close()
            scenario.send("done")
    states = {c.record.state for c in view.connections.values()}
    assert {TcpState.LISTEN, TcpState.CLOSE_WAIT, TcpState.TIME_WAIT} <= states
    looked_at = assert_nearby_sees_what_all_see(model, view)
    # The point of the index: far fewer candidates than connections, for each connection.
    assert looked_at < len(view.connections) ** 2 / 2


# Two CLOSE_WAIT of one process (a leak); on command one of them closes into a client's
# zero window, so it stays in LAST_ACK.
LEAK_THEN_CLOSE = r"""
l = listener(socket.AF_INET, "127.0.0.1", 7101)
leaks = []
for _ in range(2):
    c, a = pair(l)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.shutdown(socket.SHUT_WR)
    leaks.append(a)
report("ready")
command()
fill(leaks[0])
leaks[0].shutdown(socket.SHUT_WR)
report("closed")
command()
"""


@requires_root
def test_nearby_keeps_a_leak_that_moved_on_for_the_view_before() -> None:
    """The view on screen still shows a CLOSE_WAIT that left it in the model's newer poll:
    the other leaked connection's page counts it, as it would from that view alone."""
    with private_netns() as ns, run_scenario(ns, LEAK_THEN_CLOSE) as scenario:
        scenario.expect("ready")
        wait_until(lambda: [r for r in ss(ns) if r.state == "CLOSE_WAIT"][1:], what="2 CLOSE_WAIT")
        poller = open_poller(netns=ns)
        try:
            model, tracker = ViewModel(host=HOST), Tracker()
            before = model.apply(tracker.update(poller.poll()))
            scenario.send("close")
            scenario.expect("closed")
            wait_until(lambda: any(r.state == "LAST_ACK" for r in ss(ns)), what="LAST_ACK")
            after = model.apply(tracker.update(poller.poll()))
        finally:
            poller.close()
        scenario.send("done")
    states = [c.record.state.value for c in after.connections.values()]
    assert "LAST_ACK" in states and states.count("CLOSE_WAIT") == 1
    assert_nearby_sees_what_all_see(model, before)
    kept = next(
        c
        for c in before.connections.values()
        if c.record.state is TcpState.CLOSE_WAIT
        and after.connections[c.id].record.state is TcpState.CLOSE_WAIT
    )
    later = explain(
        kept, host=HOST, lang="en", now=before.now + LATER, others=model.nearby(kept, before)
    )
    assert any(d.title.startswith("2 CLOSE_WAIT leaked by") for d in later.diagnoses), [
        d.title for d in later.diagnoses
    ]


def test_nearby_matches_a_poll_old_view_through_churn() -> None:
    """The page of a drill-down is built for the view on screen, which may be a poll
    behind the model: connections that arrived, changed state or left meanwhile."""
    source = BusyHost(clients=120, churn=0.1)
    tracker = Tracker()
    model = ViewModel(host=HOST)
    previous = model.apply(tracker.update(source.poll()))
    leaks = 0
    for _ in range(75):  # past the 60 s of TIME_WAIT and FIN_WAIT2: connections leave
        view = model.apply(tracker.update(source.poll()))
        assert_nearby_sees_what_all_see(model, previous)
        leaks = max(leaks, previous.state_counts.get("CLOSE_WAIT", 0))
        previous = view
    assert_nearby_sees_what_all_see(model, previous)
    assert leaks >= 5  # the leak the explanation counts was there to count

"""The state machine: edges, path inference under hints, ladder rows."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tcpwatch.tcp.fsm import (
    DIAGRAM_SIZE,
    EDGES,
    STATE_DIAGRAM,
    Direction,
    EdgeKind,
    PathHints,
    close_tail,
    edge,
    edges_between,
    first_path,
    infer_path,
    ladder,
)
from tcpwatch.tcp.states import TcpState as S
from tests.netns import private_netns, requires_root, run_scenario, wait_until

ALL_HINTS = [
    PathHints(),
    PathHints(active_close=True),
    PathHints(active_close=False),
    PathHints(reset=True),
    PathHints(reset=False),
    PathHints(outgoing=True),
    PathHints(outgoing=False),
    PathHints(simultaneous_close=True),
    PathHints(simultaneous_close=False),
    PathHints(active_close=True, reset=True, outgoing=False, simultaneous_close=True),
]


def _valid(path: tuple[S, ...]) -> bool:
    return all(edge(a, b) is not None for a, b in itertools.pairwise(path))


def test_every_state_has_a_way_in_and_out() -> None:
    for state in S:
        if state is not S.CLOSED:
            assert any(e.to is state for e in EDGES), state
            assert any(e.frm is state for e in EDGES), state


def test_every_edge_is_reachable_from_closed_and_leads_back() -> None:
    for e in EDGES:
        into = infer_path(None, e.frm)
        out = infer_path(e.to, S.CLOSED)
        assert into[0] is S.CLOSED and into[-1] is e.frm and _valid(into)
        assert out[-1] is S.CLOSED and _valid(out)


def test_triggers_use_tcpdump_flags_and_real_closes_send_fin_ack() -> None:
    flags = {"[S]", "[S.]", "[.]", "[P.]", "[F.]", "[R]", "[R.]"}
    for e in EDGES:
        t = e.trigger
        assert t.text, e
        assert t.recv is None or t.recv in flags
        assert t.send is None or t.send in flags
        assert t.call or t.timer or t.recv or t.send
    assert edge(S.ESTABLISHED, S.FIN_WAIT1).trigger.text == "close() / send [F.]"
    assert edge(S.SYN_SENT, S.ESTABLISHED).trigger.text == "recv [S.] / send [.]"
    assert edge(S.TIME_WAIT, S.CLOSED).trigger.timer == "2MSL"
    assert edge(S.FIN_WAIT2, S.CLOSED).trigger.timer == "tcp_fin_timeout"
    assert edge(S.SYN_SENT, S.CLOSED).trigger.recv == "[R.]"  # connection refused
    assert {e.trigger.timer for e in edges_between(S.SYN_SENT, S.CLOSED)} >= {"SYN retries"}
    assert {e.trigger.timer for e in edges_between(S.SYN_RECV, S.CLOSED)} >= {"SYN-ACK retries"}
    assert edge(S.SYN_SENT, S.SYN_RECV).kind is EdgeKind.OPEN_SIMULTANEOUS
    assert edge(S.FIN_WAIT1, S.TIME_WAIT).trigger.recv == "[F.]"
    assert edge(S.LISTEN, S.ESTABLISHED) is None


@pytest.mark.parametrize("hints", ALL_HINTS, ids=repr)
def test_infer_path_all_pairs_is_a_chain_of_edges(hints: PathHints) -> None:
    for a, b in itertools.product([None, *S], S):
        path = infer_path(a, b, hints=hints)
        assert path[0] is (S.CLOSED if a is None else a)
        assert path[-1] is b
        assert len(set(path)) == len(path)
        assert _valid(path), (a, b, path)


def test_same_state_is_a_one_state_path() -> None:
    assert infer_path(S.ESTABLISHED, S.ESTABLISHED) == (S.ESTABLISHED,)


def test_established_to_closed_follows_hints() -> None:
    assert infer_path(S.ESTABLISHED, S.CLOSED) == (
        S.ESTABLISHED,
        S.CLOSE_WAIT,
        S.LAST_ACK,
        S.CLOSED,
    )
    assert infer_path(S.ESTABLISHED, S.CLOSED, hints=PathHints(active_close=True)) == (
        S.ESTABLISHED,
        S.FIN_WAIT1,
        S.FIN_WAIT2,
        S.TIME_WAIT,
        S.CLOSED,
    )
    assert infer_path(S.ESTABLISHED, S.CLOSED, hints=PathHints(reset=True)) == (
        S.ESTABLISHED,
        S.CLOSED,
    )
    assert infer_path(S.ESTABLISHED, S.TIME_WAIT, hints=PathHints(simultaneous_close=True)) == (
        S.ESTABLISHED,
        S.FIN_WAIT1,
        S.CLOSING,
        S.TIME_WAIT,
    )
    # Linux passes through FIN_WAIT2 even when the FIN acknowledges ours.
    assert infer_path(S.FIN_WAIT1, S.TIME_WAIT) == (S.FIN_WAIT1, S.FIN_WAIT2, S.TIME_WAIT)


def test_opening_follows_outgoing_hint() -> None:
    assert infer_path(None, S.ESTABLISHED, hints=PathHints(outgoing=True)) == (
        S.CLOSED,
        S.SYN_SENT,
        S.ESTABLISHED,
    )
    assert infer_path(None, S.ESTABLISHED, hints=PathHints(outgoing=False)) == (
        S.CLOSED,
        S.SYN_RECV,
        S.ESTABLISHED,
    )
    assert infer_path(S.LISTEN, S.ESTABLISHED) == (S.LISTEN, S.SYN_RECV, S.ESTABLISHED)


def test_hints_never_override_the_observed_states() -> None:
    path = infer_path(S.CLOSE_WAIT, S.CLOSED, hints=PathHints(active_close=True))
    assert path[0] is S.CLOSE_WAIT and _valid(path)
    path = infer_path(S.SYN_SENT, S.ESTABLISHED, hints=PathHints(outgoing=False))
    assert path == (S.SYN_SENT, S.ESTABLISHED)


def test_first_path() -> None:
    assert first_path(S.ESTABLISHED, outgoing=True) == (S.SYN_SENT, S.ESTABLISHED)
    assert first_path(S.ESTABLISHED, outgoing=False) == (S.SYN_RECV, S.ESTABLISHED)
    assert first_path(S.LISTEN, outgoing=None) == (S.LISTEN,)
    assert first_path(S.CLOSE_WAIT, outgoing=False) == (
        S.SYN_RECV,
        S.ESTABLISHED,
        S.CLOSE_WAIT,
    )
    assert first_path(S.TIME_WAIT, outgoing=True) == (
        S.SYN_SENT,
        S.ESTABLISHED,
        S.FIN_WAIT1,
        S.FIN_WAIT2,
        S.TIME_WAIT,
    )


def test_close_tail() -> None:
    assert close_tail(S.TIME_WAIT) == (S.TIME_WAIT, S.CLOSED)
    assert close_tail(S.LAST_ACK) == (S.LAST_ACK, S.CLOSED)
    assert close_tail(S.SYN_SENT) == (S.SYN_SENT, S.CLOSED)
    assert close_tail(S.ESTABLISHED, hints=PathHints(reset=True)) == (S.ESTABLISHED, S.CLOSED)
    # A TIME_WAIT lasts 60 s and would have been polled: a vanished active closer timed out.
    assert close_tail(S.ESTABLISHED, hints=PathHints(active_close=True)) == (
        S.ESTABLISHED,
        S.FIN_WAIT1,
        S.FIN_WAIT2,
        S.CLOSED,
    )
    # A handshake that vanished without a reset timed out; it did not run a whole life.
    timed_out = PathHints(reset=False)
    assert close_tail(S.SYN_SENT, hints=timed_out) == (S.SYN_SENT, S.CLOSED)
    assert edge(S.SYN_SENT, S.CLOSED, hints=timed_out).trigger.timer == "SYN retries"
    assert close_tail(S.SYN_RECV, hints=timed_out) == (S.SYN_RECV, S.CLOSED)
    assert edge(S.SYN_RECV, S.CLOSED, hints=timed_out).trigger.timer == "SYN-ACK retries"
    for state in S:
        tail = close_tail(state)
        assert tail[0] is state and tail[-1] is S.CLOSED and _valid(tail)


def _rows(path: tuple[S, ...], **kw: object) -> list[tuple[str, str | None, S | None]]:
    return [(r.direction.value, r.flags, r.local_state) for r in ladder(path, **kw)]


def test_ladder_client_handshake_and_active_close() -> None:
    path = (S.CLOSED, S.SYN_SENT, S.ESTABLISHED, S.FIN_WAIT1, S.FIN_WAIT2, S.TIME_WAIT, S.CLOSED)
    assert _rows(path) == [
        ("out", "[S]", S.SYN_SENT),
        ("in", "[S.]", None),
        ("out", "[.]", S.ESTABLISHED),
        ("out", "[F.]", S.FIN_WAIT1),
        ("in", "[.]", S.FIN_WAIT2),
        ("in", "[F.]", None),
        ("out", "[.]", S.TIME_WAIT),
        ("local", None, S.CLOSED),
    ]
    rows = ladder(path)
    assert rows[0].label == "connect()" and rows[-1].label == "2MSL"
    assert rows[1].remote_state is S.SYN_RECV and rows[6].remote_state is S.CLOSED


def test_ladder_server_handshake_and_passive_close() -> None:
    path = (S.CLOSED, S.SYN_RECV, S.ESTABLISHED, S.CLOSE_WAIT, S.LAST_ACK, S.CLOSED)
    assert _rows(path) == [
        ("in", "[S]", None),
        ("out", "[S.]", S.SYN_RECV),
        ("in", "[.]", S.ESTABLISHED),
        ("in", "[F.]", None),
        ("out", "[.]", S.CLOSE_WAIT),
        ("out", "[F.]", S.LAST_ACK),
        ("in", "[.]", S.CLOSED),
    ]
    assert ladder(path)[4].remote_state is S.FIN_WAIT2


def test_ladder_reset_and_simultaneous_close_and_inferred_mask() -> None:
    assert _rows((S.ESTABLISHED, S.CLOSED), hints=PathHints(reset=True)) == [
        ("in", "[R]", S.CLOSED)
    ]
    assert _rows((S.SYN_SENT, S.CLOSED)) == [("in", "[R.]", S.CLOSED)]
    path = (S.ESTABLISHED, S.FIN_WAIT1, S.CLOSING, S.TIME_WAIT)
    rows = ladder(path, inferred_mask=(False, True, True, False))
    assert [(r.direction.value, r.flags) for r in rows] == [
        ("out", "[F.]"),
        ("in", "[F.]"),
        ("out", "[.]"),
        ("in", "[.]"),
    ]
    assert [r.inferred for r in rows] == [True, True, True, False]
    with pytest.raises(ValueError):
        ladder((S.LISTEN, S.ESTABLISHED))
    with pytest.raises(ValueError):
        ladder(path, inferred_mask=(True,))


def test_state_diagram_places_every_state_once_in_the_grid() -> None:
    assert set(STATE_DIAGRAM) == set(S)
    assert len(set(STATE_DIAGRAM.values())) == len(STATE_DIAGRAM)
    cols, rows = DIAGRAM_SIZE
    assert all(0 <= c < cols and 0 <= r < rows for c, r in STATE_DIAGRAM.values())


def test_path_directions_are_local_perspective() -> None:
    rows = ladder((S.CLOSED, S.LISTEN))
    assert rows == (rows[0],) and rows[0].direction is Direction.LOCAL
    assert rows[0].label == "listen()"


# ---------------------------------------------------------------------------------------
# Against the kernel: every transition Linux logs is an edge here, and the paths inferred
# between the ends of a real connection's life are the ones Linux took.

TRACEFS = "/sys/kernel/tracing"
_EVENT_LINE = re.compile(
    r"inet_sock_set_state: family=\S+ protocol=IPPROTO_TCP sport=(\d+) dport=(\d+) .*"
    r"oldstate=TCP_(\w+) newstate=TCP_(\w+)"
)

LIFE_SCENARIO = r"""
import struct
l = listener(address="127.0.0.1")
spare = socket.socket()
spare.bind(("127.0.0.1", 0))
closed_port = spare.getsockname()[1]
spare.close()
report("ports", port=l.getsockname()[1], closed_port=closed_port)
command()
ports = {}
c, a = pair(l)                       # the client closes first, the server follows
ports["active"] = c.getsockname()[1]
c.close(); a.recv(1); a.close()
c, a = pair(l)                       # half-close: shutdown(SHUT_WR), data still flows back
ports["half"] = c.getsockname()[1]
c.shutdown(socket.SHUT_WR); a.recv(1); a.sendall(b"bye"); a.close()
assert c.recv(10) == b"bye"; c.recv(10); c.close()
c, a = pair(l)                       # abortive close: SO_LINGER 0 sends [R]
ports["reset"] = c.getsockname()[1]
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); c.close()
try:
    a.recv(1)
except ConnectionResetError:
    pass
a.close()
r = socket.socket()                  # nothing listens there: refused
ports["refused"] = r.connect_ex(("127.0.0.1", closed_port)) and r.getsockname()[1]
r.close()
l.close()
report("done", **ports)
command()
"""


def _kernel_state(name: str) -> S:
    return S(name)


@contextmanager
def _trace_instance(filter_text: str) -> Iterator[str]:
    """A private tracefs instance logging sock:inet_sock_set_state; removed afterwards."""
    if not os.path.isdir(os.path.join(TRACEFS, "instances")):
        subprocess.run(["mount", "-t", "tracefs", "nodev", TRACEFS], check=False)
    if not os.path.isdir(os.path.join(TRACEFS, "instances")):
        pytest.skip("needs tracefs at /sys/kernel/tracing")
    path = os.path.join(TRACEFS, "instances", f"tcpwatch-fsm-{os.getpid()}")
    os.mkdir(path)
    event = os.path.join(path, "events", "sock", "inet_sock_set_state")
    try:
        with open(os.path.join(event, "filter"), "w") as f:
            f.write(filter_text)
        with open(os.path.join(event, "enable"), "w") as f:
            f.write("1")
        yield path
    finally:
        with open(os.path.join(event, "enable"), "w") as f:
            f.write("0")
        os.rmdir(path)


def _kernel_paths(trace: str) -> dict[tuple[int, int], list[S]]:
    """Each socket's states in order, keyed by (local port, remote port); the kernel's
    CLOSE at either end is tcpwatch's CLOSED. Every logged pair must be an edge."""
    paths: dict[tuple[int, int], list[S]] = {}
    for line in trace.splitlines():
        match = _EVENT_LINE.search(line)
        if match is None:
            continue
        sport, dport = int(match[1]), int(match[2])
        old, new = _kernel_state(match[3]), _kernel_state(match[4])
        old = S.CLOSED if old is S.CLOSE else old
        new = S.CLOSED if new is S.CLOSE else new
        assert edge(old, new) is not None, f"kernel did {old.value} -> {new.value}"
        if sport == 0:  # connect() logs SYN_SENT before the local port is chosen
            continue
        path = paths.setdefault((sport, dport), [old])
        assert path[-1] is old, (sport, dport, path, old)
        path.append(new)
    return paths


@requires_root
def test_kernel_transitions_are_edges_and_inferred_paths_match() -> None:
    with private_netns() as ns, run_scenario(ns, LIFE_SCENARIO) as scenario:
        ports = scenario.expect("ports")
        port, closed = ports["port"], ports["closed_port"]
        with _trace_instance(f"sport == {port} || dport == {port} || dport == {closed}") as inst:
            scenario.send("go")
            clients = scenario.expect("done")

            def logged() -> str | None:
                with open(os.path.join(inst, "trace")) as f:
                    text = f.read()
                return (
                    text if f"sport={port} dport=0" in text and "LISTEN newstate" in text else None
                )

            trace = wait_until(logged, timeout=5, what="the listener's close in the trace")
        scenario.send("exit")
    kernel = _kernel_paths(trace)

    def without_time_wait(path: tuple[S, ...]) -> list[S]:
        # The kernel logs the hand-over to the TIME_WAIT minisocket as X -> CLOSE.
        return [s for s in path if s is not S.TIME_WAIT]

    # As the tracker sees them: opened, seen ESTABLISHED, then closed or gone.
    opened_out = list(infer_path(S.SYN_SENT, S.ESTABLISHED))
    opened_in = list(infer_path(S.SYN_RECV, S.ESTABLISHED))
    active = opened_out + list(
        infer_path(S.ESTABLISHED, S.CLOSED, hints=PathHints(active_close=True))[1:]
    )
    passive = opened_in + list(close_tail(S.ESTABLISHED)[1:])
    reset_tail = list(close_tail(S.ESTABLISHED, hints=PathHints(reset=True))[1:])
    assert passive == [S.SYN_RECV, S.ESTABLISHED, S.CLOSE_WAIT, S.LAST_ACK, S.CLOSED]
    # An accepted socket is cloned from the listener: the kernel logs LISTEN -> SYN_RECV.
    children = {name: kernel[(port, clients[name])] for name in ("active", "half", "reset")}
    assert all(path[0] is S.LISTEN for path in children.values())
    for name in ("active", "half"):
        assert kernel[(clients[name], port)] == without_time_wait(tuple(active))
        assert children[name][1:] == passive
    assert kernel[(clients["reset"], port)] == opened_out + reset_tail
    assert children["reset"][1:] == opened_in + reset_tail
    assert kernel[(clients["refused"], closed)] == list(close_tail(S.SYN_SENT))
    assert kernel[(port, 0)] == list(close_tail(S.LISTEN))

"""The TCP state machine as Linux runs it, and inference of the states between two sightings.

Polls see a socket only now and then, so most transitions are never observed. This module
knows every edge of RFC 793's machine as Linux implements it, annotated with what drives it
(a segment received or sent, written as tcpdump prints the flags: `[S]`, `[S.]`, `[.]`,
`[P.]`, `[F.]`, `[R]`, `[R.]`; an application call; or a timer), and finds the most likely
path between two observed states given what else the host shows (`PathHints`).

CLOSED and CLOSE. `TcpState.CLOSED` is a pseudo-state: the connection does not exist (before
its first segment, after it is gone). `TcpState.CLOSE` is the kernel's own `TCP_CLOSE`: a
socket object that exists but has no connection, e.g. a freshly bound socket, or one whose
connection was reset or timed out while the application still holds the descriptor. The
kernel's tracepoint `sock:inet_sock_set_state` reports every end of life as `X -> CLOSE`
(including the hand-over to a TIME_WAIT minisocket, logged as `FIN_WAIT2 -> CLOSE`); in
tcpwatch a gone connection ends in CLOSED, and CLOSE appears only when a poll actually saw a
socket in that state (sock_diag rarely dumps one: it is transient, and usually unhashed).
So a tracepoint `X -> CLOSE` compares with tcpwatch's `X -> CLOSED`, except where tcpwatch
observed CLOSE itself.

Edges out of CLOSED start a connection's life; edges into CLOSED end it. A path between
any two states always exists (through CLOSED if need be, which means the 4-tuple was reused).

Linux details kept here:
- An accepted connection is born as a request sock in SYN_RECV (the listener stays in
  LISTEN), so its life as polls see it starts with `CLOSED -> SYN_RECV`. RFC 793's
  `LISTEN -> SYN_RECV` is kept too: the tracepoint logs the accepted socket's birth that
  way, because the kernel clones it from the listener.
- A FIN that also acknowledges our FIN (FIN_WAIT1 receiving `[F.]`) moves Linux through
  FIN_WAIT2 to TIME_WAIT in one step; the kernel logs FIN_WAIT2, so inference prefers
  FIN_WAIT1, FIN_WAIT2, TIME_WAIT; the direct RFC edge exists but costs more.
- TIME_WAIT lasts 2MSL, fixed at 60 s on Linux (TCP_TIMEWAIT_LEN), not a sysctl.
- An orphaned FIN_WAIT2 (no process holds it) is dropped after `tcp_fin_timeout`.
- Real closes send `[F.]` (FIN with ACK), not a bare `[F]`.
"""

from __future__ import annotations

import enum
import functools
import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tcpwatch.tcp.states import TcpState

__all__ = [
    "DIAGRAM_SIZE",
    "EDGES",
    "STATE_DIAGRAM",
    "Direction",
    "Edge",
    "EdgeKind",
    "LadderStep",
    "PathHints",
    "Role",
    "Trigger",
    "close_tail",
    "edge",
    "edges_between",
    "first_path",
    "infer_path",
    "ladder",
]

S = TcpState  # short names for the edge table below


class Role(enum.Enum):
    """Which end of a connection takes an edge."""

    CLIENT = "client"  # the end that called connect()
    SERVER = "server"  # the end accepted from a listener
    ACTIVE_CLOSER = "active_closer"  # the end that sent the first FIN
    PASSIVE_CLOSER = "passive_closer"  # the end that received the first FIN
    EITHER = "either"


class EdgeKind(enum.Enum):
    """What kind of step an edge is; inference weighs kinds against `PathHints`."""

    SETUP = "setup"  # socket()/bind()/listen(): no segment
    OPEN_ACTIVE = "open_active"  # connect()
    OPEN_PASSIVE = "open_passive"  # a SYN arrives at a listener
    OPEN_SIMULTANEOUS = "open_simultaneous"  # both ends sent [S]
    ESTABLISH = "establish"  # the handshake's last segment
    CLOSE_ACTIVE = "close_active"  # we send the first FIN, or its aftermath
    CLOSE_PASSIVE = "close_passive"  # the peer sent the first FIN, or its aftermath
    CLOSE_SIMULTANEOUS = "close_simultaneous"  # both FINs crossed (CLOSING)
    CLOSE_FAST = "close_fast"  # FIN_WAIT1 gets FIN+ACK at once (RFC edge)
    RESET = "reset"  # a [R] received or sent
    TIMEOUT = "timeout"  # a timer gave up (retries exhausted, fin timeout)
    EXPIRE = "expire"  # TIME_WAIT's 2MSL ran out: the normal end
    RELEASE = "release"  # the application closed a socket that had no connection


@dataclass(frozen=True, slots=True)
class Trigger:
    """What drives an edge, in the order it happens: a call or a timer, a received segment,
    then the segment sent in answer. Flags are tcpdump's (`[S.]` is SYN+ACK)."""

    call: str | None = None  # e.g. "close()"
    timer: str | None = None  # e.g. "2MSL"
    recv: str | None = None  # flags of the segment received, e.g. "[F.]"
    send: str | None = None  # flags of the segment sent, e.g. "[.]"

    @property
    def text(self) -> str:
        """E.g. `recv [S.] / send [.]`, `close() / send [F.]`, `2MSL`."""
        parts = [p for p in (self.call, self.timer) if p]
        if self.recv:
            parts.append(f"recv {self.recv}")
        if self.send:
            parts.append(f"send {self.send}")
        return " / ".join(parts)

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class Edge:
    """One transition of the machine.

    `peer_on_recv` is the state the other end is in when it sends what we receive;
    `peer_on_send` the state it enters when it gets what we send (None: unchanged or
    unknown). They let a ladder diagram show both ends.
    """

    frm: TcpState
    to: TcpState
    trigger: Trigger
    role: Role
    kind: EdgeKind
    peer_on_recv: TcpState | None = None
    peer_on_send: TcpState | None = None


def _e(
    frm: TcpState,
    to: TcpState,
    role: Role,
    kind: EdgeKind,
    *,
    call: str | None = None,
    timer: str | None = None,
    recv: str | None = None,
    send: str | None = None,
    peer_recv: TcpState | None = None,
    peer_send: TcpState | None = None,
) -> Edge:
    return Edge(frm, to, Trigger(call, timer, recv, send), role, kind, peer_recv, peer_send)


R = Role
K = EdgeKind

# Order matters: for a pair of states with several edges, the first is the usual one.
EDGES: tuple[Edge, ...] = (
    # Opening.
    _e(S.CLOSED, S.LISTEN, R.SERVER, K.SETUP, call="listen()"),
    _e(
        S.CLOSED,
        S.SYN_SENT,
        R.CLIENT,
        K.OPEN_ACTIVE,
        call="connect()",
        send="[S]",
        peer_send=S.SYN_RECV,
    ),
    _e(
        S.CLOSED,
        S.SYN_RECV,
        R.SERVER,
        K.OPEN_PASSIVE,
        recv="[S]",
        send="[S.]",
        peer_recv=S.SYN_SENT,
        peer_send=S.ESTABLISHED,
    ),
    _e(S.CLOSED, S.CLOSE, R.EITHER, K.SETUP, call="socket()"),
    _e(S.CLOSE, S.LISTEN, R.SERVER, K.SETUP, call="listen()"),
    _e(
        S.CLOSE,
        S.SYN_SENT,
        R.CLIENT,
        K.OPEN_ACTIVE,
        call="connect()",
        send="[S]",
        peer_send=S.SYN_RECV,
    ),
    _e(
        S.LISTEN,
        S.SYN_RECV,
        R.SERVER,
        K.OPEN_PASSIVE,
        recv="[S]",
        send="[S.]",
        peer_recv=S.SYN_SENT,
        peer_send=S.ESTABLISHED,
    ),
    _e(S.LISTEN, S.CLOSED, R.SERVER, K.RELEASE, call="close()"),
    _e(
        S.SYN_SENT,
        S.ESTABLISHED,
        R.CLIENT,
        K.ESTABLISH,
        recv="[S.]",
        send="[.]",
        peer_recv=S.SYN_RECV,
        peer_send=S.ESTABLISHED,
    ),
    _e(
        S.SYN_SENT,
        S.SYN_RECV,
        R.EITHER,
        K.OPEN_SIMULTANEOUS,
        recv="[S]",
        send="[S.]",
        peer_recv=S.SYN_SENT,
        peer_send=S.SYN_RECV,
    ),
    _e(S.SYN_SENT, S.CLOSED, R.CLIENT, K.RESET, recv="[R.]", peer_recv=S.CLOSED),
    _e(S.SYN_SENT, S.CLOSED, R.CLIENT, K.TIMEOUT, timer="SYN retries"),
    _e(S.SYN_SENT, S.CLOSED, R.CLIENT, K.RELEASE, call="close()"),
    _e(S.SYN_SENT, S.CLOSE, R.CLIENT, K.RESET, recv="[R.]", peer_recv=S.CLOSED),
    _e(S.SYN_SENT, S.CLOSE, R.CLIENT, K.TIMEOUT, timer="SYN retries"),
    _e(S.SYN_RECV, S.ESTABLISHED, R.SERVER, K.ESTABLISH, recv="[.]", peer_recv=S.ESTABLISHED),
    _e(S.SYN_RECV, S.CLOSED, R.SERVER, K.RESET, recv="[R]", peer_recv=S.CLOSED),
    _e(S.SYN_RECV, S.CLOSED, R.SERVER, K.TIMEOUT, timer="SYN-ACK retries"),
    _e(
        S.SYN_RECV,
        S.FIN_WAIT1,
        R.ACTIVE_CLOSER,
        K.CLOSE_ACTIVE,
        call="close()",
        send="[F.]",
        peer_send=S.CLOSE_WAIT,
    ),
    # Established: the four-way close, active side.
    _e(
        S.ESTABLISHED,
        S.FIN_WAIT1,
        R.ACTIVE_CLOSER,
        K.CLOSE_ACTIVE,
        call="close()",
        send="[F.]",
        peer_send=S.CLOSE_WAIT,
    ),
    _e(
        S.ESTABLISHED,
        S.FIN_WAIT1,
        R.ACTIVE_CLOSER,
        K.CLOSE_ACTIVE,
        call="shutdown()",
        send="[F.]",
        peer_send=S.CLOSE_WAIT,
    ),
    _e(
        S.FIN_WAIT1,
        S.FIN_WAIT2,
        R.ACTIVE_CLOSER,
        K.CLOSE_ACTIVE,
        recv="[.]",
        peer_recv=S.CLOSE_WAIT,
    ),
    _e(
        S.FIN_WAIT2,
        S.TIME_WAIT,
        R.ACTIVE_CLOSER,
        K.CLOSE_ACTIVE,
        recv="[F.]",
        send="[.]",
        peer_recv=S.LAST_ACK,
        peer_send=S.CLOSED,
    ),
    _e(
        S.FIN_WAIT1,
        S.TIME_WAIT,
        R.ACTIVE_CLOSER,
        K.CLOSE_FAST,
        recv="[F.]",
        send="[.]",
        peer_recv=S.LAST_ACK,
        peer_send=S.CLOSED,
    ),
    _e(
        S.FIN_WAIT1,
        S.CLOSING,
        R.EITHER,
        K.CLOSE_SIMULTANEOUS,
        recv="[F.]",
        send="[.]",
        peer_recv=S.FIN_WAIT1,
    ),
    _e(
        S.CLOSING,
        S.TIME_WAIT,
        R.EITHER,
        K.CLOSE_SIMULTANEOUS,
        recv="[.]",
        peer_recv=S.CLOSING,
    ),
    _e(S.TIME_WAIT, S.CLOSED, R.ACTIVE_CLOSER, K.EXPIRE, timer="2MSL"),
    _e(S.FIN_WAIT2, S.CLOSED, R.ACTIVE_CLOSER, K.TIMEOUT, timer="tcp_fin_timeout"),
    _e(S.FIN_WAIT1, S.CLOSED, R.ACTIVE_CLOSER, K.RESET, recv="[R]", peer_recv=S.CLOSED),
    _e(S.FIN_WAIT1, S.CLOSED, R.ACTIVE_CLOSER, K.TIMEOUT, timer="FIN retries"),
    _e(S.FIN_WAIT2, S.CLOSED, R.ACTIVE_CLOSER, K.RESET, recv="[R]", peer_recv=S.CLOSED),
    _e(S.CLOSING, S.CLOSED, R.EITHER, K.RESET, recv="[R]", peer_recv=S.CLOSED),
    _e(S.CLOSING, S.CLOSED, R.EITHER, K.TIMEOUT, timer="FIN retries"),
    _e(S.FIN_WAIT1, S.CLOSE, R.ACTIVE_CLOSER, K.RESET, recv="[R]", peer_recv=S.CLOSED),
    _e(S.FIN_WAIT2, S.CLOSE, R.ACTIVE_CLOSER, K.RESET, recv="[R]", peer_recv=S.CLOSED),
    # Established: the four-way close, passive side.
    _e(
        S.ESTABLISHED,
        S.CLOSE_WAIT,
        R.PASSIVE_CLOSER,
        K.CLOSE_PASSIVE,
        recv="[F.]",
        send="[.]",
        peer_recv=S.FIN_WAIT1,
        peer_send=S.FIN_WAIT2,
    ),
    _e(
        S.CLOSE_WAIT,
        S.LAST_ACK,
        R.PASSIVE_CLOSER,
        K.CLOSE_PASSIVE,
        call="close()",
        send="[F.]",
        peer_send=S.TIME_WAIT,
    ),
    _e(
        S.LAST_ACK,
        S.CLOSED,
        R.PASSIVE_CLOSER,
        K.CLOSE_PASSIVE,
        recv="[.]",
        peer_recv=S.TIME_WAIT,
    ),
    _e(S.LAST_ACK, S.CLOSED, R.PASSIVE_CLOSER, K.RESET, recv="[R]", peer_recv=S.CLOSED),
    _e(S.LAST_ACK, S.CLOSED, R.PASSIVE_CLOSER, K.TIMEOUT, timer="FIN retries"),
    _e(S.CLOSE_WAIT, S.CLOSED, R.PASSIVE_CLOSER, K.RESET, recv="[R]", peer_recv=S.CLOSED),
    _e(S.CLOSE_WAIT, S.CLOSE, R.PASSIVE_CLOSER, K.RESET, recv="[R]", peer_recv=S.CLOSED),
    # Established: aborts.
    _e(S.ESTABLISHED, S.CLOSED, R.EITHER, K.RESET, recv="[R]", peer_recv=S.CLOSED),
    _e(
        S.ESTABLISHED,
        S.CLOSED,
        R.EITHER,
        K.RESET,
        call="close()",
        send="[R.]",
        peer_send=S.CLOSED,
    ),
    _e(S.ESTABLISHED, S.CLOSED, R.EITHER, K.TIMEOUT, timer="keepalive"),
    _e(S.ESTABLISHED, S.CLOSED, R.EITHER, K.TIMEOUT, timer="retransmission retries"),
    _e(S.ESTABLISHED, S.CLOSE, R.EITHER, K.RESET, recv="[R]", peer_recv=S.CLOSED),
    _e(S.ESTABLISHED, S.CLOSE, R.EITHER, K.TIMEOUT, timer="keepalive"),
    _e(S.ESTABLISHED, S.CLOSE, R.EITHER, K.TIMEOUT, timer="retransmission retries"),
    _e(S.CLOSE, S.CLOSED, R.EITHER, K.RELEASE, call="close()"),
)

_EDGES_BY_PAIR: dict[tuple[TcpState, TcpState], tuple[Edge, ...]] = {}
for _edge in EDGES:
    _EDGES_BY_PAIR[(_edge.frm, _edge.to)] = (*_EDGES_BY_PAIR.get((_edge.frm, _edge.to), ()), _edge)
_SUCCESSORS: dict[TcpState, tuple[TcpState, ...]] = {}
for _frm, _to in _EDGES_BY_PAIR:
    _SUCCESSORS[_frm] = (*_SUCCESSORS.get(_frm, ()), _to)


@dataclass(frozen=True, slots=True)
class PathHints:
    """What the tracker knows beyond the two states; None means "no evidence either way".

    - `active_close`: True when this end closed first (e.g. a TIME_WAIT appeared on its
      4-tuple), False when the peer did.
    - `reset`: True when the connection ended with a reset (e.g. a destroy notification
      or tracepoint said so), False when it certainly closed in order.
    - `outgoing`: True for a connect()ed socket, False for one accepted from a listener.
    - `simultaneous_close`: True when both ends closed at once (both ends of a local pair
      in TIME_WAIT): the path goes through CLOSING.
    """

    active_close: bool | None = None
    reset: bool | None = None
    outgoing: bool | None = None
    simultaneous_close: bool | None = None


_AGAINST = 100  # cost of an edge the hints contradict: used only when nothing else fits
_UNLIKELY = 5  # cost added to edges that need evidence (resets, aborts, rarer variants)
_REUSE = 10  # cost of leaving CLOSED mid-path: a new connection on the same 4-tuple


def _edge_cost(edge: Edge, hints: PathHints) -> int:
    """Lower is likelier. Contradicted edges stay usable at a high cost, so a path exists."""
    cost = 1
    kind = edge.kind
    if kind in (K.RESET, K.TIMEOUT):
        # An orphaned FIN_WAIT2 timing out is an orderly end, only rarer than the peer's FIN;
        # a handshake that vanishes was refused or timed out far more often than it ran a
        # whole connection between two polls.
        handshake = edge.frm in (S.SYN_SENT, S.SYN_RECV)
        if kind is K.TIMEOUT and edge.frm is S.FIN_WAIT2:
            cost += 2
        elif hints.reset is True:
            cost += 0 if kind is K.RESET else 1
        elif hints.reset is False:
            cost += _AGAINST if kind is K.RESET else (1 if handshake else _UNLIKELY)
        elif handshake:
            cost += 1 if kind is K.RESET else 2
        else:
            cost += _UNLIKELY + (0 if kind is K.RESET else 1)
    elif kind in (K.CLOSE_PASSIVE, K.EXPIRE) and hints.reset is True:
        cost += _UNLIKELY
    if kind is K.RELEASE and edge.frm is S.SYN_SENT:
        cost += _UNLIKELY
    if kind in (K.CLOSE_ACTIVE, K.CLOSE_FAST, K.CLOSE_SIMULTANEOUS) and hints.active_close is False:
        cost += _AGAINST
    if kind is K.CLOSE_PASSIVE and (hints.active_close is True or hints.simultaneous_close):
        cost += _AGAINST
    if kind is K.CLOSE_SIMULTANEOUS and hints.simultaneous_close is not True:
        cost += _AGAINST if hints.simultaneous_close is False else 2
    if kind is K.CLOSE_FAST:
        cost += 2
    if edge.frm is S.FIN_WAIT1 and edge.to is S.FIN_WAIT2 and hints.simultaneous_close:
        cost += _AGAINST
    if kind is K.OPEN_ACTIVE and hints.outgoing is False:
        cost += _AGAINST
    if kind in (K.OPEN_PASSIVE, K.OPEN_SIMULTANEOUS) and hints.outgoing is True:
        cost += _AGAINST
    if kind is K.OPEN_PASSIVE and hints.outgoing is None:
        cost += 1  # without evidence, a connection first seen mid-life is taken as outgoing
    if kind is K.OPEN_SIMULTANEOUS:
        cost += _UNLIKELY
    if edge.frm is S.LISTEN and edge.to is S.SYN_RECV:
        cost += 1  # Linux: an accepted connection starts as its own SYN_RECV request sock
    if edge.to is S.CLOSE:
        cost += 1  # CLOSE is seen only when a poll shows it; CLOSED is the usual end
    return cost


def edges_between(frm: TcpState, to: TcpState) -> tuple[Edge, ...]:
    """Every edge from `frm` to `to`, the usual one first."""
    return _EDGES_BY_PAIR.get((frm, to), ())


def edge(frm: TcpState, to: TcpState, *, hints: PathHints = PathHints()) -> Edge | None:
    """The likeliest edge from `frm` to `to` given the hints; None if there is none.

    E.g. ESTABLISHED -> CLOSED is `recv [R]` (a reset); with `reset=False` it is a
    keepalive or retransmission timeout.
    """
    candidates = _EDGES_BY_PAIR.get((frm, to))
    if not candidates:
        return None
    return min(candidates, key=lambda e: _edge_cost(e, hints))


def _pair_cost(frm: TcpState, to: TcpState, hints: PathHints) -> int:
    return min(_edge_cost(e, hints) for e in _EDGES_BY_PAIR[(frm, to)])


_ORDER = {state: i for i, state in enumerate(TcpState)}


def infer_path(
    frm: TcpState | None, to: TcpState, *, hints: PathHints = PathHints()
) -> tuple[TcpState, ...]:
    """The likeliest sequence of states from `frm` to `to`, both included.

    `frm=None` means a first sighting: the path starts at CLOSED (the caller drops that
    CLOSED when it reports a connection's life, see `first_path`). `frm == to` gives
    `(frm,)`. Without hints the path is the shortest usual one: ESTABLISHED -> CLOSED is a
    passive close (ESTABLISHED, CLOSE_WAIT, LAST_ACK, CLOSED); `active_close=True` makes
    it FIN_WAIT1, FIN_WAIT2, TIME_WAIT, CLOSED; `reset=True` makes it ESTABLISHED,
    CLOSED; `simultaneous_close=True` goes through CLOSING; `outgoing` picks SYN_SENT or
    SYN_RECV for the opening. Hints that contradict the two states are overruled by them.
    """
    return _search(TcpState.CLOSED if frm is None else frm, to, hints, frozenset())


@functools.cache  # a few hundred distinct questions at most; the tracker asks them often
def _search(
    start: TcpState, to: TcpState, hints: PathHints, avoid: frozenset[TcpState]
) -> tuple[TcpState, ...]:
    if start is to:
        return (start,)
    # Dijkstra; ties broken by path length, then by the states' enum order (deterministic).
    best: dict[TcpState, tuple[int, int]] = {start: (0, 0)}
    queue: list[tuple[int, int, tuple[int, ...], tuple[TcpState, ...]]] = [
        (0, 0, (_ORDER[start],), (start,))
    ]
    while queue:
        cost, length, _key, path = heapq.heappop(queue)
        here = path[-1]
        if here is to:
            return path
        if best.get(here, (cost, length)) < (cost, length):
            continue
        reuse = _REUSE if here in (S.CLOSED, S.CLOSE) and len(path) > 1 else 0
        for nxt in _SUCCESSORS.get(here, ()):
            if nxt in path or (nxt in avoid and nxt is not to):
                continue
            step = (cost + reuse + _pair_cost(here, nxt, hints), length + 1)
            if nxt in best and best[nxt] <= step:
                continue
            best[nxt] = step
            new_path = (*path, nxt)
            heapq.heappush(queue, (*step, tuple(_ORDER[s] for s in new_path), new_path))
    raise AssertionError(f"no path from {start.value} to {to.value}")  # every state joins CLOSED


def first_path(
    state: TcpState, *, outgoing: bool | None, hints: PathHints = PathHints()
) -> tuple[TcpState, ...]:
    """The states a connection first seen in `state` went through, from its first real state.

    E.g. ESTABLISHED outgoing -> (SYN_SENT, ESTABLISHED); accepted -> (SYN_RECV,
    ESTABLISHED); LISTEN -> (LISTEN,). The leading CLOSED is left out: the life begins at
    the first kernel state. `outgoing` overrides `hints.outgoing`.
    """
    merged = PathHints(hints.active_close, hints.reset, outgoing, hints.simultaneous_close)
    path = infer_path(None, state, hints=merged)
    return path[1:] if len(path) > 1 else path


def close_tail(state: TcpState, *, hints: PathHints = PathHints()) -> tuple[TcpState, ...]:
    """The states from the last sighting of a connection that is now gone, to CLOSED.

    E.g. TIME_WAIT -> (TIME_WAIT, CLOSED); LAST_ACK -> (LAST_ACK, CLOSED); ESTABLISHED
    without hints -> (ESTABLISHED, CLOSE_WAIT, LAST_ACK, CLOSED); with `reset=True` ->
    (ESTABLISHED, CLOSED). Never through TIME_WAIT unless last seen there: a TIME_WAIT
    keeps the cookie and 4-tuple for 60 s, so polls would have seen it; an active closer
    that vanished without one timed out in FIN_WAIT2 (FIN_WAIT1, FIN_WAIT2, CLOSED).
    """
    return _search(state, TcpState.CLOSED, hints, frozenset({TcpState.TIME_WAIT}))


# ---------------------------------------------------------------------------------------
# Ladder (sequence) diagram


class Direction(enum.Enum):
    OUT = "out"  # local -> remote
    IN = "in"  # remote -> local
    LOCAL = "local"  # no segment: an application call or a timer at the local end


@dataclass(frozen=True, slots=True)
class LadderStep:
    """One row of a ladder diagram, from the local end's point of view.

    `flags` is tcpdump's (`[S]`, `[S.]`, `[.]`, `[F.]`, `[R]`, `[R.]`) for a segment, None
    for a LOCAL row; `label` names the call or timer (`close()`, `2MSL`) or is empty.
    `local_state`/`remote_state` are the states each end is in after this row (None:
    unchanged or unknown; the remote's are what the protocol implies, never observed).
    `inferred` is True when the local state this row leads to was not seen in a poll.
    """

    direction: Direction
    flags: str | None
    label: str
    local_state: TcpState | None
    remote_state: TcpState | None
    inferred: bool


def ladder(
    path: Sequence[TcpState],
    *,
    inferred_mask: Sequence[bool] | None = None,
    hints: PathHints = PathHints(),
) -> tuple[LadderStep, ...]:
    """The rows of a sequence diagram for a connection that went through `path`.

    `inferred_mask[i]` says whether `path[i]` was inferred rather than observed (default:
    none inferred). Each edge becomes its rows in order: the call or timer (LOCAL), the
    segment received (IN), the segment sent (OUT). Consecutive states that are not an
    edge raise ValueError. Who opened is in the path itself: SYN_SENT means this end was
    the client, SYN_RECV the server; FIN_WAIT1 means it closed first, CLOSE_WAIT the peer.
    """
    if inferred_mask is not None and len(inferred_mask) != len(path):
        raise ValueError("inferred_mask must be as long as path")
    rows: list[LadderStep] = []
    for i in range(len(path) - 1):
        step = edge(path[i], path[i + 1], hints=hints)
        if step is None:
            raise ValueError(f"no edge {path[i].value} -> {path[i + 1].value}")
        inferred = bool(inferred_mask[i + 1]) if inferred_mask is not None else False
        rows.extend(_edge_rows(step, inferred))
    return tuple(rows)


def _edge_rows(step: Edge, inferred: bool) -> list[LadderStep]:
    trig = step.trigger
    rows: list[LadderStep] = []
    label = trig.call or trig.timer or ""
    segments = [(Direction.IN, trig.recv, step.peer_on_recv)] if trig.recv else []
    if trig.send:
        segments.append((Direction.OUT, trig.send, step.peer_on_send))
    if not segments:
        return [LadderStep(Direction.LOCAL, None, label, step.to, None, inferred)]
    for n, (direction, flags, peer) in enumerate(segments):
        last = n == len(segments) - 1
        rows.append(
            LadderStep(
                direction,
                flags,
                label if n == 0 else "",
                step.to if last else None,
                peer,
                inferred,
            )
        )
    return rows


# ---------------------------------------------------------------------------------------
# Layout for drawing the machine

STATE_DIAGRAM: Mapping[TcpState, tuple[int, int]] = {
    S.CLOSED: (1, 0),
    S.CLOSE: (2, 0),
    S.LISTEN: (1, 1),
    S.SYN_RECV: (0, 2),
    S.SYN_SENT: (2, 2),
    S.ESTABLISHED: (1, 3),
    S.FIN_WAIT1: (0, 4),
    S.CLOSE_WAIT: (2, 4),
    S.FIN_WAIT2: (0, 5),
    S.CLOSING: (1, 5),
    S.LAST_ACK: (2, 5),
    S.TIME_WAIT: (0, 6),
}
"""Where each state goes when drawing the machine: (column, row) in a 3-column, 7-row grid,
laid out like RFC 793's figure 6. Opening on top (CLOSED, LISTEN, then SYN_RECV left and
SYN_SENT right), ESTABLISHED in the middle, the active close down the left column
(FIN_WAIT1, FIN_WAIT2, TIME_WAIT), the passive close down the right (CLOSE_WAIT,
LAST_ACK), CLOSING between them, and the kernel's CLOSE beside CLOSED. Arrows are `EDGES`
(labels from `Edge.trigger.text`); edges back to CLOSED go up, so a renderer can draw
them along the grid's outside. A path highlights as the edges between its consecutive states.
"""
DIAGRAM_SIZE: tuple[int, int] = (3, 7)
"""(columns, rows) of `STATE_DIAGRAM`'s grid."""

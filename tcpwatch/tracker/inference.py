"""From what the host shows to the path a connection took between two sightings.

Polls see a socket only now and then, so the tracker fills in the states between two
sightings with `tcpwatch.tcp.fsm`. A plain shortest path is not enough: an ESTABLISHED
socket that vanished may have closed passively (CLOSE_WAIT, LAST_ACK) or been reset, and a
TIME_WAIT may follow FIN_WAIT2 or CLOSING. `Evidence` gathers what else the host shows (a
local listener, the other end's state when both ends are local, a destroy notification);
this module turns it into the fsm's `PathHints` and says in words what happened.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

from tcpwatch.model import SocketRecord
from tcpwatch.tcp import fsm
from tcpwatch.tcp.states import TcpState

S = TcpState
_OPENING = (S.SYN_SENT, S.SYN_RECV)
_UNCONNECTED = (S.LISTEN, S.CLOSE)
# The other end's states that show an orderly close from our side's point of view.
_PEER_CLOSING_IN_ORDER = (S.TIME_WAIT, S.FIN_WAIT1, S.FIN_WAIT2, S.CLOSING)


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the host shows about one connection beyond its own sightings.

    accepted: its local address and port belong to a local listener (else outgoing).
    peer_before / peer_now: the other end's state at the previous and this poll when both
    ends are on this host (CLOSED: the other end is gone; None: not local or unknown).
    completed: a destroy notification shows the handshake completed before the end (a
    request sock sends none, so a vanished SYN_RECV with one had become an accepted
    connection; a connect()ed socket's final tcp_info shows its SYN acknowledged).
    reset: the final tcp_info shows the connection ended with data unacknowledged.
    """

    accepted: bool = False
    peer_before: TcpState | None = None
    peer_now: TcpState | None = None
    completed: bool = False
    reset: bool = False


def hints(evidence: Evidence, to_state: TcpState) -> fsm.PathHints:
    """The fsm's hints for a path that ends in `to_state`."""
    peer = (evidence.peer_before, evidence.peer_now)
    local_peer = evidence.peer_now is not None
    simultaneous: bool | None = None
    if to_state in (S.TIME_WAIT, S.CLOSING):
        # In an orderly close exactly one end reaches TIME_WAIT; both ends there (or the
        # other end passing CLOSING) means the FINs crossed.
        simultaneous = (S.TIME_WAIT in peer or S.CLOSING in peer) if local_peer else None
    reset: bool | None = True if evidence.reset else None
    if to_state is S.CLOSED and local_peer and not evidence.reset:
        # After an orderly passive close the other end sits in TIME_WAIT (or is still on
        # its way there); gone or still open, it saw no FIN from us: a reset.
        reset = evidence.peer_now not in _PEER_CLOSING_IN_ORDER
    return fsm.PathHints(
        active_close=None,
        reset=reset,
        outgoing=not evidence.accepted,
        simultaneous_close=simultaneous,
    )


@functools.lru_cache(maxsize=1024)  # pure, and asked the same few questions all the time
def path_between(
    from_state: TcpState, to_state: TcpState, evidence: Evidence
) -> tuple[TcpState, ...]:
    """The states from one sighting to the next, both included (`to_state` may be CLOSED)."""
    if from_state is to_state:
        return (from_state,)
    hint = hints(evidence, to_state)
    if from_state in _OPENING and to_state is not S.ESTABLISHED:
        # An opening socket that got further went through ESTABLISHED; one that vanished
        # was refused or timed out, unless its destroy notification shows otherwise.
        if to_state is S.CLOSED and not evidence.completed:
            return fsm.close_tail(from_state, hints=hint)
        return (from_state, *_from_established(to_state, hint))
    if to_state is S.CLOSED:
        return fsm.close_tail(from_state, hints=hint)
    return fsm.infer_path(from_state, to_state, hints=hint)


@functools.lru_cache(maxsize=1024)
def path_from_start(state: TcpState, evidence: Evidence) -> tuple[TcpState, ...]:
    """A first sighting: the inferred start of the connection's life up to `state`."""
    if state in _UNCONNECTED or state in _OPENING:
        return (state,)
    start = S.SYN_RECV if evidence.accepted else S.SYN_SENT
    return (start, *_from_established(state, hints(evidence, state)))


def _from_established(state: TcpState, hint: fsm.PathHints) -> tuple[TcpState, ...]:
    if state is S.CLOSED:
        return fsm.close_tail(S.ESTABLISHED, hints=hint)
    return fsm.infer_path(S.ESTABLISHED, state, hints=hint)


def established_then_closed(final: SocketRecord) -> bool:
    """A connect()ed socket's destroy notification: did the handshake complete first?

    Its final tcp_info shows the peer acknowledged our SYN (`bytes_acked` counts it) or
    sent us something; a refused or timed-out connect has neither.
    """
    info = final.tcp_info
    if info is None:
        return False
    return bool(info.bytes_acked or info.bytes_received or (info.segs_in and info.segs_in > 1))


_PHRASES: dict[tuple[TcpState | None, TcpState], str] = {
    (None, S.SYN_SENT): "outgoing: connect() sent [S]",
    (None, S.SYN_RECV): "incoming: a local listener received [S] and answered [S.]",
    (None, S.LISTEN): "listen() opened the port",
    (None, S.CLOSE): "a socket without a connection",
    (S.SYN_SENT, S.ESTABLISHED): "the peer answered [S.]: handshake complete",
    (S.SYN_RECV, S.ESTABLISHED): "the client's [.] completed the handshake",
    (S.ESTABLISHED, S.FIN_WAIT1): "the application closed first (close()/shutdown() sent [F.])",
    (S.FIN_WAIT1, S.FIN_WAIT2): "the peer acknowledged our FIN",
    (S.FIN_WAIT2, S.TIME_WAIT): "the peer's FIN arrived; TIME_WAIT holds the 4-tuple for 2MSL",
    (S.FIN_WAIT1, S.CLOSING): "simultaneous close: the peer's FIN crossed ours",
    (S.CLOSING, S.TIME_WAIT): "the peer acknowledged our FIN; TIME_WAIT holds the 4-tuple for 2MSL",
    (S.ESTABLISHED, S.CLOSE_WAIT): "peer closed first (FIN received)",
    (S.CLOSE_WAIT, S.LAST_ACK): "the application then closed its end",
    (S.LAST_ACK, S.CLOSED): "the peer acknowledged our FIN",
    (S.TIME_WAIT, S.CLOSED): "TIME_WAIT's 2MSL timer expired",
    (S.LISTEN, S.CLOSED): "the listener was closed",
    (S.FIN_WAIT2, S.CLOSED): "FIN_WAIT2 timed out (tcp_fin_timeout) or was reset",
    (S.SYN_SENT, S.CLOSED): "connect() failed: refused ([R.] received) or timed out",
    (S.SYN_RECV, S.CLOSED): "handshake abandoned: reset, or SYN-ACK retries exhausted",
}


def reason(
    path: tuple[TcpState, ...], *, first: bool, evidence: Evidence, local_port: int | None = None
) -> str:
    """A short human explanation of a path, one clause per step."""
    unexplained_end = (
        path[-1] is S.CLOSED
        and S.LAST_ACK in path
        and path[0] is not S.LAST_ACK
        and evidence.peer_now is None
        and not evidence.reset
    )
    return _reason(path, first, local_port, unexplained_end)


@functools.lru_cache(maxsize=4096)  # churn repeats a handful of paths thousands of times
def _reason(
    path: tuple[TcpState, ...], first: bool, local_port: int | None, unexplained_end: bool
) -> str:
    steps: list[tuple[TcpState | None, TcpState]] = [(None, path[0])] if first else []
    steps.extend(itertools.pairwise(path))
    clauses = [_clause(step, local_port) for step in steps]
    if unexplained_end:
        clauses.append("no TIME_WAIT here, so it closed passively (or was reset)")
    return "; ".join(clauses)


def _clause(step: tuple[TcpState | None, TcpState], local_port: int | None) -> str:
    frm, to = step
    if step == (None, S.SYN_RECV) and local_port is not None:
        return f"incoming: accepted by the local listener on port {local_port}"
    if step in _PHRASES:
        return _PHRASES[step]
    if to is S.CLOSED:
        return "reset ([R]) or aborted"
    found = fsm.edge(S.CLOSED if frm is None else frm, to)
    trigger = found.trigger.text if found is not None else "not a usual step"
    return f"{'start' if frm is None else frm.value} -> {to.value}: {trigger}"

"""Highlight tags, and the pure rules that decide which a socket carries.

The rules look at one sighting (`SocketRecord`) plus how long it has been in its state;
the tracker supplies that age. They must stay cheap: the tracker may classify tens of
thousands of records per poll, so tcp_info is read only for ESTABLISHED sockets whose
timer or first bytes hint at trouble, and then only the five fields that matter.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tcpwatch.tcp.states import TcpState

if TYPE_CHECKING:  # model imports Tag from here, so records are only annotations here
    from tcpwatch.model import SocketRecord

# TimerName values (tcpwatch.model), compared by value for the same reason.
_PERSIST, _KEEPALIVE, _RETRANSMIT = "persist", "keepalive", "retransmit"


class Tag(enum.Enum):
    """What makes a connection worth a look. Values are the JSON contract's names."""

    LISTENER = "listener"
    HALF_OPEN = "half_open"
    HALF_CLOSED = "half_closed"
    LINGERING = "lingering"
    ORPHAN = "orphan"
    UNACCEPTED = "unaccepted"

    # Identity hashing in C (members are singletons): see TcpState.__hash__.
    __hash__ = object.__hash__


@dataclass(frozen=True, slots=True)
class TagThresholds:
    """The numbers behind the tags, all configurable.

    - `lingering_s`: a closing state other than TIME_WAIT (FIN_WAIT1, FIN_WAIT2, CLOSING,
      LAST_ACK, CLOSE_WAIT) this old is lingering. TIME_WAIT always is.
    - `accept_queue_ratio`: a listener whose accept queue is this full (queue / backlog)
      is under pressure.
    - dead peer, for an ESTABLISHED socket: `dead_retransmits` consecutive retransmissions
      of the same data, or `dead_backoff` exponential backoffs of the retransmission
      timer, while data is unacknowledged; or `dead_probes` keepalive probes unanswered.
    """

    lingering_s: float = 30.0
    accept_queue_ratio: float = 0.8
    dead_retransmits: int = 3
    dead_backoff: int = 2
    dead_probes: int = 1


DEFAULT_THRESHOLDS = TagThresholds()

CLOSING_STATES: frozenset[TcpState] = frozenset(
    {TcpState.FIN_WAIT1, TcpState.FIN_WAIT2, TcpState.CLOSING, TcpState.LAST_ACK}
)
"""States after close(): an inode of 0 here means no process holds the socket (orphan)."""
_AWAITING_ACCEPT = frozenset({TcpState.ESTABLISHED, TcpState.CLOSE_WAIT})

_LINGER_STATES = CLOSING_STATES | {TcpState.CLOSE_WAIT}

# struct tcp_info: u8 state, ca_state, retransmits, probes, backoff, ...; u32 unacked at 24.
_RETRANSMITS, _PROBES, _BACKOFF = 2, 3, 4
_UNACKED = struct.Struct("=I")
_UNACKED_OFFSET = 24


def dead_peer_evidence(
    record: SocketRecord, thresholds: TagThresholds = DEFAULT_THRESHOLDS
) -> str | None:
    """Why an ESTABLISHED connection's peer looks dead, or None.

    The answer is language-neutral `name=value` pairs (e.g. `retransmits=4 backoff=3
    unacked=2`, `keepalive_probes=2`) that explanations quote. Evidence comes from
    tcp_info (retransmits/backoff with unacked data; probes while the keepalive timer
    runs) and, without tcp_info, from the timer (retransmit or keepalive with a count).
    Zero-window probes (persist timer) are not evidence: that peer answers, it is only slow
    to read.
    """
    if record.state is not TcpState.ESTABLISHED:
        return None
    timer = record.timer
    if timer is not None and timer.name.value == _PERSIST:
        return None
    raw = record.tcp_info_raw
    if raw is not None and len(raw) >= _UNACKED_OFFSET + 4:
        retransmits, probes, backoff = raw[_RETRANSMITS], raw[_PROBES], raw[_BACKOFF]
        if not (retransmits or probes or backoff):
            return None
        unacked = _UNACKED.unpack_from(raw, _UNACKED_OFFSET)[0]
        if unacked > 0 and (
            retransmits >= thresholds.dead_retransmits or backoff >= thresholds.dead_backoff
        ):
            return f"retransmits={retransmits} backoff={backoff} unacked={unacked}"
        keepalive = timer is not None and timer.name.value == _KEEPALIVE
        if unacked == 0 and keepalive and probes >= thresholds.dead_probes:
            return f"keepalive_probes={probes}"
        return None
    if timer is None:
        return None
    if timer.name.value == _RETRANSMIT and timer.retrans >= thresholds.dead_retransmits:
        return f"retransmits={timer.retrans}"
    if timer.name.value == _KEEPALIVE and timer.retrans >= thresholds.dead_probes:
        return f"keepalive_probes={timer.retrans}"
    return None


def awaiting_accept(record: SocketRecord) -> bool:
    """Whether the socket still waits in its listener's accept queue: ESTABLISHED or
    CLOSE_WAIT with inode 0. No process holds it before accept() gives it a file, and a
    process that held it could only leave these states by closing it."""
    return record.inode == 0 and record.state in _AWAITING_ACCEPT


def accept_queue_pressure(
    record: SocketRecord, thresholds: TagThresholds = DEFAULT_THRESHOLDS
) -> float | None:
    """How full a listener's accept queue is (Recv-Q / backlog), when at or above the
    threshold; None for other sockets, a zero backlog, or a queue below the threshold.

    1.0 or more means full: new handshakes are dropped (or reset with
    tcp_abort_on_overflow) until the application calls accept().
    """
    if record.state is not TcpState.LISTEN or record.send_q <= 0:
        return None
    ratio = record.recv_q / record.send_q
    return ratio if ratio >= thresholds.accept_queue_ratio else None


def classify(
    record: SocketRecord,
    *,
    state_age_s: float | None = None,
    thresholds: TagThresholds = DEFAULT_THRESHOLDS,
) -> frozenset[Tag]:
    """The tags of one sighting.

    - listener: LISTEN.
    - half_open: SYN_SENT, SYN_RECV, or ESTABLISHED with `dead_peer_evidence`.
    - half_closed: FIN_WAIT2 (we closed, the peer still may send), CLOSE_WAIT (the peer
      closed, we still may send).
    - lingering: TIME_WAIT; FIN_WAIT1, FIN_WAIT2, CLOSING, LAST_ACK or CLOSE_WAIT in that
      state for `thresholds.lingering_s` or more. `state_age_s` is the time in the current
      state as the tracker knows it (None: unknown, so only TIME_WAIT lingers).
    - orphan: FIN_WAIT1, FIN_WAIT2, CLOSING or LAST_ACK with inode 0: the application has
      closed it and the kernel finishes the close alone.
    - unaccepted: ESTABLISHED or CLOSE_WAIT with inode 0: the kernel completed the
      handshake for a listener and the connection waits in its accept queue; in
      CLOSE_WAIT the client has already given up on it.
    """
    state = record.state
    fixed = _FIXED_TAGS.get(state)
    if fixed is not None:
        return fixed
    if state is TcpState.ESTABLISHED:
        waiting = _NONE if record.inode else _UNACCEPTED
        raw = record.tcp_info_raw
        if (
            raw is not None
            and len(raw) >= _UNACKED_OFFSET + 4
            and not (raw[_RETRANSMITS] or raw[_PROBES] or raw[_BACKOFF])
        ):
            return waiting  # the common case, decided without unpacking anything
        return waiting | _HALF_OPEN if dead_peer_evidence(record, thresholds) else waiting
    tags: set[Tag] = set()
    if state in (TcpState.FIN_WAIT2, TcpState.CLOSE_WAIT):
        tags.add(Tag.HALF_CLOSED)
    if (
        state in _LINGER_STATES
        and state_age_s is not None
        and state_age_s >= thresholds.lingering_s
    ):
        tags.add(Tag.LINGERING)
    if record.inode == 0:
        if state in CLOSING_STATES:
            tags.add(Tag.ORPHAN)
        elif state is TcpState.CLOSE_WAIT:
            tags.add(Tag.UNACCEPTED)
    return frozenset(tags)


_NONE: frozenset[Tag] = frozenset()
_LISTENER = frozenset({Tag.LISTENER})
_HALF_OPEN = frozenset({Tag.HALF_OPEN})
_LINGERING = frozenset({Tag.LINGERING})
_UNACCEPTED = frozenset({Tag.UNACCEPTED})
_FIXED_TAGS: dict[TcpState, frozenset[Tag]] = {
    TcpState.LISTEN: _LISTENER,
    TcpState.SYN_SENT: _HALF_OPEN,
    TcpState.SYN_RECV: _HALF_OPEN,
    TcpState.TIME_WAIT: _LINGERING,
    TcpState.CLOSE: _NONE,
}

"""TCP states as the kernel numbers them, with the names the JSON contract uses."""

from __future__ import annotations

import enum


class TcpState(enum.Enum):
    """A TCP state. Values are the JSON contract's names; `kernel` is Linux's number."""

    ESTABLISHED = "ESTABLISHED"
    SYN_SENT = "SYN_SENT"
    SYN_RECV = "SYN_RECV"
    FIN_WAIT1 = "FIN_WAIT1"
    FIN_WAIT2 = "FIN_WAIT2"
    TIME_WAIT = "TIME_WAIT"
    CLOSE = "CLOSE"
    CLOSE_WAIT = "CLOSE_WAIT"
    LAST_ACK = "LAST_ACK"
    LISTEN = "LISTEN"
    CLOSING = "CLOSING"
    # Not a kernel state: the terminal pseudo-state of a connection that is gone.
    CLOSED = "CLOSED"

    # Members are singletons compared by identity, so identity hashing is consistent, and
    # it runs in C: Enum's own __hash__ is a Python call on every dict or set lookup,
    # which the tracker and the outputs make several times per socket per poll.
    __hash__ = object.__hash__

    @property
    def kernel(self) -> int | None:
        return _KERNEL_NUMBER.get(self)

    @classmethod
    def from_kernel(cls, number: int) -> TcpState:
        """Map Linux's `TCP_*` number (1..11) to a state; ValueError for anything else."""
        try:
            return _BY_KERNEL_NUMBER[number]
        except KeyError:
            raise ValueError(f"unknown kernel TCP state {number}") from None

    @classmethod
    def parse(cls, text: str) -> TcpState:
        """Parse a user-typed state name: case-insensitive, `_` or `-`, ss spellings.

        Raises ValueError naming the text when it is not a state.
        """
        key = text.strip().lower().replace("-", "_")
        try:
            return _BY_SPELLING[key]
        except KeyError:
            raise ValueError(f"unknown TCP state {text!r}") from None


_KERNEL_NUMBER: dict[TcpState, int] = {
    TcpState.ESTABLISHED: 1,
    TcpState.SYN_SENT: 2,
    TcpState.SYN_RECV: 3,
    TcpState.FIN_WAIT1: 4,
    TcpState.FIN_WAIT2: 5,
    TcpState.TIME_WAIT: 6,
    TcpState.CLOSE: 7,
    TcpState.CLOSE_WAIT: 8,
    TcpState.LAST_ACK: 9,
    TcpState.LISTEN: 10,
    TcpState.CLOSING: 11,
}
_BY_KERNEL_NUMBER: dict[int, TcpState] = {n: s for s, n in _KERNEL_NUMBER.items()}

_BY_SPELLING: dict[str, TcpState] = {s.value.lower(): s for s in TcpState}
_BY_SPELLING.update(
    {
        "estab": TcpState.ESTABLISHED,
        "established": TcpState.ESTABLISHED,
        "syn_sent": TcpState.SYN_SENT,
        "syn_send": TcpState.SYN_SENT,
        "syn_recv": TcpState.SYN_RECV,
        "syn_received": TcpState.SYN_RECV,
        "fin_wait_1": TcpState.FIN_WAIT1,
        "fin_wait_2": TcpState.FIN_WAIT2,
        "time_wait": TcpState.TIME_WAIT,
        "timewait": TcpState.TIME_WAIT,
        "unconn": TcpState.CLOSE,
        "close_wait": TcpState.CLOSE_WAIT,
        "last_ack": TcpState.LAST_ACK,
        "listening": TcpState.LISTEN,
    }
)

# Listeners first, then states roughly in the order of a connection's life: how tables
# sort by state.
LIFECYCLE_ORDER: dict[TcpState, int] = {
    state: rank
    for rank, state in enumerate(
        (
            TcpState.LISTEN,
            TcpState.SYN_SENT,
            TcpState.SYN_RECV,
            TcpState.ESTABLISHED,
            TcpState.FIN_WAIT1,
            TcpState.FIN_WAIT2,
            TcpState.CLOSING,
            TcpState.TIME_WAIT,
            TcpState.CLOSE_WAIT,
            TcpState.LAST_ACK,
            TcpState.CLOSE,
            TcpState.CLOSED,
        )
    )
}

"""Shared test helpers: hand-built socket records, and the JSON contract's key sets."""

from __future__ import annotations

from tcpwatch.model import Endpoint, Family, SocketRecord, Timer
from tcpwatch.tcp.states import TcpState

# DESIGN.md's snapshot document: its keys, and those of each connection in it.
DOCUMENT_KEYS = {
    "schema",
    "taken_at",
    "host",
    "netns",
    "source",
    "filter",
    "summary",
    "connections",
}
CONNECTION_KEYS = {
    "id",
    "family",
    "state",
    "local",
    "remote",
    "recv_q",
    "send_q",
    "timer",
    "uid",
    "inode",
    "process",
    "tags",
    "state_since",
    "history",
    "tcp_info",
}
PROCESS_KEYS = {"pid", "name", "cmdline", "user"}
TCP_INFO_KEYS = {
    "rtt_us",
    "retransmits",
    "backoff",
    "probes",
    "unacked",
    "bytes_acked",
    "bytes_received",
    "last_data_recv_ms",
}


def record(
    state: TcpState,
    local: tuple[str, int] = ("127.0.0.1", 8080),
    remote: tuple[str, int] = ("127.0.0.1", 40000),
    *,
    cookie: int | None = 1,
    recv_q: int = 0,
    send_q: int = 0,
    timer: Timer | None = None,
    uid: int = 0,
    inode: int = 0,
    raw: bytes | None = None,
) -> SocketRecord:
    """A socket as a poll would see it; the family follows the local address."""
    return SocketRecord(
        cookie=cookie,
        family=Family.IPV6 if ":" in local[0] else Family.IPV4,
        state=state,
        local=Endpoint(*local),
        remote=Endpoint(*remote),
        recv_q=recv_q,
        send_q=send_q,
        timer=timer,
        uid=uid,
        inode=inode,
        tcp_info_raw=raw,
    )

"""Immutable records that flow from sources through the tracker to the outputs.

Every layer speaks these types; none of them knows about the UI.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from tcpwatch.tcp.states import TcpState
from tcpwatch.tcp.tags import Tag


class Family(enum.Enum):
    IPV4 = "ipv4"
    IPV6 = "ipv6"


class SourceKind(enum.Enum):
    NETLINK = "netlink"
    PROC = "proc"
    REPLAY = "replay"


class TimerName(enum.Enum):
    """The kernel's per-socket timer (`idiag_timer`), named as the JSON contract names it."""

    RETRANSMIT = "retransmit"  # also the SYN-ACK timer of a SYN_RECV request sock
    KEEPALIVE = "keepalive"
    TIMEWAIT = "timewait"
    PERSIST = "persist"  # zero-window probe


@dataclass(frozen=True, slots=True)
class Endpoint:
    address: str
    port: int


@dataclass(frozen=True, slots=True)
class Timer:
    name: TimerName
    expires_ms: int
    retrans: int


@dataclass(frozen=True, slots=True)
class TcpInfo:
    """The fields of the kernel's `struct tcp_info` tcpwatch uses. None: the kernel sent less."""

    state: int
    ca_state: int
    retransmits: int
    probes: int
    backoff: int
    rto_us: int
    snd_mss: int
    rcv_mss: int
    unacked: int
    sacked: int
    lost: int
    retrans: int
    last_data_sent_ms: int
    last_data_recv_ms: int
    last_ack_recv_ms: int
    pmtu: int
    rtt_us: int
    rttvar_us: int
    snd_ssthresh: int
    snd_cwnd: int
    total_retrans: int
    bytes_acked: int | None = None
    bytes_received: int | None = None
    segs_out: int | None = None
    segs_in: int | None = None
    notsent_bytes: int | None = None
    min_rtt_us: int | None = None
    delivery_rate: int | None = None
    bytes_sent: int | None = None
    bytes_retrans: int | None = None
    snd_wnd: int | None = None
    rcv_wnd: int | None = None


@dataclass(frozen=True, slots=True)
class SocketRecord:
    """One socket as one poll saw it.

    `cookie` is the kernel's socket cookie (None from /proc). `tcp_info_raw` keeps the
    kernel's bytes; `tcp_info` unpacks them only when someone looks, because unpacking
    50k of them every poll would cost more than the dump itself.

    `dumped_at` is the wall time of the dump that made the record. A polling source hands
    out the same record again while the socket stays unchanged, so its tcp_info ages
    (`last_*_ms`) are those of that dump: `tcp_info_at` advances them to a given time.
    """

    cookie: int | None
    family: Family
    state: TcpState
    local: Endpoint
    remote: Endpoint
    recv_q: int  # LISTEN: accept queue length
    send_q: int  # LISTEN: backlog
    timer: Timer | None
    uid: int
    inode: int  # 0: TIME_WAIT, SYN_RECV request socks, orphans
    tcp_info_raw: bytes | None = None
    dumped_at: float | None = field(default=None, compare=False)

    @property
    def tcp_info(self) -> TcpInfo | None:
        if self.tcp_info_raw is None:
            return None
        from tcpwatch.tcpinfo import parse_tcp_info

        return parse_tcp_info(self.tcp_info_raw)

    def tcp_info_at(self, when: float) -> TcpInfo | None:
        """tcp_info as it reads at wall time `when`: nothing else changed since the dump,
        so only the times since the last data and ACK have grown."""
        info = self.tcp_info
        if info is None:
            return None
        from tcpwatch.tcpinfo import aged

        return aged(info, self.ms_since_dump(when))

    def ms_since_dump(self, when: float) -> int:
        """Milliseconds from the dump that made this record to wall time `when`."""
        if self.dumped_at is None or when <= self.dumped_at:
            return 0
        return round((when - self.dumped_at) * 1000)

    @property
    def four_tuple(self) -> tuple[str, int, str, int]:
        return (self.local.address, self.local.port, self.remote.address, self.remote.port)


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    pid: int
    name: str
    cmdline: tuple[str, ...]
    user: str | None
    uid: int | None = None


@dataclass(frozen=True, slots=True)
class SocketChanges:
    """How one dump differs from the dump before it, from a source that hands out an
    unchanged socket's record again (netlink, polling). Every socket of the dump that is
    not in `fresh` is the very record object the `base` dump had: a consumer that took the
    base dump can work on these changes alone instead of on every socket.
    """

    base: int  # the number of the dump these changes are against
    dump: int  # this dump's number
    fresh: tuple[SocketRecord, ...]  # records not handed out by the base dump
    outdated: tuple[SocketRecord, ...]  # the base dump's records that `fresh` ones replace
    vanished: tuple[SocketRecord, ...]  # the base dump's records of sockets now absent

    def follows(self, dump: int | None) -> bool:
        """Whether these changes are against `dump`, the dump a consumer took last."""
        return dump is not None and self.base == dump


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One poll: every socket the source saw, and who owns them (socket inode -> process)."""

    taken_at: float  # wall clock, seconds since the epoch
    monotonic: float  # time.monotonic() at the poll, for intervals
    host: str
    netns: str | None
    source: SourceKind
    sockets: tuple[SocketRecord, ...]
    owners: Mapping[int, ProcessInfo]
    # Shown to the user: why some owners are unknown ("run as root to see all owners").
    owners_note: str | None = None
    # Shown to the user: e.g. the /proc fallback notice.
    notice: str | None = None
    # Against the source's previous dump, where it knows (see SocketChanges).
    changes: SocketChanges | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    at: float  # wall clock of the poll that revealed it (inferred steps share it)
    from_state: TcpState | None
    to_state: TcpState
    inferred: bool


class EventKind(enum.Enum):
    NEW = "new"
    TRANSITION = "transition"
    GONE = "gone"


@dataclass(frozen=True, slots=True)
class Connection:
    """A tracked socket: its latest sighting plus the story the tracker pieced together."""

    id: str  # "0x<cookie hex>", or a 4-tuple key for sources without cookies
    record: SocketRecord  # the latest sighting
    process: ProcessInfo | None  # the current owner; None: nobody holds it, or unknown
    first_seen: float
    state_since: float | None  # None: the state began before tcpwatch first saw it
    history: tuple[Transition, ...]
    tags: frozenset[Tag]
    gone_at: float | None = None
    # The last owner seen before the socket lost it (TIME_WAIT, orphans): whose they were.
    former_process: ProcessInfo | None = None

    @property
    def state(self) -> TcpState:
        return TcpState.CLOSED if self.gone_at is not None else self.record.state


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    at: float
    connection: Connection
    from_state: TcpState | None
    to_state: TcpState
    path: tuple[TcpState, ...]
    inferred: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Delta:
    """What one poll changed, plus the whole current view, handed to outputs as one value."""

    snapshot: Snapshot
    connections: Mapping[str, Connection]  # live ones and recently gone ones (gone_at set)
    new: tuple[str, ...]
    changed: tuple[str, ...]
    gone: tuple[str, ...]
    events: tuple[Event, ...]
    # For views that follow every poll without scanning 50k connections: the tracker's
    # poll number (consecutive), the ids whose Connection object this poll set (new or
    # replaced, possibly repeated) and the ids it dropped from `connections`.
    poll: int
    replaced: tuple[str, ...]
    dropped: tuple[str, ...]

"""Explanations: what a connection's state means, how it got there, what comes next, what
is probably wrong — in English or Simplified Chinese, filled with live values.

Texts live in `catalog_en` / `catalog_zh` as templates with named fields; this module only
computes the values and picks the templates, so adding a language is adding a catalog.
Fields a template may use (all are always provided, as text or numbers):

- the connection: `state`, `local`, `remote` (`addr:port`, IPv6 in brackets), `address`
  (local address), `listener` (= local), `process` (name and pid, or why unknown), `age`
  (time in state), `recv_q`, `send_q`, `retrans` (timer's retransmit/probe count),
  `timer_left`, `evidence` (dead-peer evidence), `lingering` (threshold, s);
- the host (`HostSettings`): `fin_timeout`, `ka_time`, `ka_intvl`, `ka_probes`,
  `ka_give_up`, `syn_retries`, `syn_give_up`, `synack_retries`, `synack_give_up`,
  `max_syn_backlog`, `somaxconn`, `syncookies`, `port_first`, `port_last`, `ports`,
  `tw_reuse`, `tw_len` (2MSL, 60), `abort_on_overflow`, `retries2`, `orphan_retries`;
- findings: `count`, `destination`, `percent`, `syn_recv`, `accepted`, `unaccepted`,
  `peer_state`, `peer_process`, `flags` (the flag legend of the path);
- tcp_info (where the kernel gave it): `rtt_ms`, `rto_ms`, `mss`, `cwnd`, `total_retrans`.

Besides explanations, `glossary()` and `flag_meaning()` give the ideas behind the states
(handshake, close, ISN, MSS, window, MSL, retransmission, close() vs shutdown()) for a
help screen or a ladder legend.

The results contain text from the system (process names, addresses): render them as plain
text, never as markup.
"""

from __future__ import annotations

import enum
import ipaddress
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tcpwatch.model import Connection, Endpoint, TimerName
from tcpwatch.tcp import catalog_en, catalog_zh
from tcpwatch.tcp.fsm import (
    Direction,
    EdgeKind,
    LadderStep,
    PathHints,
    close_tail,
    edge,
    first_path,
    infer_path,
    ladder,
)
from tcpwatch.tcp.host import TIME_WAIT_S, HostSettings
from tcpwatch.tcp.states import TcpState
from tcpwatch.tcp.tags import (
    DEFAULT_THRESHOLDS,
    Tag,
    TagThresholds,
    accept_queue_pressure,
    awaiting_accept,
    classify,
    dead_peer_evidence,
)

CATALOGS: Mapping[str, Mapping[str, str]] = {"en": catalog_en.TEXT, "zh": catalog_zh.TEXT}
LANGUAGES: tuple[str, ...] = tuple(CATALOGS)

_CONNECTION_FIELDS: tuple[str, ...] = (
    "state",
    "local",
    "remote",
    "address",
    "listener",
    "process",
    "age",
    "recv_q",
    "send_q",
    "retrans",
    "timer_left",
    "evidence",
    "lingering",
    "count",
    "destination",
    "percent",
    "syn_recv",
    "accepted",
    "unaccepted",
    "peer_state",
    "peer_process",
    "flags",
    "rtt_ms",
    "rto_ms",
    "mss",
    "cwnd",
    "total_retrans",
)
_HOST_FIELDS: tuple[str, ...] = (
    "fin_timeout",
    "ka_time",
    "ka_intvl",
    "ka_probes",
    "ka_give_up",
    "syn_retries",
    "syn_give_up",
    "synack_retries",
    "synack_give_up",
    "max_syn_backlog",
    "somaxconn",
    "syncookies",
    "port_first",
    "port_last",
    "ports",
    "tw_reuse",
    "tw_len",
    "abort_on_overflow",
    "retries2",
    "orphan_retries",
)
FIELDS: frozenset[str] = frozenset(_CONNECTION_FIELDS + _HOST_FIELDS)
"""Every field a state, tag, note or diagnosis template may use."""


class Severity(enum.Enum):
    INFO = "info"
    WARNING = "warning"
    PROBLEM = "problem"


_SEVERITY_ORDER = {Severity.PROBLEM: 0, Severity.WARNING: 1, Severity.INFO: 2}


class Code(enum.Enum):
    """Diagnosis codes (stable identifiers; texts are `diag.<code>.*` in the catalogs)."""

    CLOSE_WAIT_LEAK = "close_wait_leak"
    TIME_WAIT_BUILDUP = "time_wait_buildup"
    EPHEMERAL_PORT_PRESSURE = "ephemeral_port_pressure"
    SYN_RECV_BUILDUP = "syn_recv_buildup"
    ACCEPT_QUEUE_OVERFLOW = "accept_queue_overflow"
    LOOPBACK_ONLY_LISTENER = "loopback_only_listener"
    SYN_SENT_STUCK = "syn_sent_stuck"
    DEAD_PEER = "dead_peer"
    ORPHAN_LINGERING = "orphan_lingering"
    CLOSED_IN_ACCEPT_QUEUE = "closed_in_accept_queue"


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """A probable problem: `code` is a `Code` value; the texts are in the chosen language."""

    code: str
    severity: Severity
    title: str
    cause: str
    fix: str
    # Filter terms that show the connections a host-wide finding is about ("" for one
    # connection's own diagnosis).
    shows: str = ""


@dataclass(frozen=True, slots=True)
class Explanation:
    """Everything the drill-down shows about one connection.

    `path`/`inferred` are the connection's life as explained (from CLOSED when its start
    is known; `inferred[i]` True when `path[i]` was not seen by a poll) and `ladder` its
    sequence-diagram rows, so pictures and text tell the same story.
    """

    title: str
    meaning: str
    how_it_got_here: str
    what_next: str
    who_closed_first: str | None
    diagnoses: tuple[Diagnosis, ...]
    notes: tuple[str, ...]
    path: tuple[TcpState, ...] = ()
    inferred: tuple[bool, ...] = ()
    ladder: tuple[LadderStep, ...] = ()


@dataclass(frozen=True, slots=True)
class DiagnosisThresholds:
    """When a finding becomes a diagnosis. `tags` supplies lingering age and queue ratio.

    - `syn_sent_stuck_s`: a SYN_SENT this old (or with a retransmitted SYN) is stuck.
    - `time_wait_per_destination`: TIME_WAIT toward one address:port for a build-up.
    - `port_pressure_ratio`: share of ip_local_port_range in use toward one destination.
    - `syn_recv_min` and `syn_recv_ratio`: SYN_RECV on one listener for a build-up: at
      least `syn_recv_min` and at least this share of its SYN queue (min of backlog and
      tcp_max_syn_backlog).
    - `per_code_limit`: at most this many population findings per code (largest first).
    """

    tags: TagThresholds = DEFAULT_THRESHOLDS
    syn_sent_stuck_s: float = 3.0
    time_wait_per_destination: int = 1000
    port_pressure_ratio: float = 0.5
    syn_recv_min: int = 16
    syn_recv_ratio: float = 0.25
    per_code_limit: int = 10


DEFAULT_DIAGNOSIS = DiagnosisThresholds()


def pick_language(env: Mapping[str, str]) -> str:
    """ "zh" when the locale (LC_ALL, else LC_MESSAGES, else LANG) starts with zh, else "en"."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name)
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


def _catalog(lang: str) -> Mapping[str, str]:
    try:
        return CATALOGS[lang]
    except KeyError:
        raise ValueError(f"unknown language {lang!r} (known: {', '.join(LANGUAGES)})") from None


GLOSSARY_TERMS: tuple[str, ...] = (
    "connection",
    "handshake",
    "close",
    "isn",
    "seq_ack",
    "mss",
    "window",
    "rto",
    "msl",
    "close_vs_shutdown",
)
FLAGS: tuple[str, ...] = ("[S]", "[S.]", "[.]", "[P.]", "[F.]", "[R]", "[R.]")


def glossary(lang: str = "en") -> tuple[tuple[str, str], ...]:
    """(term, explanation) for each idea behind the states, in `GLOSSARY_TERMS` order."""
    cat = _catalog(lang)
    return tuple((term, cat[f"term.{term}"]) for term in GLOSSARY_TERMS)


def flag_meaning(flags: str, lang: str = "en") -> str | None:
    """What tcpdump's flags text (`[S.]`, `[F.]`, …) means; None for flags not in `FLAGS`."""
    cat = _catalog(lang)
    return cat.get(f"flag.{flags.strip('[]')}") if flags in FLAGS else None


# ---------------------------------------------------------------------------------------
# Values


def endpoint_text(e: Endpoint) -> str:
    return f"[{e.address}]:{e.port}" if ":" in e.address else f"{e.address}:{e.port}"


def _duration(seconds: float, cat: Mapping[str, str]) -> str:
    seconds = max(0.0, seconds)
    if seconds < 10:
        return cat["unit.s"].format(s=f"{seconds:.1f}".rstrip("0").rstrip("."))
    whole = int(seconds)
    if whole < 60:
        return cat["unit.s"].format(s=whole)
    if whole < 3600:
        return cat["unit.min"].format(m=whole // 60, s=whole % 60)
    if whole < 86400:
        return cat["unit.h"].format(h=whole // 3600, m=whole % 3600 // 60)
    return cat["unit.d"].format(d=whole // 86400, h=whole % 86400 // 3600)


def _process_text(conn: Connection, cat: Mapping[str, str]) -> str:
    """The current owner; for a socket nobody holds any more, the one it had before."""
    if conn.process is not None:
        return cat["process"].format(name=conn.process.name, pid=conn.process.pid)
    if conn.former_process is not None:
        former = conn.former_process
        return cat["former_process"].format(name=former.name, pid=former.pid)
    if _queued(conn):
        return cat["awaiting_accept_process"]
    return cat["no_process" if conn.record.inode == 0 else "unknown_process"]


def _state_age(conn: Connection, now: float) -> tuple[float, bool]:
    """Seconds in the current state, and whether that is exact (False: a lower bound)."""
    if conn.state_since is not None:
        return now - conn.state_since, True
    return now - conn.first_seen, False


def _age_text(conn: Connection, now: float, cat: Mapping[str, str]) -> str:
    """Time in the current state, as "at least ..." when it began before the first poll."""
    age, exact = _state_age(conn, now)
    text = _duration(age, cat)
    return text if exact else cat["age.at_least"].format(age=text)


def _host_values(host: HostSettings, cat: Mapping[str, str]) -> dict[str, object]:
    first, last = host.ip_local_port_range
    return {
        "fin_timeout": host.tcp_fin_timeout,
        "ka_time": host.tcp_keepalive_time,
        "ka_intvl": host.tcp_keepalive_intvl,
        "ka_probes": host.tcp_keepalive_probes,
        "ka_give_up": _duration(host.keepalive_give_up_s, cat),
        "syn_retries": host.tcp_syn_retries,
        "syn_give_up": _duration(host.syn_give_up_s, cat),
        "synack_retries": host.tcp_synack_retries,
        "synack_give_up": _duration(host.synack_give_up_s, cat),
        "max_syn_backlog": host.tcp_max_syn_backlog,
        "somaxconn": host.somaxconn,
        "syncookies": host.tcp_syncookies,
        "port_first": first,
        "port_last": last,
        "ports": host.ephemeral_ports,
        "tw_reuse": host.tcp_tw_reuse,
        "tw_len": TIME_WAIT_S,
        "abort_on_overflow": host.tcp_abort_on_overflow,
        "retries2": host.tcp_retries2,
        "orphan_retries": host.tcp_orphan_retries,
    }


def _values(
    conn: Connection,
    host: HostSettings,
    cat: Mapping[str, str],
    now: float,
    thresholds: DiagnosisThresholds,
) -> dict[str, object]:
    record = conn.record
    timer = record.timer
    values = _host_values(host, cat)
    values.update(
        state=conn.state.value,
        local=endpoint_text(record.local),
        remote=endpoint_text(record.remote),
        address=record.local.address,
        listener=endpoint_text(record.local),
        process=_process_text(conn, cat),
        age=_age_text(conn, now, cat),
        recv_q=record.recv_q,
        send_q=record.send_q,
        retrans=timer.retrans if timer is not None else 0,
        timer_left=(
            _duration(max(0, timer.expires_ms - record.ms_since_dump(now)) / 1000, cat)
            if timer is not None
            else "-"
        ),
        evidence=dead_peer_evidence(record, thresholds.tags) or "-",
        lingering=int(thresholds.tags.lingering_s),
        count=1,
        destination=endpoint_text(record.remote),
        percent=0,
        syn_recv=0,
        accepted=0,
        unaccepted=0,
        peer_state="-",
        peer_process="-",
        flags="-",
    )
    info = record.tcp_info
    values.update(
        rtt_ms=f"{info.rtt_us / 1000:.3g}" if info else "-",
        rto_ms=f"{info.rto_us / 1000:.3g}" if info else "-",
        mss=info.snd_mss if info else "-",
        cwnd=info.snd_cwnd if info else "-",
        total_retrans=info.total_retrans if info else "-",
    )
    return values


def _fmt(cat: Mapping[str, str], key: str, values: Mapping[str, object]) -> str:
    return cat[key].format_map(values)


def _diagnosis(
    code: Code,
    severity: Severity,
    cat: Mapping[str, str],
    values: Mapping[str, object],
    shows: str = "",
) -> Diagnosis:
    prefix = f"diag.{code.value}."
    return Diagnosis(
        code.value,
        severity,
        _fmt(cat, prefix + "title", values),
        _fmt(cat, prefix + "cause", values),
        _fmt(cat, prefix + "fix", values),
        shows,
    )


# ---------------------------------------------------------------------------------------
# The connection's path


def _guess_outgoing(conn: Connection, host: HostSettings, listen_ports: set[int]) -> bool | None:
    """Outgoing when its local port is ephemeral and no listener owns it; accepted when a
    listener here owns its local port."""
    local, remote = conn.record.local.port, conn.record.remote.port
    if local in listen_ports:
        return False
    first, last = host.ip_local_port_range
    if first <= local <= last and not first <= remote <= last:
        return True
    return None


def connection_path(
    conn: Connection, *, host: HostSettings, others: Iterable[Connection] = ()
) -> tuple[tuple[TcpState, ...], tuple[bool, ...]]:
    """The connection's life as far as it can be told: states and which were inferred.

    From its history when it has one (gaps between consecutive states filled with
    `infer_path`, marked inferred); otherwise the inferred opening up to the current state
    (`first_path`), outgoing or accepted as its ports suggest. Starts at CLOSED whenever the
    start of life is known; ends at CLOSED when the connection is gone.
    """
    states: list[TcpState] = []
    mask: list[bool] = []

    def add(state: TcpState, inferred: bool) -> None:
        if states and states[-1] is state:
            mask[-1] = mask[-1] and inferred
            return
        if states and edge(states[-1], state) is None:
            for between in infer_path(states[-1], state)[1:-1]:
                states.append(between)
                mask.append(True)
        states.append(state)
        mask.append(inferred)

    history = conn.history
    current = conn.record.state
    if history:
        first = history[0]
        if first.from_state is None:
            add(TcpState.CLOSED, True)
        else:
            add(first.from_state, False)
        for step in history:
            add(step.to_state, step.inferred)
    else:
        listen_ports = {c.record.local.port for c in others if c.record.state is TcpState.LISTEN}
        add(TcpState.CLOSED, True)
        for state in first_path(current, outgoing=_guess_outgoing(conn, host, listen_ports)):
            add(state, state is not current)
    if conn.gone_at is not None and states[-1] is not TcpState.CLOSED:
        for state in close_tail(states[-1], hints=_ladder_hints(conn))[1:]:
            add(state, True)
    elif conn.gone_at is None and states[-1] is not current:
        add(current, False)
    return tuple(states), tuple(mask)


def _retried(conn: Connection) -> bool:
    timer = conn.record.timer
    return timer is not None and timer.retrans > 0 and conn.record.state is TcpState.SYN_SENT


def _ladder_hints(conn: Connection) -> PathHints:
    # A SYN_SENT that kept retransmitting and then vanished timed out; it was not refused.
    return PathHints(reset=False) if _retried(conn) else PathHints()


def _how(rows: Sequence[LadderStep], first: TcpState, cat: Mapping[str, str]) -> str:
    phrases: list[str] = []
    parts: list[str] = []
    for row in rows:
        if row.label:
            is_call = row.label.endswith(")")
            parts.append(row.label if is_call else _fmt(cat, "path.timer", {"timer": row.label}))
        if row.flags:
            key = "path.sent" if row.direction is Direction.OUT else "path.recv"
            parts.append(_fmt(cat, key, {"flags": row.flags}))
        if row.local_state is not None:
            enter = _fmt(cat, "path.enter", {"state": row.local_state.value})
            if row.inferred:
                enter += cat["path.inferred"]
            phrases.append(f"{cat['path.join'].join(parts)} {enter}" if parts else enter)
            parts = []
    if not phrases:
        return _fmt(cat, "path.first_seen", {"state": first.value})
    text = cat["path.sep"].join(phrases)
    if any(row.inferred for row in rows):
        text = f"{text}\n{cat['path.inferred_note']}"
    return text


_ACTIVE = frozenset({TcpState.FIN_WAIT1, TcpState.FIN_WAIT2, TcpState.TIME_WAIT})
_PASSIVE = frozenset({TcpState.CLOSE_WAIT, TcpState.LAST_ACK})


def _ended_by_reset(path: Sequence[TcpState], hints: PathHints) -> bool:
    if len(path) < 2 or path[-1] not in (TcpState.CLOSED, TcpState.CLOSE):
        return False
    last = edge(path[-2], path[-1], hints=hints)
    return last is not None and last.kind is EdgeKind.RESET


def _who_key(path: Sequence[TcpState], reset: bool, peer: Connection | None) -> str | None:
    seen = set(path)
    if TcpState.CLOSING in seen:
        return "who.both"
    if seen & _ACTIVE:
        return "who.local"
    if seen & _PASSIVE:
        return "who.peer"
    if reset:
        return "who.reset"
    if peer is not None:
        if peer.state in _ACTIVE:
            return "who.peer"
        if peer.state in _PASSIVE:
            return "who.local"
    return None


# ---------------------------------------------------------------------------------------
# Per-connection explanation


_WILDCARDS = ("0.0.0.0", "::")  # a listener bound to one of these accepts on every address


def _listener_kind(address: str) -> str:
    if address in _WILDCARDS:
        return "wildcard"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "specific"
    mapped = getattr(ip, "ipv4_mapped", None)
    return "loopback" if (mapped or ip).is_loopback else "specific"


def serves(listener: Endpoint, local: Endpoint) -> bool:
    """Whether a listener bound to `listener` takes connections arriving at `local`: the
    same port, and the same address or its family's wildcard (a dual-stack `::` listener
    sees IPv4 clients at ::ffff: addresses, so a plain IPv4 address is never its)."""
    if listener.port != local.port:
        return False
    address = listener.address
    return address == local.address or (
        address in _WILDCARDS and (":" in address) == (":" in local.address)
    )


def owning_listener(local: Endpoint, listeners: Iterable[Connection]) -> Connection | None:
    """The listener whose accept queue a connection arriving at `local` went to: the one
    bound to that very address before its family's wildcard; among equals (SO_REUSEPORT)
    the smallest id, so every caller names the same one."""
    best: Connection | None = None
    for listener in listeners:
        bound = listener.record.local
        if listener.gone_at is not None or not serves(bound, local):
            continue
        if best is None or (bound.address in _WILDCARDS, listener.id) < (
            best.record.local.address in _WILDCARDS,
            best.id,
        ):
            best = listener
    return best


def _queued(conn: Connection) -> bool:
    """A live connection still in its listener's accept queue (see `awaiting_accept`)."""
    return conn.gone_at is None and awaiting_accept(conn.record)


@dataclass(slots=True)
class _Around:
    """What the other connections say about this one (counted once, only what is needed)."""

    syn_recv: int = 0
    accepted: int = 0  # ESTABLISHED children the application has accepted
    unaccepted: int = 0  # children still in the accept queue (ESTABLISHED or CLOSE_WAIT)
    time_wait_to_dest: int = 0
    ports_to_dest: int = 0
    listen_ports: set[int] = field(default_factory=set)
    # Other CLOSE_WAIT of the same owner past the lingering threshold, and the oldest of
    # them: a leak is counted per process, as the host-wide findings count it.
    leaked_with: int = 0
    oldest_leaked: Connection | None = None
    # For a listener: the connections in its accept queue that their clients closed, past
    # the lingering threshold, and the oldest. For a queued connection: the same for its
    # listener (itself included); and its listener.
    closed: int = 0
    oldest_closed: Connection | None = None
    listener: Connection | None = None


def _leak_owner(conn: Connection) -> int | None:
    return conn.process.pid if conn.process is not None else None


def _closed_since(conn: Connection, now: float, lingering_s: float) -> float | None:
    """How long ago the client of a connection still in the accept queue closed it (its
    time in CLOSE_WAIT), when that is past the lingering threshold; None otherwise."""
    if conn.record.state is not TcpState.CLOSE_WAIT or not _queued(conn):
        return None
    age = _state_age(conn, now)[0]
    return age if age >= lingering_s else None


def _count_closed(
    children: Iterable[Connection], now: float, lingering_s: float
) -> tuple[int, Connection | None]:
    """How many of `children` their clients closed in the accept queue, and the oldest."""
    count, oldest, oldest_age = 0, None, -1.0
    for child in children:
        age = _closed_since(child, now, lingering_s)
        if age is None:
            continue
        count += 1
        # Ties go to the smaller id: the answer must not hang on the order.
        if age > oldest_age or (age == oldest_age and oldest is not None and child.id < oldest.id):
            oldest, oldest_age = child, age
    return count, oldest


def _closed_diagnosis(
    listener: Connection | None,
    count: int,
    oldest: Connection | None,
    values: Mapping[str, object],
    cat: Mapping[str, str],
    now: float,
    shows: str = "",
) -> Diagnosis:
    """Children of `listener` closed by their clients while they waited for accept()."""
    found = dict(values, count=count)
    if listener is not None:
        found.update(
            listener=endpoint_text(listener.record.local), process=_process_text(listener, cat)
        )
    else:
        found.update(process=cat["listening_process"])
    if oldest is not None:
        found.update(age=_age_text(oldest, now, cat))
    return _diagnosis(Code.CLOSED_IN_ACCEPT_QUEUE, Severity.PROBLEM, cat, found, shows)


def _around(
    conn: Connection,
    others: Iterable[Connection],
    host: HostSettings,
    now: float,
    thresholds: DiagnosisThresholds,
) -> _Around:
    around = _Around()
    record = conn.record
    listening = record.state is TcpState.LISTEN
    leaking = record.state is TcpState.CLOSE_WAIT and record.inode != 0
    waiting = _queued(conn)
    owner = _leak_owner(conn)
    oldest_age, oldest_id = -1.0, ""
    first, last = host.ip_local_port_range
    lingering_s = thresholds.tags.lingering_s
    me = conn.id
    # The listeners on this port (a queued connection's is one of them), and the children
    # closed in an accept queue: a listener's, or a queued connection's siblings; kept
    # below to those that went to the same listener's queue.
    port_listeners: list[Connection] = [conn] if listening else []
    queued: list[Connection] = [conn] if waiting else []
    # This loop runs over every connection (tens of milliseconds at 50k), so the cheapest
    # test that rules a connection out comes first, and endpoints are compared field by
    # field (Endpoint's own __eq__ is a Python call).
    dest_address, dest_port = record.remote.address, record.remote.port
    listen_address, listen_port = record.local.address, record.local.port
    any_address = listen_address in _WILDCARDS
    listen_v6 = ":" in listen_address
    listen, close_wait = TcpState.LISTEN, TcpState.CLOSE_WAIT
    for other in others:
        o = other.record
        state = o.state
        if state is listen:
            if other.gone_at is None and other.id != me:
                around.listen_ports.add(o.local.port)
                if o.local.port == listen_port:
                    port_listeners.append(other)
        elif listening:
            local = o.local  # served by this listener: `serves`, written out for speed
            if local.port != listen_port or (
                local.address != listen_address
                and not (any_address and (":" in local.address) == listen_v6)
            ):
                continue
            if other.gone_at is not None or other.id == me:
                continue
            if state is TcpState.SYN_RECV:
                around.syn_recv += 1
            elif state is TcpState.ESTABLISHED:
                if o.inode:
                    around.accepted += 1
                else:
                    around.unaccepted += 1
            elif state is close_wait and not o.inode:
                around.unaccepted += 1
                queued.append(other)
        else:
            if state is close_wait and other.gone_at is None and other.id != me:
                if o.inode:
                    if leaking and _leak_owner(other) == owner:
                        age, _exact = _state_age(other, now)
                        if age >= lingering_s:
                            around.leaked_with += 1
                            # Ties go to the smaller id: the answer must not hang on the order.
                            if age > oldest_age or (age == oldest_age and other.id < oldest_id):
                                oldest_age, oldest_id, around.oldest_leaked = age, other.id, other
                elif waiting and o.local.port == listen_port:
                    queued.append(other)
            remote = o.remote
            if remote.port != dest_port or remote.address != dest_address:
                continue
            if other.gone_at is not None or other.id == me:
                continue
            if state is TcpState.TIME_WAIT:
                around.time_wait_to_dest += 1
            if first <= o.local.port <= last:
                around.ports_to_dest += 1
    if waiting:
        around.listener = owning_listener(record.local, port_listeners)
    if queued:
        mine = conn if listening else around.listener
        queued = [c for c in queued if owning_listener(c.record.local, port_listeners) is mine]
    around.closed, around.oldest_closed = _count_closed(queued, now, lingering_s)
    return around


def _next_key(conn: Connection, tags: frozenset[Tag]) -> str:
    state = conn.state
    timer = conn.record.timer
    key = f"state.{state.value}.next"
    if _queued(conn):
        return key + "_unaccepted"
    if state is TcpState.ESTABLISHED and timer is not None:
        return {
            TimerName.KEEPALIVE: key + "_keepalive",
            TimerName.RETRANSMIT: key + "_retransmit",
            TimerName.PERSIST: key + "_persist",
        }.get(timer.name, key)
    if state in (TcpState.FIN_WAIT1, TcpState.FIN_WAIT2) and Tag.ORPHAN in tags:
        return key + "_orphan"
    if state is TcpState.TIME_WAIT and timer is None:
        return key + "_notimer"
    return key


_TCP_INFO_STATES = frozenset(
    {
        TcpState.ESTABLISHED,
        TcpState.FIN_WAIT1,
        TcpState.FIN_WAIT2,
        TcpState.CLOSING,
        TcpState.CLOSE_WAIT,
        TcpState.LAST_ACK,
        TcpState.SYN_SENT,
    }
)

_QUEUE_NOTE = {
    TcpState.LISTEN: "note.queues.LISTEN",
    TcpState.CLOSE_WAIT: "note.queues.CLOSE_WAIT",
    TcpState.ESTABLISHED: "note.queues.default",
    TcpState.FIN_WAIT1: "note.queues.default",
    TcpState.FIN_WAIT2: "note.queues.default",
    TcpState.CLOSING: "note.queues.default",
    TcpState.LAST_ACK: "note.queues.default",
}


def explain(
    conn: Connection,
    *,
    host: HostSettings,
    peer: Connection | None = None,
    lang: str = "en",
    now: float | None = None,
    others: Iterable[Connection] = (),
    thresholds: DiagnosisThresholds = DEFAULT_DIAGNOSIS,
) -> Explanation:
    """Explain one connection in `lang` ("en" or "zh"; ValueError otherwise).

    `host` gives the live settings quoted in the text; `peer` is the other end when it is
    on this host too; `now` (wall clock, default the current time) dates ages and timers;
    `others` (any iterable of connections, e.g. the whole current view) lets a listener
    count its SYN_RECV, accepted and queued connections, a CLOSE_WAIT count its process's
    other leaks, a connection in an accept queue find its listener and the others closed
    there, and an outgoing connection see the TIME_WAIT and port use toward its
    destination; a part of the view gives the same answer if it holds every listener and
    those candidates (`tcpwatch.tracker.neighbours` finds them). The tags explained are
    `conn.tags` plus what `classify` finds with `thresholds.tags` and the state's age.
    """
    cat = _catalog(lang)
    now = time.time() if now is None else now
    others = tuple(others)
    record = conn.record
    state = conn.state
    values = _values(conn, host, cat, now, thresholds)
    around = _around(conn, others, host, now, thresholds)
    age, _exact = _state_age(conn, now)
    tags = conn.tags | (
        classify(record, state_age_s=age, thresholds=thresholds.tags)
        if conn.gone_at is None
        else frozenset()
    )

    path, mask = connection_path(conn, host=host, others=others)
    hints = _ladder_hints(conn)
    rows = ladder(path, inferred_mask=mask, hints=hints)
    reset = _ended_by_reset(path, hints)
    who = _who_key(path, reset, peer)

    notes: list[str] = []
    diagnoses: list[Diagnosis] = []
    if state in _QUEUE_NOTE:
        notes.append(_fmt(cat, _QUEUE_NOTE[state], values))
    elif state is not TcpState.CLOSED:
        notes.append(cat["note.queues.none"])
    if state is TcpState.LISTEN:
        kind = _listener_kind(record.local.address)
        notes.append(_fmt(cat, f"note.listener.{kind}", values))
        notes.append(_fmt(cat, "note.listener.queue", values))
        if others:
            values.update(
                syn_recv=around.syn_recv, accepted=around.accepted, unaccepted=around.unaccepted
            )
            notes.append(_fmt(cat, "note.listener.children", values))
            unlisted = record.recv_q - around.unaccepted
            if unlisted > 0 and conn.gone_at is None:
                notes.append(_fmt(cat, "note.listener.unlisted", dict(values, count=unlisted)))
        if kind == "loopback":
            diagnoses.append(_diagnosis(Code.LOOPBACK_ONLY_LISTENER, Severity.INFO, cat, values))
        pressure = accept_queue_pressure(record, thresholds.tags)
        if pressure is not None:
            values.update(percent=round(pressure * 100))
            severity = Severity.PROBLEM if pressure >= 1.0 else Severity.WARNING
            diagnoses.append(_diagnosis(Code.ACCEPT_QUEUE_OVERFLOW, severity, cat, values))
        if _syn_recv_buildup(around.syn_recv, record.send_q, host, thresholds):
            values.update(count=around.syn_recv)
            diagnoses.append(_diagnosis(Code.SYN_RECV_BUILDUP, Severity.WARNING, cat, values))
        if around.closed:
            diagnoses.append(
                _closed_diagnosis(conn, around.closed, around.oldest_closed, values, cat, now)
            )
    if record.timer is not None and record.timer.name is TimerName.KEEPALIVE:
        notes.append(_fmt(cat, "note.keepalive", values))
    if state in (TcpState.FIN_WAIT2, TcpState.CLOSE_WAIT):
        notes.append(cat["note.half_close"])
    if set(path) & (_ACTIVE | _PASSIVE):
        notes.append(cat["note.fin_ack"])
    legend = list(dict.fromkeys(row.flags for row in rows if row.flags))
    if legend:
        values.update(flags=cat["path.sep"].join(cat[f"flag.{f.strip('[]')}"] for f in legend))
        notes.append(_fmt(cat, "note.flags", values))
    if record.tcp_info_raw is not None and state in _TCP_INFO_STATES:
        notes.append(_fmt(cat, "note.tcp_info", values))
    if reset:
        refused = len(path) >= 2 and path[-2] is TcpState.SYN_SENT
        notes.append(_fmt(cat, "note.refused" if refused else "note.reset", values))
    if peer is not None:
        values.update(peer_state=peer.state.value, peer_process=_process_text(peer, cat))
        notes.append(_fmt(cat, "note.peer", values))
    for tag in Tag:
        if tag in tags:
            notes.append(_fmt(cat, f"tag.{tag.value}", values))

    if conn.gone_at is None:
        diagnoses.extend(
            _connection_diagnoses(conn, tags, age, now, around, host, thresholds, cat, values)
        )
    diagnoses.sort(key=lambda d: _SEVERITY_ORDER[d.severity])
    return Explanation(
        title=_fmt(cat, f"state.{state.value}.title", values),
        meaning=_fmt(cat, f"state.{state.value}.meaning", values),
        how_it_got_here=_how(rows, path[0], cat),
        what_next=_fmt(cat, _next_key(conn, tags), values),
        who_closed_first=_fmt(cat, who, values) if who else None,
        diagnoses=tuple(diagnoses),
        notes=tuple(notes),
        path=path,
        inferred=mask,
        ladder=rows,
    )


def _syn_recv_buildup(
    count: int, backlog: int, host: HostSettings, thresholds: DiagnosisThresholds
) -> bool:
    queue = min(backlog, host.tcp_max_syn_backlog) if backlog > 0 else host.tcp_max_syn_backlog
    return count >= max(thresholds.syn_recv_min, thresholds.syn_recv_ratio * queue)


def _connection_diagnoses(
    conn: Connection,
    tags: frozenset[Tag],
    age: float,
    now: float,
    around: _Around,
    host: HostSettings,
    thresholds: DiagnosisThresholds,
    cat: Mapping[str, str],
    values: dict[str, object],
) -> list[Diagnosis]:
    record = conn.record
    state = record.state
    found: list[Diagnosis] = []
    if state is TcpState.CLOSE_WAIT and age >= thresholds.tags.lingering_s:
        if record.inode:
            leak = dict(values, count=1 + around.leaked_with)
            oldest = around.oldest_leaked
            if oldest is not None and _state_age(oldest, now)[0] > age:
                leak.update(age=_age_text(oldest, now, cat))
            found.append(_diagnosis(Code.CLOSE_WAIT_LEAK, Severity.PROBLEM, cat, leak))
        else:  # still in the accept queue: the listener's process is slow, not leaking
            found.append(
                _closed_diagnosis(
                    around.listener, around.closed, around.oldest_closed, values, cat, now
                )
            )
    if state is TcpState.SYN_SENT and (
        age >= thresholds.syn_sent_stuck_s or (record.timer is not None and record.timer.retrans)
    ):
        found.append(_diagnosis(Code.SYN_SENT_STUCK, Severity.WARNING, cat, values))
    if state is TcpState.ESTABLISHED and dead_peer_evidence(record, thresholds.tags):
        found.append(_diagnosis(Code.DEAD_PEER, Severity.WARNING, cat, values))
    if Tag.ORPHAN in tags and Tag.LINGERING in tags:
        found.append(_diagnosis(Code.ORPHAN_LINGERING, Severity.WARNING, cat, values))
    if state is not TcpState.LISTEN:
        tw = around.time_wait_to_dest + (state is TcpState.TIME_WAIT)
        if tw >= thresholds.time_wait_per_destination:
            values.update(count=tw)
            found.append(_diagnosis(Code.TIME_WAIT_BUILDUP, Severity.WARNING, cat, values))
        first, last = host.ip_local_port_range
        used = around.ports_to_dest + (first <= record.local.port <= last)
        ratio = used / host.ephemeral_ports if host.ephemeral_ports else 0.0
        if ratio >= thresholds.port_pressure_ratio and record.local.port not in around.listen_ports:
            values.update(count=used, percent=round(ratio * 100))
            severity = Severity.PROBLEM if ratio >= 0.9 else Severity.WARNING
            found.append(_diagnosis(Code.EPHEMERAL_PORT_PRESSURE, severity, cat, values))
    return found


# ---------------------------------------------------------------------------------------
# Host-wide findings


def diagnose_population(
    connections: Iterable[Connection],
    host: HostSettings,
    lang: str = "en",
    *,
    now: float | None = None,
    thresholds: DiagnosisThresholds = DEFAULT_DIAGNOSIS,
) -> tuple[Diagnosis, ...]:
    """Findings about many connections at once, worst first.

    CLOSE_WAIT older than the lingering threshold, per owning process (a leak: count and
    oldest age), or per listener when no application has accepted it yet (its client gave
    up in the accept queue); TIME_WAIT per destination address:port; local-port use per
    destination against ip_local_port_range; SYN_RECV per listener; listeners whose accept
    queue is under pressure. At most `thresholds.per_code_limit` findings per code, largest first.
    Gone connections are ignored. Each finding's `shows` filters to the connections it is about.
    """
    cat = _catalog(lang)
    now = time.time() if now is None else now
    first, last = host.ip_local_port_range
    base = _host_values(host, cat)
    lingering = thresholds.tags.lingering_s
    listen, time_wait, close_wait, syn_recv = (
        TcpState.LISTEN,
        TcpState.TIME_WAIT,
        TcpState.CLOSE_WAIT,
        TcpState.SYN_RECV,
    )

    # One pass over what may be 100k connections: only cheap tests for the common case.
    listeners: list[Connection] = []
    waiting: Counter[Endpoint] = Counter()
    ephemeral: list[tuple[int, Endpoint]] = []  # (local port, remote), filtered below
    leaks: dict[int | None, list[Connection]] = {}
    queued_closed: list[Connection] = []  # lingering CLOSE_WAIT not accepted yet
    half_open: list[Connection] = []
    for conn in connections:
        if conn.gone_at is not None:
            continue
        record = conn.record
        state = record.state
        if state is listen:
            listeners.append(conn)
            continue
        if state is time_wait:
            waiting[record.remote] += 1
        port = record.local.port
        if first <= port <= last:
            ephemeral.append((port, record.remote))
        if state is syn_recv:
            half_open.append(conn)
        elif state is close_wait and _state_age(conn, now)[0] >= lingering:
            if record.inode:
                leaks.setdefault(_leak_owner(conn), []).append(conn)
            else:
                queued_closed.append(conn)
    listen_ports = {c.record.local.port for c in listeners}
    ports = Counter(remote for port, remote in ephemeral if port not in listen_ports)
    # Per port, so that a listener looks only at what arrived on its own.
    listeners_on: dict[int, list[Connection]] = {}
    for listener in listeners:
        listeners_on.setdefault(listener.record.local.port, []).append(listener)
    half_open_on: dict[int, list[Connection]] = {}
    for conn in half_open:
        half_open_on.setdefault(conn.record.local.port, []).append(conn)
    # Each one closed in an accept queue counts once, for the listener whose queue it is in.
    closed_in: dict[str, list[Connection]] = {}
    for conn in queued_closed:
        local = conn.record.local
        owner = owning_listener(local, listeners_on.get(local.port, ()))
        if owner is not None:
            closed_in.setdefault(owner.id, []).append(conn)

    found: list[tuple[Code, float, Diagnosis]] = []
    limit = thresholds.per_code_limit

    for pid, conns in leaks.items():
        oldest = max(conns, key=lambda c: _state_age(c, now)[0])
        values = _values(oldest, host, cat, now, thresholds)
        values.update(count=len(conns))
        shows = "state:close-wait" if pid is None else f"pid:{pid} state:close-wait"
        found.append(
            (
                Code.CLOSE_WAIT_LEAK,
                len(conns),
                _diagnosis(Code.CLOSE_WAIT_LEAK, Severity.PROBLEM, cat, values, shows),
            )
        )
    for dest, count in waiting.most_common(limit):
        if count < thresholds.time_wait_per_destination:
            break
        values = {**_blank(), **base, "count": count, "destination": endpoint_text(dest)}
        shows = f"{_toward(dest)} state:time-wait"
        found.append(
            (
                Code.TIME_WAIT_BUILDUP,
                count,
                _diagnosis(Code.TIME_WAIT_BUILDUP, Severity.WARNING, cat, values, shows),
            )
        )
    for dest, count in ports.most_common(limit):
        ratio = count / host.ephemeral_ports if host.ephemeral_ports else 0.0
        if ratio < thresholds.port_pressure_ratio:
            break
        values = {
            **_blank(),
            **base,
            "count": count,
            "destination": endpoint_text(dest),
            "percent": round(ratio * 100),
        }
        severity = Severity.PROBLEM if ratio >= 0.9 else Severity.WARNING
        found.append(
            (
                Code.EPHEMERAL_PORT_PRESSURE,
                count,
                _diagnosis(Code.EPHEMERAL_PORT_PRESSURE, severity, cat, values, _toward(dest)),
            )
        )
    for listener in listeners:
        record = listener.record
        values = _values(listener, host, cat, now, thresholds)
        on_port = _on(record.local)
        pressure = accept_queue_pressure(record, thresholds.tags)
        if pressure is not None:
            values.update(percent=round(pressure * 100))
            severity = Severity.PROBLEM if pressure >= 1.0 else Severity.WARNING
            found.append(
                (
                    Code.ACCEPT_QUEUE_OVERFLOW,
                    pressure,
                    _diagnosis(Code.ACCEPT_QUEUE_OVERFLOW, severity, cat, values, on_port),
                )
            )
        closed, oldest = _count_closed(closed_in.get(listener.id, ()), now, lingering)
        if closed:
            shows = f"{on_port} tag:unaccepted state:close-wait"
            diagnosis = _closed_diagnosis(listener, closed, oldest, values, cat, now, shows)
            found.append((Code.CLOSED_IN_ACCEPT_QUEUE, closed, diagnosis))
        arrived = half_open_on.get(record.local.port, ())
        pending = sum(1 for c in arrived if serves(record.local, c.record.local))
        if _syn_recv_buildup(pending, record.send_q, host, thresholds):
            values.update(count=pending)
            shows = f"{on_port} state:syn-recv"
            found.append(
                (
                    Code.SYN_RECV_BUILDUP,
                    pending,
                    _diagnosis(Code.SYN_RECV_BUILDUP, Severity.WARNING, cat, values, shows),
                )
            )

    result: list[Diagnosis] = []
    per_code: Counter[Code] = Counter()
    for code, _size, diagnosis in sorted(
        found, key=lambda item: (_SEVERITY_ORDER[item[2].severity], -item[1])
    ):
        if per_code[code] < limit:
            per_code[code] += 1
            result.append(diagnosis)
    return tuple(result)


def _toward(dest: Endpoint) -> str:
    """Filter terms for the connections toward one address and port."""
    return f"dst:{dest.address} dport:{dest.port}"


def _on(local: Endpoint) -> str:
    """Filter terms for a listener and what it accepted: its port, and its address unless it
    is a wildcard (which accepts on every address)."""
    port = f"lport:{local.port}"
    return port if local.address in _WILDCARDS else f"src:{local.address} {port}"


def _blank() -> dict[str, object]:
    """Connection fields for findings about no single connection."""
    return dict.fromkeys(_CONNECTION_FIELDS, "-")

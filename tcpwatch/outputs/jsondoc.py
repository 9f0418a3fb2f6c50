"""The `tcpwatch.snapshot/1` JSON document and the JSON shapes of its parts.

Field names are a public contract (DESIGN.md): add fields freely, never rename one
without bumping the schema version.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from tcpwatch.errors import TcpwatchError
from tcpwatch.model import (
    Connection,
    Endpoint,
    Family,
    ProcessInfo,
    Snapshot,
    SocketRecord,
    TcpInfo,
    Timer,
    TimerName,
    Transition,
)
from tcpwatch.tcp.states import TcpState
from tcpwatch.tcp.tags import DEFAULT_THRESHOLDS, Tag, TagThresholds, classify
from tcpwatch.tcpinfo import aged, parse_tcp_info
from tcpwatch.tracker.view import connection_id, first_view

SCHEMA = "tcpwatch.snapshot/1"
_CLOSED = TcpState.CLOSED.value  # a gone connection's state (Connection.state)


@functools.lru_cache(maxsize=1024)  # a poll's transitions and connections share timestamps
def iso(ts: float) -> str:
    """UTC with microseconds and a `Z`: `2026-11-22T10:00:00.123456Z`."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def endpoint_json(e: Endpoint) -> dict[str, Any]:
    return {"address": e.address, "port": e.port}


def process_json(p: ProcessInfo | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {"pid": p.pid, "name": p.name, "cmdline": list(p.cmdline), "user": p.user}


def timer_json(t: Timer | None, elapsed_ms: int = 0) -> dict[str, Any] | None:
    """`elapsed_ms` after the record was dumped, the timer has run down that much."""
    if t is None:
        return None
    expires = max(0, t.expires_ms - elapsed_ms)
    return {"name": t.name.value, "expires_ms": expires, "retrans": t.retrans}


def tcp_info_json(info: TcpInfo | None) -> dict[str, Any] | None:
    """The contract's fields (null where an older kernel did not send one), then the
    rest of the dead-peer evidence. Kept short: it is repeated for every connection."""
    if info is None:
        return None
    return {
        "rtt_us": info.rtt_us,
        "retransmits": info.retransmits,
        "backoff": info.backoff,
        "probes": info.probes,
        "unacked": info.unacked,
        "bytes_acked": info.bytes_acked,
        "bytes_received": info.bytes_received,
        "last_data_recv_ms": info.last_data_recv_ms,
        "last_data_sent_ms": info.last_data_sent_ms,
        "last_ack_recv_ms": info.last_ack_recv_ms,
        "total_retrans": info.total_retrans,
    }


def transition_json(t: Transition) -> dict[str, Any]:
    return {
        "at": iso(t.at),
        "from": None if t.from_state is None else t.from_state.value,
        "to": t.to_state.value,
        "inferred": t.inferred,
    }


def connection_json(conn: Connection, *, with_history: bool) -> dict[str, Any]:
    return _connection_json(conn, with_history, {}, {}, None)


# The contract's tcp_info fields straight from the kernel's bytes, in offset order:
# retransmits, probes, backoff, unacked, last_data_sent, last_data_recv, last_ack_recv,
# rtt, total_retrans, bytes_acked, bytes_received (offsets as in tcpwatch.tcpinfo).
# Building a whole TcpInfo per connection cost more than the rest of the document.
_TCP_INFO_FIELDS = struct.Struct("=2xBBB19xI16xI4xII8xI28xI16xQQ")


def _tcp_info_raw_json(raw: bytes, grown_ms: int = 0) -> dict[str, Any] | None:
    """tcp_info_json(parse_tcp_info(raw)), without the TcpInfo, for kernels that send
    every contract field (older ones take the general path, with nulls); `grown_ms`
    is added to the times since the last data and ACK (see SocketRecord.tcp_info_at)."""
    if len(raw) < _TCP_INFO_FIELDS.size:
        return tcp_info_json(aged(parse_tcp_info(raw), grown_ms))
    (
        retransmits,
        probes,
        backoff,
        unacked,
        last_data_sent,
        last_data_recv,
        last_ack_recv,
        rtt,
        total_retrans,
        bytes_acked,
        bytes_received,
    ) = _TCP_INFO_FIELDS.unpack_from(raw)
    return {
        "rtt_us": rtt,
        "retransmits": retransmits,
        "backoff": backoff,
        "probes": probes,
        "unacked": unacked,
        "bytes_acked": bytes_acked,
        "bytes_received": bytes_received,
        "last_data_recv_ms": last_data_recv + grown_ms,
        "last_data_sent_ms": last_data_sent + grown_ms,
        "last_ack_recv_ms": last_ack_recv + grown_ms,
        "total_retrans": total_retrans,
    }


def _connection_json(
    conn: Connection,
    with_history: bool,
    processes: dict[int, dict[str, Any] | None],
    tag_lists: dict[frozenset[Tag], tuple[str, ...]],
    at: float | None,
) -> dict[str, Any]:
    """`processes` caches process_json per ProcessInfo (many sockets share one process),
    `tag_lists` the sorted tag names per tag set (a handful of sets are shared by all)."""
    record = conn.record
    process = conn.process
    if process is None:
        process_doc = None
    else:
        key = id(process)
        if key in processes:
            process_doc = processes[key]
        else:
            process_doc = processes[key] = process_json(process)
    tags = conn.tags
    if tags:
        names = tag_lists.get(tags)
        if names is None:
            names = tag_lists[tags] = tuple(sorted(tag.value for tag in tags))
        tag_names = list(names)
    else:
        tag_names = []
    raw = record.tcp_info_raw
    state_since = conn.state_since
    # The record may be from an earlier poll (a socket whose timer only counted down keeps
    # its connection): its timer and tcp_info ages are advanced to the document's time.
    grown_ms = 0 if at is None else record.ms_since_dump(at)
    document: dict[str, Any] = {
        "id": conn.id,
        "family": record.family.value,
        "state": _CLOSED if conn.gone_at is not None else record.state.value,
        "local": endpoint_json(record.local),
        "remote": endpoint_json(record.remote),
        "recv_q": record.recv_q,
        "send_q": record.send_q,
        "timer": timer_json(record.timer, grown_ms),
        "uid": record.uid,
        "inode": record.inode,
        "process": process_doc,
    }
    if conn.former_process is not None:
        document["former_process"] = process_json(conn.former_process)
    document["tags"] = tag_names
    document["state_since"] = None if state_since is None else iso(state_since)
    document["history"] = [transition_json(t) for t in conn.history] if with_history else []
    if raw is None:
        document["tcp_info"] = None
    else:
        document["tcp_info"] = _tcp_info_raw_json(raw, grown_ms)
    return document


def snapshot_document(
    snapshot: Snapshot,
    connections: Iterable[Connection],
    filter_text: str,
    *,
    with_history: bool,
) -> dict[str, Any]:
    """The whole document for `connections` (already filtered) seen in `snapshot`."""
    processes: dict[int, dict[str, Any] | None] = {}
    tag_lists: dict[frozenset[Tag], tuple[str, ...]] = {}
    at = snapshot.taken_at
    items = [_connection_json(conn, with_history, processes, tag_lists, at) for conn in connections]
    states = Counter(item["state"] for item in items)
    tags = Counter(tag for item in items for tag in item["tags"])
    return {
        "schema": SCHEMA,
        "taken_at": iso(snapshot.taken_at),
        "host": snapshot.host,
        "netns": snapshot.netns,
        "source": snapshot.source.value,
        "filter": filter_text,
        "summary": {"total": len(items), "states": dict(states), "tags": dict(tags)},
        "connections": items,
    }


def snapshot_json_text(
    snapshot: Snapshot,
    connections: Iterable[Connection],
    filter_text: str,
    *,
    with_history: bool,
) -> str:
    """`json.dumps(snapshot_document(...), separators=(",", ":"))`, character for
    character, written straight as text.

    For `snapshot --json` at 50k connections: building 50k nested dicts and encoding them
    cost more than everything else put together. Text that is not a fixed name (ids,
    addresses, process details, host, filter) goes through json's own string encoder;
    numbers are ints, which json writes as str() does.
    """
    encode = _encode_string
    processes: dict[int, str] = {}
    tag_lists: dict[frozenset[Tag], tuple[str, tuple[str, ...]]] = {}
    state_names = _STATE_NAMES
    states: dict[str, int] = {}
    tag_counts: dict[str, int] = {}
    taken_at = snapshot.taken_at
    items = []
    append = items.append
    for conn in connections:
        record = conn.record
        state = _CLOSED if conn.gone_at is not None else state_names[record.state]
        states[state] = states.get(state, 0) + 1
        process_text = _process_text(conn.process, processes)
        if conn.former_process is not None:  # only the tracker knows one: not on the fast path
            process_text += f',"former_process":{_compact(process_json(conn.former_process))}'
        tags_text = _tags_text(conn.tags, tag_lists, tag_counts)
        state_since = conn.state_since
        append(
            _item_text(
                encode(conn.id),
                record,
                state,
                process_text,
                tags_text,
                "null" if state_since is None else _quoted_iso(state_since),
                _compact([transition_json(t) for t in conn.history]) if with_history else "[]",
                record.ms_since_dump(taken_at),
            )
        )
    return _document_text(snapshot, filter_text, items, states, tag_counts)


def first_view_json_text(snapshot: Snapshot, thresholds: TagThresholds = DEFAULT_THRESHOLDS) -> str:
    """`snapshot_json_text(snapshot, first_view(snapshot, thresholds).values(), "",
    with_history=False)`, character for character, straight from the records.

    For an unfiltered one-shot `snapshot --json`: building 50k Connection objects only to
    read them back cost a fifth of the whole run. Ids, owners and tags as first_view
    gives them (the same `connection_id` and `classify`), in the kernel's order.
    """
    items, states, tag_counts, distinct = _first_view_part(snapshot, snapshot.sockets, thresholds)
    if distinct < len(items):
        # A socket listed twice (a dump is not atomic): first_view keeps one connection.
        return snapshot_json_text(
            snapshot, first_view(snapshot, thresholds).values(), "", with_history=False
        )
    return f"{_document_head(snapshot, len(items), states, tag_counts)}{','.join(items)}]}}"


def write_first_view_json(
    snapshot: Snapshot, fd: int, thresholds: TagThresholds = DEFAULT_THRESHOLDS
) -> None:
    """Write `first_view_json_text(snapshot, thresholds)` and a newline to the file
    descriptor `fd` (OSError as a write raises it; BrokenPipeError when the reader left).

    With many sockets a forked child formats the second half meanwhile, on the second
    core, and writes it after the parent's half (at 50k sockets: 140 ms instead of 210).
    For single-threaded callers (it forks).
    """
    sockets = snapshot.sockets
    if len(sockets) < _SPLIT_AT or not _distinct_cookies(sockets):
        _write_all(fd, first_view_json_text(snapshot, thresholds).encode())
        _write_all(fd, b"\n")
        return
    half = len(sockets) // 2
    report_r, report_w = os.pipe()  # child -> parent: its counts, then how its write went
    go_r, go_w = os.pipe()  # parent -> child: write now (EOF: never)
    pid = os.fork()
    if pid == 0:  # the child: never returns
        status = 1
        try:
            os.close(report_r)
            os.close(go_w)
            items, states, tag_counts, _ = _first_view_part(snapshot, sockets[half:], thresholds)
            text = ",".join(items).encode()
            counts = [len(items), list(states.items()), list(tag_counts.items())]
            _write_all(report_w, _compact(counts).encode() + b"\n")
            if os.read(go_r, 1):
                try:
                    _write_all(fd, text)
                    _write_all(report_w, b"0\n")
                except OSError as error:
                    _write_all(report_w, f"{error.errno or 5}\n".encode())
            status = 0
        finally:
            os._exit(status)
    os.close(report_w)
    os.close(go_r)
    try:
        with os.fdopen(report_r, "rb") as report:
            items, states, tag_counts, _ = _first_view_part(snapshot, sockets[:half], thresholds)
            line = report.readline()
            if line:
                total, child_states, child_tags = json.loads(line)
                child_text = None
            else:  # the child failed: its half here too
                rest, more_states, more_tags, _ = _first_view_part(
                    snapshot, sockets[half:], thresholds
                )
                total, child_text = len(rest), ",".join(rest)
                child_states, child_tags = list(more_states.items()), list(more_tags.items())
            for counts, more in ((states, child_states), (tag_counts, child_tags)):
                for name, count in more:  # the child's names after ours: document order
                    counts[name] = counts.get(name, 0) + count
            head = _document_head(snapshot, len(items) + total, states, tag_counts)
            mine = ",".join(items)
            comma = "," if items and total else ""
            if child_text is not None:
                _write_all(fd, f"{head}{mine}{comma}{child_text}]}}\n".encode())
                return
            _write_all(fd, f"{head}{mine}{comma}".encode())
            os.write(go_w, b"w")
            written = report.readline().strip()
            if written != b"0":  # OSError picks the subclass (BrokenPipeError …)
                errno = int(written or 5)
                raise OSError(errno, os.strerror(errno))
            _write_all(fd, b"]}\n")
    finally:
        os.close(go_w)
        os.waitpid(pid, 0)


# Below this many sockets a second process costs more than it saves.
_SPLIT_AT = 5000


def _distinct_cookies(sockets: Sequence[SocketRecord]) -> bool:
    """Every socket has a cookie, and no two the same: then the halves' ids are
    independent (no 4-tuple ids to number, no socket listed twice)."""
    cookies = {record.cookie for record in sockets}
    return None not in cookies and len(cookies) == len(sockets)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _first_view_part(
    snapshot: Snapshot,
    sockets: Sequence[SocketRecord],
    thresholds: TagThresholds,
) -> tuple[list[str], dict[str, int], dict[str, int], int]:
    """The texts of first_view's connections of `sockets` (some of `snapshot`'s), their
    state and tag counts (each name in the order it first appears), and how many distinct
    ids they have."""
    owners = snapshot.owners
    taken_at = snapshot.taken_at
    encode = _encode_string
    processes: dict[int, str] = {}
    tag_texts: dict[frozenset[Tag], str] = {}
    set_counts: dict[frozenset[Tag], int] = {}  # counted per tag set, named at the end
    state_names = _STATE_NAMES
    states: dict[str, int] = {}
    taken: set[str] = set()  # ids made from 4-tuples (sources without cookies)
    cookies: set[int] = set()
    see_cookie = cookies.add
    items = []
    append = items.append
    for record in sockets:
        cookie = record.cookie
        if cookie is not None:
            see_cookie(cookie)
            id_text = f'"0x{cookie:x}"'  # hex digits: nothing to escape
        else:
            conn_id = connection_id(record, taken)
            taken.add(conn_id)
            id_text = encode(conn_id)
        state = state_names[record.state]
        states[state] = states.get(state, 0) + 1
        inode = record.inode
        process = owners.get(inode) if inode else None
        if process is None:
            process_text = "null"
        else:
            process_text = processes.get(id(process)) or _process_text(process, processes)
        tags = classify(record, state_age_s=None, thresholds=thresholds)
        tags_text = tag_texts.get(tags)
        if tags_text is None:
            tags_text = tag_texts[tags] = _compact(sorted(tag.value for tag in tags))
        set_counts[tags] = set_counts.get(tags, 0) + 1
        # A one-shot dump's records are never reused: no call for each of 50k of them.
        grown_ms = 0 if record.dumped_at is None else record.ms_since_dump(taken_at)
        append(_item_text(id_text, record, state, process_text, tags_text, "null", "[]", grown_ms))
    tag_counts: dict[str, int] = {}
    for tags, count in set_counts.items():
        for name in sorted(tag.value for tag in tags):
            tag_counts[name] = tag_counts.get(name, 0) + count
    return items, states, tag_counts, len(cookies) + len(taken)


def _process_text(process: ProcessInfo | None, cache: dict[int, str]) -> str:
    """process_json as text, made once per process (many sockets share one)."""
    if process is None:
        return "null"
    text = cache.get(id(process))
    if text is None:
        text = cache[id(process)] = _compact(process_json(process))
    return text


def _tags_text(
    tags: frozenset[Tag],
    cache: dict[frozenset[Tag], tuple[str, tuple[str, ...]]],
    counts: dict[str, int],
) -> str:
    """The sorted tag names as text, made once per tag set; counts each name."""
    if not tags:
        return "[]"
    entry = cache.get(tags)
    if entry is None:
        ordered = tuple(sorted(tag.value for tag in tags))
        entry = cache[tags] = (_compact(list(ordered)), ordered)
    for name in entry[1]:
        counts[name] = counts.get(name, 0) + 1
    return entry[0]


def _item_text(
    id_text: str,
    record: SocketRecord,
    state: str,
    process_text: str,
    tags_text: str,
    since_text: str,
    history_text: str,
    grown_ms: int,
) -> str:
    """One connection's object as text; the other arguments are JSON text already
    (`state` a fixed name, written quoted), but `grown_ms`: how much to age tcp_info and
    run down the timer."""
    encode = _encode_string
    timer = record.timer
    if timer is None:
        timer_text = "null"
    else:
        expires = max(0, timer.expires_ms - grown_ms)
        timer_text = (
            f'{{"name":{_TIMER_TEXT[timer.name]},"expires_ms":{expires},"retrans":{timer.retrans}}}'
        )
    raw = record.tcp_info_raw
    if raw is None:
        info_text = "null"
    elif len(raw) >= _TCP_INFO_FIELDS.size:
        (
            retransmits,
            probes,
            backoff,
            unacked,
            last_data_sent,
            last_data_recv,
            last_ack_recv,
            rtt,
            total_retrans,
            bytes_acked,
            bytes_received,
        ) = _TCP_INFO_FIELDS.unpack_from(raw)
        if retransmits or backoff or probes or unacked:
            middle = (
                f'"retransmits":{retransmits},"backoff":{backoff},"probes":{probes},'
                f'"unacked":{unacked}'
            )
        else:  # an idle connection's: four ints fewer to format
            middle = _QUIET_TCP_INFO
        info_text = (
            f'{{"rtt_us":{rtt},{middle},'
            f'"bytes_acked":{bytes_acked},"bytes_received":{bytes_received},'
            f'"last_data_recv_ms":{last_data_recv + grown_ms},'
            f'"last_data_sent_ms":{last_data_sent + grown_ms},'
            f'"last_ack_recv_ms":{last_ack_recv + grown_ms},"total_retrans":{total_retrans}}}'
        )
    else:
        info_text = _compact(_tcp_info_raw_json(raw, grown_ms))
    local = record.local
    remote = record.remote
    return (
        f'{{"id":{id_text},"family":{_IPV4 if record.family is Family.IPV4 else _IPV6},'
        f'"state":"{state}","local":{{"address":{encode(local.address)},'
        f'"port":{local.port}}},"remote":{{"address":{encode(remote.address)},'
        f'"port":{remote.port}}},"recv_q":{record.recv_q},'
        f'"send_q":{record.send_q},"timer":{timer_text},"uid":{record.uid},'
        f'"inode":{record.inode},"process":{process_text},"tags":{tags_text},'
        f'"state_since":{since_text},"history":{history_text},"tcp_info":{info_text}}}'
    )


def _document_text(
    snapshot: Snapshot,
    filter_text: str,
    items: list[str],
    states: dict[str, int],
    tag_counts: dict[str, int],
) -> str:
    """The document around its connections' texts `items`, with their counts."""
    head = _document_head(snapshot, len(items), states, tag_counts, filter_text)
    return f"{head}{','.join(items)}]}}"


def _document_head(
    snapshot: Snapshot,
    total: int,
    states: dict[str, int],
    tag_counts: dict[str, int],
    filter_text: str = "",
) -> str:
    """The document's text up to its first connection."""
    head = _compact(
        {
            "schema": SCHEMA,
            "taken_at": iso(snapshot.taken_at),
            "host": snapshot.host,
            "netns": snapshot.netns,
            "source": snapshot.source.value,
            "filter": filter_text,
            "summary": {"total": total, "states": states, "tags": tag_counts},
        }
    )
    return f'{head[:-1]},"connections":['


def _quoted_iso(ts: float) -> str:
    return f'"{iso(ts)}"'


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


# A Python string as a JSON string literal, exactly as json.dumps writes it (ASCII).
_encode_string = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]
# Fixed ASCII names, already quoted where they are JSON strings.
_TIMER_TEXT: dict[TimerName, str] = {name: f'"{name.value}"' for name in TimerName}
_STATE_NAMES: dict[TcpState, str] = {state: state.value for state in TcpState}
_IPV4 = f'"{Family.IPV4.value}"'
_IPV6 = f'"{Family.IPV6.value}"'
_QUIET_TCP_INFO = '"retransmits":0,"backoff":0,"probes":0,"unacked":0'


def write_json_atomic(path: str | os.PathLike[str], document: dict[str, Any]) -> None:
    """Write `document` to `path` so that readers see the old file or the whole new one.

    TcpwatchError with one line when it cannot be written. The JSON is ASCII (escapes for
    the rest) so that undecodable bytes in process names survive as `\\udcXX`.
    """
    import tempfile  # here: a one-shot `snapshot` never writes a file

    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    temp = None
    try:
        fd, temp = tempfile.mkstemp(
            dir=directory, prefix=f".{os.path.basename(target)}.", suffix=".tmp"
        )
        # mkstemp makes the file 0600; give it the mode a plain open() would have.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(document, file, indent=2)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
        temp = None
    except OSError as error:
        raise TcpwatchError(f"cannot write {target}: {error.strerror or error}") from None
    finally:
        if temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(temp)


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, racing other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022

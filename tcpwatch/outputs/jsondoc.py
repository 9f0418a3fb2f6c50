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
import tempfile
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from tcpwatch.errors import TcpwatchError
from tcpwatch.model import (
    Connection,
    Endpoint,
    Family,
    ProcessInfo,
    Snapshot,
    TcpInfo,
    Timer,
    TimerName,
    Transition,
)
from tcpwatch.tcp.states import TcpState
from tcpwatch.tcp.tags import Tag
from tcpwatch.tcpinfo import parse_tcp_info

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


def timer_json(t: Timer | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {"name": t.name.value, "expires_ms": t.expires_ms, "retrans": t.retrans}


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
    return _connection_json(conn, with_history, {}, {})


# The contract's tcp_info fields straight from the kernel's bytes, in offset order:
# retransmits, probes, backoff, unacked, last_data_sent, last_data_recv, last_ack_recv,
# rtt, total_retrans, bytes_acked, bytes_received (offsets as in tcpwatch.tcpinfo).
# Building a whole TcpInfo per connection cost more than the rest of the document.
_TCP_INFO_FIELDS = struct.Struct("=2xBBB19xI16xI4xII8xI28xI16xQQ")


def _tcp_info_raw_json(raw: bytes) -> dict[str, Any] | None:
    """tcp_info_json(parse_tcp_info(raw)), without the TcpInfo, for kernels that send
    every contract field (older ones take the general path, with nulls)."""
    if len(raw) < _TCP_INFO_FIELDS.size:
        return tcp_info_json(parse_tcp_info(raw))
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
        "last_data_recv_ms": last_data_recv,
        "last_data_sent_ms": last_data_sent,
        "last_ack_recv_ms": last_ack_recv,
        "total_retrans": total_retrans,
    }


def _connection_json(
    conn: Connection,
    with_history: bool,
    processes: dict[int, dict[str, Any] | None],
    tag_lists: dict[frozenset[Tag], tuple[str, ...]],
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
    document: dict[str, Any] = {
        "id": conn.id,
        "family": record.family.value,
        "state": _CLOSED if conn.gone_at is not None else record.state.value,
        "local": endpoint_json(record.local),
        "remote": endpoint_json(record.remote),
        "recv_q": record.recv_q,
        "send_q": record.send_q,
        "timer": timer_json(record.timer),
        "uid": record.uid,
        "inode": record.inode,
        "process": process_doc,
    }
    if conn.former_process is not None:
        document["former_process"] = process_json(conn.former_process)
    document["tags"] = tag_names
    document["state_since"] = None if state_since is None else iso(state_since)
    document["history"] = [transition_json(t) for t in conn.history] if with_history else []
    document["tcp_info"] = None if raw is None else _tcp_info_raw_json(raw)
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
    items = [_connection_json(conn, with_history, processes, tag_lists) for conn in connections]
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
    timer_names = _TIMER_TEXT
    state_names = _STATE_NAMES
    ipv4 = Family.IPV4
    unpack_info = _TCP_INFO_FIELDS.unpack_from
    info_size = _TCP_INFO_FIELDS.size
    states: dict[str, int] = {}
    tag_counts: dict[str, int] = {}
    items = []
    append = items.append
    for conn in connections:
        record = conn.record
        state = _CLOSED if conn.gone_at is not None else state_names[record.state]
        states[state] = states.get(state, 0) + 1
        process = conn.process
        if process is None:
            process_text = "null"
        else:
            process_text = processes.get(id(process))
            if process_text is None:
                process_text = processes[id(process)] = _compact(process_json(process))
        if conn.former_process is not None:  # only the tracker knows one: not on the fast path
            process_text += f',"former_process":{_compact(process_json(conn.former_process))}'
        tags = conn.tags
        if tags:
            tag_entry = tag_lists.get(tags)
            if tag_entry is None:
                ordered = tuple(sorted(tag.value for tag in tags))
                tag_entry = tag_lists[tags] = (_compact(list(ordered)), ordered)
            tags_text = tag_entry[0]
            for name in tag_entry[1]:
                tag_counts[name] = tag_counts.get(name, 0) + 1
        else:
            tags_text = "[]"
        timer = record.timer
        if timer is None:
            timer_text = "null"
        else:
            timer_text = (
                f'{{"name":{timer_names[timer.name]},"expires_ms":{timer.expires_ms},'
                f'"retrans":{timer.retrans}}}'
            )
        state_since = conn.state_since
        if with_history:
            history_text = _compact([transition_json(t) for t in conn.history])
        else:
            history_text = "[]"
        local = record.local
        remote = record.remote
        head = (
            f'{{"id":{encode(conn.id)},"family":{_IPV4 if record.family is ipv4 else _IPV6},'
            f'"state":"{state}","local":{{"address":{encode(local.address)},'
            f'"port":{local.port}}},"remote":{{"address":{encode(remote.address)},'
            f'"port":{remote.port}}},"recv_q":{record.recv_q},'
            f'"send_q":{record.send_q},"timer":{timer_text},"uid":{record.uid},'
            f'"inode":{record.inode},"process":{process_text},"tags":{tags_text},'
            f'"state_since":{"null" if state_since is None else _quoted_iso(state_since)},'
            f'"history":{history_text},"tcp_info":'
        )
        raw = record.tcp_info_raw
        if raw is None:
            append(f"{head}null}}")
        elif len(raw) >= info_size:
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
            ) = unpack_info(raw)
            append(
                f'{head}{{"rtt_us":{rtt},"retransmits":{retransmits},'
                f'"backoff":{backoff},"probes":{probes},"unacked":{unacked},'
                f'"bytes_acked":{bytes_acked},"bytes_received":{bytes_received},'
                f'"last_data_recv_ms":{last_data_recv},'
                f'"last_data_sent_ms":{last_data_sent},'
                f'"last_ack_recv_ms":{last_ack_recv},"total_retrans":{total_retrans}}}}}'
            )
        else:
            append(f"{head}{_compact(_tcp_info_raw_json(raw))}}}")
    head = _compact(
        {
            "schema": SCHEMA,
            "taken_at": iso(snapshot.taken_at),
            "host": snapshot.host,
            "netns": snapshot.netns,
            "source": snapshot.source.value,
            "filter": filter_text,
            "summary": {"total": len(items), "states": states, "tags": tag_counts},
        }
    )
    return f'{head[:-1]},"connections":[{",".join(items)}]}}'


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


def write_json_atomic(path: str | os.PathLike[str], document: dict[str, Any]) -> None:
    """Write `document` to `path` so that readers see the old file or the whole new one.

    TcpwatchError with one line when it cannot be written. The JSON is ASCII (escapes for
    the rest) so that undecodable bytes in process names survive as `\\udcXX`.
    """
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

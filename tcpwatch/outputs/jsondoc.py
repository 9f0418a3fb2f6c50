"""The `tcpwatch.snapshot/1` JSON document and the JSON shapes of its parts.

Field names are a public contract (DESIGN.md): add fields freely, never rename one
without bumping the schema version.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from tcpwatch.errors import TcpwatchError
from tcpwatch.model import Connection, Endpoint, ProcessInfo, Snapshot, TcpInfo, Timer, Transition

SCHEMA = "tcpwatch.snapshot/1"


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
    return _connection_json(conn, with_history, {})


def _connection_json(
    conn: Connection, with_history: bool, processes: dict[int, dict[str, Any] | None]
) -> dict[str, Any]:
    """`processes` caches process_json per ProcessInfo: many sockets share one process."""
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
    return {
        "id": conn.id,
        "family": record.family.value,
        "state": conn.state.value,
        "local": endpoint_json(record.local),
        "remote": endpoint_json(record.remote),
        "recv_q": record.recv_q,
        "send_q": record.send_q,
        "timer": timer_json(record.timer),
        "uid": record.uid,
        "inode": record.inode,
        "process": process_doc,
        "tags": sorted(tag.value for tag in conn.tags) if conn.tags else [],
        "state_since": None if conn.state_since is None else iso(conn.state_since),
        "history": [transition_json(t) for t in conn.history] if with_history else [],
        "tcp_info": None if record.tcp_info_raw is None else tcp_info_json(record.tcp_info),
    }


def snapshot_document(
    snapshot: Snapshot,
    connections: Iterable[Connection],
    filter_text: str,
    *,
    with_history: bool,
) -> dict[str, Any]:
    """The whole document for `connections` (already filtered) seen in `snapshot`."""
    processes: dict[int, dict[str, Any] | None] = {}
    items = [_connection_json(conn, with_history, processes) for conn in connections]
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

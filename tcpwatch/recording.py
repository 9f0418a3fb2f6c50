"""Recordings: polls written to a file as they happen, read back as if live.

Format `tcpwatch.recording/1`: NDJSON (gzip-compressed when the name ends in `.gz`).
Line 1 is a header object; every further line is one poll. A poll line stores only what
changed since the previous poll, so a recording of 50k quiet sockets stays small:

    {"schema": "tcpwatch.recording/1", "host": "web-1", "netns": null, "source": "netlink",
     "started": "2026-11-22T10:00:00.000000Z", "fields": [...]}
    {"t": 1795341600.0, "m": 1234.5, "set": [[slot, cookie, family, state, local_address,
     local_port, remote_address, remote_port, recv_q, send_q, timer, uid, inode,
     tcp_info_b64], ...], "del": [slot, ...], "owners": {"inode": [pid, name, cmdline,
     user, uid]}, "gone_owners": [inode, ...], "notice": null, "owners_note": null}

A socket gets a small integer slot on first sight; `set` rows (re)state a socket whose
state, queues, timer kind, retransmit count, uid or inode changed, or whose timer was
re-armed; `del` lists slots that vanished. Timers count down between rewrites (the reader
counts them down too), and `tcp_info` is as of the last rewrite. `timer` is null or
`[name, expires_ms, retrans]`; `family` is 4 or 6; `state` is the kernel's number.

Each poll line is flushed and fsync'd before the next poll, so a crash loses at most the
poll being written. Reading a truncated, corrupt or foreign file raises `TcpwatchError`
naming the line.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import os
from collections.abc import Mapping
from typing import IO, Any

from tcpwatch.errors import TcpwatchError
from tcpwatch.model import (
    Endpoint,
    Family,
    ProcessInfo,
    Snapshot,
    SocketRecord,
    SourceKind,
    Timer,
    TimerName,
)
from tcpwatch.outputs.jsondoc import iso
from tcpwatch.tcp.states import TcpState

SCHEMA = "tcpwatch.recording/1"
FIELDS = (
    "slot",
    "cookie",
    "family",
    "state",
    "local_address",
    "local_port",
    "remote_address",
    "remote_port",
    "recv_q",
    "send_q",
    "timer",
    "uid",
    "inode",
    "tcp_info_b64",
)
# A timer whose expiry moved more than this against its countdown was re-armed.
_REARM_MS = 1000.0
_FAMILY_CODE = {Family.IPV4: 4, Family.IPV6: 6}
_FAMILY_BY_CODE = {4: Family.IPV4, 6: Family.IPV6}


def _open(path: str | os.PathLike[str], mode: str) -> IO[bytes]:
    if os.fspath(path).endswith(".gz"):
        return gzip.open(path, mode)  # type: ignore[return-value]
    return open(path, mode)


def _key(record: SocketRecord) -> object:
    if record.cookie is not None:
        return record.cookie
    return (*record.four_tuple, 0 if record.remote.port else record.inode)


def _same(record: SocketRecord, old: SocketRecord, elapsed_ms: float) -> bool:
    """Nothing a replay would miss changed: same state, queues, owner link, and a timer
    that only counted down."""
    if (
        record.state is not old.state
        or record.recv_q != old.recv_q
        or record.send_q != old.send_q
        or record.inode != old.inode
        or record.uid != old.uid
    ):
        return False
    timer, old_timer = record.timer, old.timer
    if timer is None or old_timer is None:
        return timer is old_timer
    return (
        timer.name is old_timer.name
        and timer.retrans == old_timer.retrans
        and abs(timer.expires_ms - old_timer.expires_ms + elapsed_ms) <= _REARM_MS
    )


def _row(slot: int, record: SocketRecord) -> list[Any]:
    timer = record.timer
    raw = record.tcp_info_raw
    return [
        slot,
        record.cookie,
        _FAMILY_CODE[record.family],
        record.state.kernel,
        record.local.address,
        record.local.port,
        record.remote.address,
        record.remote.port,
        record.recv_q,
        record.send_q,
        None if timer is None else [timer.name.value, timer.expires_ms, timer.retrans],
        record.uid,
        record.inode,
        None if raw is None else base64.b64encode(raw).decode("ascii"),
    ]


def _process_row(info: ProcessInfo) -> list[Any]:
    return [info.pid, info.name, list(info.cmdline), info.user, info.uid]


class RecordingWriter:
    """Appends polls to a new recording at `path` (replaced if it exists)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        try:
            self._file = _open(self.path, "wb")
        except OSError as error:
            raise TcpwatchError(f"cannot write recording {self.path}: {error.strerror}") from None
        self._slots: dict[object, int] = {}
        # slot -> (the record as last written, monotonic time of that poll)
        self._written: dict[int, tuple[SocketRecord, float]] = {}
        self._next_slot = 0
        self._owners: dict[int, ProcessInfo] = {}
        self._header_done = False
        self._notice: str | None = None
        self._owners_note: str | None = None

    def write(self, snapshot: Snapshot) -> None:
        """Append one poll; it is on disk (flushed and fsync'd) when this returns."""
        lines = []
        if not self._header_done:
            header = {
                "schema": SCHEMA,
                "host": snapshot.host,
                "netns": snapshot.netns,
                "source": snapshot.source.value,
                "started": iso(snapshot.taken_at),
                "fields": list(FIELDS),
            }
            lines.append(json.dumps(header, separators=(",", ":")))
            self._header_done = True
        lines.append(json.dumps(self._poll(snapshot), separators=(",", ":")))
        data = ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")
        try:
            self._file.write(data)
            self._file.flush()
            raw = getattr(self._file, "fileobj", None) or self._file
            raw.flush()
            os.fsync(raw.fileno())
        except OSError as error:
            raise TcpwatchError(f"cannot write recording {self.path}: {error.strerror}") from None

    def _poll(self, snapshot: Snapshot) -> dict[str, Any]:
        mono = snapshot.monotonic
        slots, written = self._slots, self._written
        rows: list[list[Any]] = []
        present: set[object] = set()
        for record in snapshot.sockets:
            key = _key(record)
            if key in present:
                continue
            present.add(key)
            slot = slots.get(key)
            if slot is None:
                slot = slots[key] = self._next_slot
                self._next_slot += 1
            else:
                old, at = written[slot]
                if _same(record, old, (mono - at) * 1000.0):
                    continue
            written[slot] = (record, mono)
            rows.append(_row(slot, record))
        gone = [key for key in slots.keys() - present]
        deleted = []
        for key in gone:
            slot = slots.pop(key)
            del written[slot]
            deleted.append(slot)
        owners = {
            str(inode): _process_row(info)
            for inode, info in snapshot.owners.items()
            if (known := self._owners.get(inode)) is not info and known != info
        }
        gone_owners = [inode for inode in self._owners if inode not in snapshot.owners]
        self._owners = dict(snapshot.owners)
        poll: dict[str, Any] = {
            "t": snapshot.taken_at,
            "m": snapshot.monotonic,
            "set": rows,
            "del": sorted(deleted),
            "owners": owners,
            "gone_owners": gone_owners,
        }
        if snapshot.notice != self._notice or snapshot.owners_note != self._owners_note:
            poll["notice"] = snapshot.notice
            poll["owners_note"] = snapshot.owners_note
            self._notice, self._owners_note = snapshot.notice, snapshot.owners_note
        return poll

    def close(self) -> None:
        try:
            self._file.close()
        except OSError as error:
            raise TcpwatchError(f"cannot write recording {self.path}: {error.strerror}") from None


class _Malformed(Exception):
    """A poll line whose JSON parses but does not fit the format."""


class ReplaySource:
    """Reads a recording back one poll at a time: `poll()` returns the next Snapshot, None
    at the end. As fast as the caller asks; each Snapshot carries its recorded times."""

    kind = SourceKind.REPLAY

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        try:
            self._file = _open(self.path, "rb")
        except OSError as error:
            raise TcpwatchError(f"cannot read recording {self.path}: {error.strerror}") from None
        self._line_no = 0
        self._records: dict[int, tuple[SocketRecord, float]] = {}
        self._owners: dict[int, ProcessInfo] = {}
        self._notice: str | None = None
        self._owners_note: str | None = None
        header = self._next_object()
        if header is None:
            raise self._error("empty file, not a tcpwatch recording")
        schema = header.get("schema")
        if not isinstance(schema, str) or not schema.startswith("tcpwatch.recording/"):
            raise self._error("not a tcpwatch recording (no tcpwatch.recording schema)")
        if schema != SCHEMA:
            raise self._error(f"unsupported recording format {schema!r} (this reads {SCHEMA})")
        host, netns = header.get("host"), header.get("netns")
        if not isinstance(host, str) or not (netns is None or isinstance(netns, str)):
            raise self._error("malformed header")
        self.host: str = host
        self.netns: str | None = netns
        self.recorded_source: str = str(header.get("source"))
        self.started: str = str(header.get("started"))

    def _error(self, message: str) -> TcpwatchError:
        return TcpwatchError(f"recording {self.path} line {self._line_no}: {message}")

    def _next_object(self) -> dict[str, Any] | None:
        try:
            line = self._file.readline()
        except EOFError:
            self._line_no += 1
            raise self._error("truncated (the compressed recording ends early)") from None
        except (OSError, gzip.BadGzipFile, ValueError) as error:
            self._line_no += 1
            raise self._error(f"unreadable ({error})") from None
        if not line:
            return None
        self._line_no += 1
        if not line.endswith(b"\n"):
            raise self._error("truncated (the recording ends in the middle of a line)")
        try:
            value = json.loads(line.decode("utf-8", "surrogateescape"))
        except ValueError:
            raise self._error("corrupt (not a JSON object)") from None
        if not isinstance(value, dict):
            raise self._error("corrupt (not a JSON object)")
        return value

    def poll(self) -> Snapshot | None:
        """The next recorded poll, None after the last one."""
        poll = self._next_object()
        if poll is None:
            return None
        try:
            return self._apply(poll)
        except (_Malformed, AttributeError, KeyError, TypeError, ValueError, IndexError) as error:
            detail = f": {error}" if isinstance(error, _Malformed) else ""
            raise self._error(f"malformed poll{detail}") from None

    def _apply(self, poll: Mapping[str, Any]) -> Snapshot:
        taken_at, mono = float(poll["t"]), float(poll["m"])
        records = self._records
        for slot in poll["del"]:
            if records.pop(slot, None) is None:
                raise _Malformed(f"unknown slot {slot}")
        for row in poll["set"]:
            records[row[0]] = (_record(row, taken_at), mono)
        for inode, info in poll["owners"].items():
            pid, name, cmdline, user, uid = info
            self._owners[int(inode)] = ProcessInfo(int(pid), str(name), tuple(cmdline), user, uid)
        for inode in poll["gone_owners"]:
            self._owners.pop(int(inode), None)
        if "notice" in poll:
            self._notice, self._owners_note = poll["notice"], poll["owners_note"]
        return Snapshot(
            taken_at=taken_at,
            monotonic=mono,
            host=self.host,
            netns=self.netns,
            source=SourceKind.REPLAY,
            sockets=tuple(
                _counted_down(record, mono - at, taken_at) for record, at in records.values()
            ),
            owners=dict(self._owners),
            owners_note=self._owners_note,
            notice=self._notice,
        )

    def close(self) -> None:
        self._file.close()


def _record(row: list[Any], dumped_at: float) -> SocketRecord:
    if len(row) != len(FIELDS):
        raise _Malformed(f"a socket row has {len(row)} fields, not {len(FIELDS)}")
    (
        _slot,
        cookie,
        family,
        state,
        local_address,
        local_port,
        remote_address,
        remote_port,
        recv_q,
        send_q,
        timer,
        uid,
        inode,
        info,
    ) = row
    if not isinstance(local_address, str) or not isinstance(remote_address, str):
        raise _Malformed("an address is not a string")
    try:
        raw = None if info is None else base64.b64decode(info, validate=True)
    except binascii.Error:
        raise _Malformed("tcp_info is not base64") from None
    return SocketRecord(
        cookie=None if cookie is None else int(cookie),
        family=_FAMILY_BY_CODE[family],
        state=TcpState.from_kernel(int(state)),
        local=Endpoint(local_address, int(local_port)),
        remote=Endpoint(remote_address, int(remote_port)),
        recv_q=int(recv_q),
        send_q=int(send_q),
        timer=None if timer is None else Timer(TimerName(timer[0]), int(timer[1]), int(timer[2])),
        uid=int(uid),
        inode=int(inode),
        tcp_info_raw=raw,
        dumped_at=dumped_at,
    )


def _counted_down(record: SocketRecord, elapsed: float, taken_at: float) -> SocketRecord:
    """The record as a later poll (at wall time `taken_at`) would show it: its timer run
    down by `elapsed` seconds."""
    timer = record.timer
    if timer is None or elapsed <= 0:
        return record
    expires = max(0, timer.expires_ms - round(elapsed * 1000))
    return SocketRecord(
        record.cookie,
        record.family,
        record.state,
        record.local,
        record.remote,
        record.recv_q,
        record.send_q,
        Timer(timer.name, expires, timer.retrans),
        record.uid,
        record.inode,
        record.tcp_info_raw,
        taken_at,
    )

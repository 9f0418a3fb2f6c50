"""Recordings: write -> replay round trip, and clear errors for bad files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tcpwatch.errors import TcpwatchError
from tcpwatch.model import ProcessInfo, SourceKind, Timer, TimerName
from tcpwatch.recording import SCHEMA, RecordingWriter, ReplaySource
from tcpwatch.tcp.states import TcpState
from tcpwatch.tracker import Tracker
from tests.test_tracker import LO, Pair, listener, snap, sock

S = TcpState
INFO = bytes(range(256)) + bytes(24)  # 280 bytes, like Linux 6.18


def _polls():
    """Four polls exercising new, changed, re-armed, gone, owners, notes, no-cookie sockets."""
    p = Pair()
    proc = ProcessInfo(pid=3, name="srv", cmdline=("srv",), user="root", uid=0)
    tw = Timer(TimerName.TIMEWAIT, 60000, 0)
    ka = Timer(TimerName.KEEPALIVE, 7200000, 0)
    proc_sock = sock(S.ESTABLISHED, ("::1", 5), ("::1", 6), inode=11)
    return [
        snap(
            0.0,
            listener(),
            p.s(S.ESTABLISHED, inode=5, timer=ka),
            p.c(S.ESTABLISHED),
            proc_sock,
            owners={5: proc},
        ),
        snap(
            0.5,
            listener(),
            p.s(S.CLOSE_WAIT, recv_q=1, inode=5, timer=Timer(TimerName.KEEPALIVE, 7199500, 0)),
            p.c(S.FIN_WAIT2),
            proc_sock,
            owners={5: proc},
        ),
        snap(1.0, listener(), p.c(S.TIME_WAIT, timer=tw), proc_sock, owners={}),
        snap(1.5, listener(), p.c(S.TIME_WAIT, timer=Timer(TimerName.TIMEWAIT, 59500, 0))),
    ]


def _with_info(snapshot):
    import dataclasses

    sockets = tuple(dataclasses.replace(r, tcp_info_raw=INFO) for r in snapshot.sockets)
    return dataclasses.replace(snapshot, sockets=sockets, notice="a notice")


def _write(path: Path, snapshots) -> None:
    writer = RecordingWriter(path)
    for snapshot in snapshots:
        writer.write(snapshot)
    writer.close()


def _read_all(path: Path):
    source = ReplaySource(path)
    out = []
    while (snapshot := source.poll()) is not None:
        out.append(snapshot)
    source.close()
    return out


@pytest.mark.parametrize("name", ["rec.ndjson", "rec.ndjson.gz"])
def test_round_trip(tmp_path: Path, name: str) -> None:
    original = [_with_info(s) for s in _polls()]
    path = tmp_path / name
    _write(path, original)
    replayed = _read_all(path)
    assert len(replayed) == len(original)
    for before, after in zip(original, replayed, strict=True):
        assert after.source is SourceKind.REPLAY
        assert (after.taken_at, after.monotonic, after.host, after.netns) == (
            before.taken_at,
            before.monotonic,
            before.host,
            before.netns,
        )
        assert sorted(after.sockets, key=repr) == sorted(before.sockets, key=repr)
        assert dict(after.owners) == dict(before.owners)
        assert after.notice == "a notice"
    # The same tracker story from the recording as from the live polls.
    live, again = Tracker(), Tracker()
    live_events = [(e.connection.id, e.path) for s in original for e in live.update(s).events]
    replay_events = [(e.connection.id, e.path) for s in replayed for e in again.update(s).events]
    assert live_events == replay_events


def test_quiet_sockets_are_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "rec.ndjson"
    tw = [Timer(TimerName.TIMEWAIT, 60000 - i * 200, 0) for i in range(5)]
    _write(
        path,
        [
            snap(i * 0.2, sock(S.TIME_WAIT, (LO, 1), (LO, 2), cookie=9, timer=tw[i]))
            for i in range(5)
        ],
    )
    lines = path.read_text().splitlines()
    assert json.loads(lines[0])["schema"] == SCHEMA
    assert [len(json.loads(line)["set"]) for line in lines[1:]] == [1, 0, 0, 0, 0]
    replayed = _read_all(path)
    assert [s.sockets[0].timer for s in replayed] == tw  # counted down on replay


def _error(path: Path) -> str:
    with pytest.raises(TcpwatchError) as caught:
        _read_all(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    return message


def test_truncated_recording_names_the_line_after_the_good_polls(tmp_path: Path) -> None:
    path = tmp_path / "rec.ndjson"
    _write(path, _polls())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 10])  # the last poll is cut mid-line
    source = ReplaySource(path)
    assert [source.poll() is not None for _ in range(3)] == [True, True, True]
    with pytest.raises(TcpwatchError, match=r"line 5: truncated"):
        source.poll()


def test_corrupt_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "rec.ndjson"
    _write(path, _polls())
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = b'{"t": 1, "m": \x00garbage\n'
    path.write_bytes(b"".join(lines))
    assert "line 3: corrupt" in _error(path)


def test_malformed_poll_is_named(tmp_path: Path) -> None:
    path = tmp_path / "rec.ndjson"
    _write(path, _polls())
    lines = path.read_text().splitlines()
    poll = json.loads(lines[1])
    poll["set"][0][3] = 99  # no such kernel state
    lines[1] = json.dumps(poll)
    path.write_text("\n".join(lines) + "\n")
    assert "line 2: malformed poll" in _error(path)
    del poll["set"]
    lines[1] = json.dumps(poll)
    path.write_text("\n".join(lines) + "\n")
    assert "line 2: malformed poll" in _error(path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "line 0: empty file"),
        (b"hello world\n", "line 1: corrupt"),
        (b'{"schema": "tcpwatch.snapshot/1"}\n', "line 1: not a tcpwatch recording"),
        (b'{"schema": "tcpwatch.recording/2"}\n', "line 1: unsupported recording format"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "line 1: corrupt"),
    ],
)
def test_foreign_files(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "foreign"
    path.write_bytes(content)
    assert expected in _error(path)


def test_gzip_cut_short(tmp_path: Path) -> None:
    path = tmp_path / "rec.ndjson.gz"
    _write(path, _polls())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    source = ReplaySource(path)
    with pytest.raises(TcpwatchError, match=r"line \d+: truncated"):
        while source.poll() is not None:
            pass


def test_missing_file_is_one_line_exit_1(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tcpwatch", "watch", "--replay", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "cannot read recording" in done.stderr


def test_writer_cannot_create_file(tmp_path: Path) -> None:
    with pytest.raises(TcpwatchError, match="cannot write recording"):
        RecordingWriter(tmp_path / "no" / "such" / "dir.ndjson")

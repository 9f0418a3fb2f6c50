"""`tcpwatch watch` and `tcpwatch record` as a user runs them: real processes, real sockets."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tcpwatch.errors import TcpwatchError
from tcpwatch.recording import RecordingWriter, ReplaySource
from tcpwatch.tcp.states import TcpState
from tcpwatch.tracker import Tracker
from tests.netns import private_netns, requires_root, run_scenario
from tests.test_tracker import Pair, listener, snap

S = TcpState
TCPWATCH = [sys.executable, "-m", "tcpwatch"]

SERVER = r"""
l = listener(port=7100)
report("ready")
while (line := command()):
    if line == "connect":
        c, a = pair(l)
        report("connected", port=c.getsockname()[1])
    elif line == "close":
        c.close(); a.close()
        report("closed")
"""


@pytest.fixture
def netns():
    with private_netns() as name:
        yield name


def _tcpwatch(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TCPWATCH, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def _read_line(stream, deadline: float) -> str:
    """One line from a pipe, waiting at most until `deadline` (monotonic)."""
    fd = stream.fileno()
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(0.0, left))
        if not ready:
            raise AssertionError(f"no complete line in time (got {data!r})")
        chunk = os.read(fd, 1)
        if not chunk:
            raise AssertionError(f"stream ended (got {data!r})")
        data += chunk
    return data.decode()


@requires_root
def test_count_stops_after_n_polls_and_ndjson_is_the_contract(netns: str) -> None:
    with run_scenario(netns, SERVER) as scenario:
        scenario.expect("ready")
        started = time.monotonic()
        done = _tcpwatch("watch", "--ndjson", "--netns", netns, "--count", "3", "--interval", "0.2")
        elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["to"] for e in events if e["local"]["port"] == 7100] == ["LISTEN"]
    assert all(e["schema"] == "tcpwatch.event/1" for e in events)
    # Three polls 0.2 s apart take at least 0.4 s; the process ends right after the third.
    assert 0.4 <= elapsed < 10


@requires_root
def test_duration_stops_and_human_lines_are_plain_in_a_pipe(netns: str) -> None:
    with run_scenario(netns, SERVER) as scenario:
        scenario.expect("ready")
        started = time.monotonic()
        done = _tcpwatch("watch", "--netns", netns, "--duration", "0.6", "--interval", "0.2")
        elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert 0.6 <= elapsed < 10
    assert "127.0.0.1:7100 -> 0.0.0.0:* LISTEN" in done.stdout
    assert "\x1b" not in done.stdout


@requires_root
def test_lines_are_flushed_live_and_ctrl_c_exits_0(netns: str) -> None:
    with run_scenario(netns, SERVER) as scenario:
        scenario.expect("ready")
        watch = subprocess.Popen(
            [*TCPWATCH, "watch", "--ndjson", "--netns", netns, "--interval", "0.1", "port:7100"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 15
            first = json.loads(_read_line(watch.stdout, deadline))
            assert first["to"] == "LISTEN"
            scenario.send("connect")
            port = scenario.expect("connected")["port"]
            seen = [json.loads(_read_line(watch.stdout, deadline)) for _ in range(2)]
            assert {e["kind"] for e in seen} == {"new"}
            assert {e["path"][0] for e in seen} <= {"SYN_SENT", "SYN_RECV"}
            assert port in {e["local"]["port"] for e in seen}
            scenario.send("close")
            scenario.expect("closed")
            closes = [json.loads(_read_line(watch.stdout, deadline)) for _ in range(2)]
            assert {e["to"] for e in closes} <= {"TIME_WAIT", "CLOSED", "FIN_WAIT2", "LAST_ACK"}
        finally:
            watch.send_signal(signal.SIGINT)
            out, err = watch.communicate(timeout=10)
    assert watch.returncode == 0, err
    assert err == b"" or b"Traceback" not in err
    for line in out.decode().splitlines():
        json.loads(line)  # every line written is complete


@requires_root
def test_a_pid_filter_follows_the_process_s_connections_through_their_close(netns: str) -> None:
    """After close() the client's socket in TIME_WAIT belongs to no process (inode 0); a
    `--pid` filter still shows it, through the owner the tracker saw before."""
    with run_scenario(netns, SERVER) as scenario:
        scenario.expect("ready")
        pid = str(scenario.pid)
        watch = subprocess.Popen(
            [*TCPWATCH, "watch", "--ndjson", "--netns", netns, "--interval", "0.1", "--pid", pid],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 15
            assert json.loads(_read_line(watch.stdout, deadline))["to"] == "LISTEN"
            scenario.send("connect")
            port = scenario.expect("connected")["port"]
            news = [json.loads(_read_line(watch.stdout, deadline)) for _ in range(2)]
            assert port in {e["local"]["port"] for e in news}
            scenario.send("close")
            scenario.expect("closed")
            client: dict = {}
            while client.get("to") != "TIME_WAIT":
                event = json.loads(_read_line(watch.stdout, deadline))
                if event["local"]["port"] == port:
                    client = event
        finally:
            watch.send_signal(signal.SIGINT)
            watch.communicate(timeout=10)
    assert client["process"] is None
    assert client["former_process"]["pid"] == scenario.pid


def test_replay_gives_the_live_events(tmp_path: Path) -> None:
    p = Pair()
    polls = [
        snap(0.0, listener(), p.s(S.ESTABLISHED), p.c(S.ESTABLISHED)),
        snap(0.2, listener(), p.s(S.CLOSE_WAIT), p.c(S.FIN_WAIT2)),
        snap(0.4, listener(), p.c(S.TIME_WAIT)),
    ]
    path = tmp_path / "rec.ndjson"
    writer = RecordingWriter(path)
    for snapshot in polls:
        writer.write(snapshot)
    writer.close()
    tracker = Tracker()
    expected = [
        (e.connection.id, list(s.value for s in e.path))
        for s in polls
        for e in tracker.update(s).events
    ]
    started = time.monotonic()
    done = _tcpwatch("watch", "--ndjson", "--replay", str(path), "--interval", "5")
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 5  # as fast as possible, not at the recorded pace
    got = [(e["id"], e["path"]) for e in map(json.loads, done.stdout.splitlines())]
    assert got == expected
    counted = _tcpwatch("watch", "--ndjson", "--replay", str(path), "--count", "1")
    assert len(counted.stdout.splitlines()) == 3  # the first poll's three new connections
    filtered = _tcpwatch("watch", "--ndjson", "--replay", str(path), "state:close-wait")
    # The server's events into and out of CLOSE_WAIT, nothing else.
    assert [e["id"] for e in map(json.loads, filtered.stdout.splitlines())] == [p.sid, p.sid]


def test_bad_filter_exits_2_with_one_line(tmp_path: Path) -> None:
    done = _tcpwatch("watch", "--replay", str(tmp_path / "x"), "bogus:1")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "bogus" in done.stderr


@requires_root
def test_record_then_replay(netns: str, tmp_path: Path) -> None:
    path = tmp_path / "rec.ndjson"
    with run_scenario(netns, SERVER) as scenario:
        scenario.expect("ready")
        scenario.send("connect")
        scenario.expect("connected")
        done = _tcpwatch(
            "record", str(path), "port:7100", "--netns", netns, "--count", "3", "--interval", "0.1"
        )
    assert done.returncode == 0, done.stderr
    source = ReplaySource(path)
    polls = []
    while (snapshot := source.poll()) is not None:
        polls.append(snapshot)
    assert len(polls) == 3
    for snapshot in polls:
        ports = {(r.local.port, r.remote.port) for r in snapshot.sockets}
        assert all(7100 in pair for pair in ports)
        assert len(snapshot.sockets) == 3  # the listener and both ends
    replay = _tcpwatch("watch", "--ndjson", "--replay", str(path))
    assert len(replay.stdout.splitlines()) == 3


@pytest.mark.parametrize("command", ["watch", "record"])
def test_missing_netns_is_one_line(command: str, tmp_path: Path) -> None:
    args = [command, *([str(tmp_path / "r")] if command == "record" else [])]
    done = _tcpwatch(*args, "--netns", "tcpwatch-no-such-ns", "--count", "1")
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_killed_recorder_loses_at_most_the_last_poll(tmp_path: Path) -> None:
    path = tmp_path / "rec.ndjson"
    recorder = subprocess.Popen(
        [*TCPWATCH, "record", str(path), "--interval", "0.05"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while not (path.exists() and path.read_bytes().count(b"\n") >= 4):
            assert recorder.poll() is None, recorder.stderr.read() if recorder.stderr else ""
            assert time.monotonic() < deadline, "the recorder wrote nothing"
            time.sleep(0.02)
    finally:
        recorder.kill()
        recorder.wait(timeout=10)
        if recorder.stderr is not None:
            recorder.stderr.close()
    complete = path.read_bytes().count(b"\n") - 1  # polls on disk, the header aside
    source = ReplaySource(path)
    polls = 0
    try:
        while source.poll() is not None:
            polls += 1
    except TcpwatchError as error:
        assert f"line {complete + 2}: truncated" in str(error)
    assert polls == complete >= 3

"""`tcpwatch snapshot` on real sockets in a private namespace, checked against `ss`."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcpwatch.cli import main
from tcpwatch.model import (
    Connection,
    ProcessInfo,
    SourceKind,
    Timer,
    TimerName,
)
from tcpwatch.outputs.table import duration_text, render_table
from tcpwatch.sources import netlink
from tcpwatch.sources.base import SourceError
from tcpwatch.sources.poller import open_poller
from tcpwatch.tcp.states import TcpState
from tcpwatch.textsafe import cell_width
from tests.netns import (
    ZOO_SCENARIO,
    Scenario,
    SsSocket,
    add_silent_route,
    private_netns,
    requires_root,
    run_scenario,
    ss,
    wait_until,
)
from tests.records import CONNECTION_KEYS, DOCUMENT_KEYS, PROCESS_KEYS, TCP_INFO_KEYS, record

ROOT = Path(__file__).resolve().parents[1]

STATES = {
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
}
TAGS = {"listener", "half_open", "half_closed", "lingering", "orphan", "unaccepted"}

# The zoo plus a process whose name is an escape sequence wrapped in Rich markup.
HOSTILE_NAME = "[bold]x\x1b[2J"
HOSTILE = r"""
import ctypes
ctypes.CDLL(None).prctl(15, ctypes.c_char_p(b"[bold]x\x1b[2J"), 0, 0, 0)  # PR_SET_NAME
lh = listener(socket.AF_INET, "127.0.0.1", 7100)
report("ready", pid=os.getpid())
command()
"""


def tcpwatch(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "tcpwatch", *args],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def zoo() -> Iterator[tuple[str, Scenario, Scenario]]:
    """One namespace with sockets in every state a test can hold still, and a hostile name."""
    with private_netns() as ns:
        add_silent_route(ns)
        with run_scenario(ns, ZOO_SCENARIO) as sockets, run_scenario(ns, HOSTILE) as hostile:
            sockets.expect("ready")
            hostile.expect("ready")
            # Wait until the handshakes and closes the scenario started have settled.
            wait_until(
                lambda: (
                    {"SYN_SENT", "SYN_RECV", "TIME_WAIT", "FIN_WAIT1", "LAST_ACK"}
                    <= {row.state for row in ss(ns)}
                ),
                what="the zoo's states",
            )
            yield ns, sockets, hostile


def _key(local: tuple[str, int], remote: tuple[str, int]) -> tuple[str, int, str, int]:
    return (*local, *remote)


@requires_root
def test_json_matches_contract_and_ss(zoo: tuple[str, Scenario, Scenario]) -> None:
    ns, _, _ = zoo
    done = tcpwatch("snapshot", "--json", "--netns", ns)
    after = ss(ns, "-tanHoep")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert set(document) == DOCUMENT_KEYS
    assert document["schema"] == "tcpwatch.snapshot/1"
    assert document["netns"] == ns
    assert document["source"] == "netlink"
    assert document["filter"] == ""
    assert document["taken_at"].endswith("Z")
    connections = document["connections"]
    assert document["summary"]["total"] == len(connections)
    states: dict[str, int] = {}
    for item in connections:
        states[item["state"]] = states.get(item["state"], 0) + 1
    assert document["summary"]["states"] == states

    by_tuple: dict[tuple[str, int, str, int], dict] = {}
    for item in connections:
        assert set(item) == CONNECTION_KEYS
        assert item["state"] in STATES
        assert item["family"] in ("ipv4", "ipv6")
        assert item["id"].startswith("0x")
        int(item["id"], 16)
        assert set(item["tags"]) <= TAGS
        assert item["history"] == []
        if item["process"] is not None:
            assert set(item["process"]) == PROCESS_KEYS
        if item["tcp_info"] is not None:
            assert set(item["tcp_info"]) >= TCP_INFO_KEYS
        if item["timer"] is not None:
            assert item["timer"]["name"] in ("retransmit", "keepalive", "timewait", "persist")
        key = _key(
            (item["local"]["address"], item["local"]["port"]),
            (item["remote"]["address"], item["remote"]["port"]),
        )
        by_tuple[key] = item

    # Socket by socket against ss taken right after (the zoo holds still).
    rows: dict[tuple[str, int, str, int], SsSocket] = {
        _key(row.local, row.remote): row for row in after
    }
    assert set(by_tuple) == set(rows)
    for key, row in rows.items():
        item = by_tuple[key]
        assert item["state"] == row.state, key
        assert item["inode"] == row.inode, key
        assert item["uid"] == row.uid, key
        if row.cookie is not None:
            assert int(item["id"], 16) == row.cookie, key
        if row.state != "SYN_SENT":
            assert (item["timer"] or {}).get("name") == row.timer, key
        if row.pids:
            assert item["process"]["pid"] == min(row.pids), key
        else:
            assert item["process"] is None, key
        if row.inode == 0:
            assert item["process"] is None, key
        if row.state == "TIME_WAIT":
            assert "lingering" in item["tags"] or item["tags"] == [], key
        if row.state == "LISTEN":
            assert item["recv_q"] == row.recv_q and item["send_q"] == row.send_q, key
        # Not accepted yet: no file, so inode 0, in a state only close() would end.
        waiting = row.inode == 0 and row.state in ("ESTABLISHED", "CLOSE_WAIT")
        assert ("unaccepted" in item["tags"]) == waiting, key
    # Each listener's accept queue (its Recv-Q, as the kernel counts it) is exactly the
    # connections tagged unaccepted on its port (the zoo's listeners are one per port).
    for row in after:
        if row.state == "LISTEN":
            queued = [
                item
                for item in connections
                if item["local"]["port"] == row.local[1] and "unaccepted" in item["tags"]
            ]
            assert len(queued) == row.recv_q, row
    assert any("unaccepted" in item["tags"] for item in connections)  # the zoo's port 7006
    assert {"LISTEN", "ESTABLISHED", "TIME_WAIT", "CLOSE_WAIT", "FIN_WAIT2"} <= set(states)


@requires_root
def test_filter_in_document(zoo: tuple[str, Scenario, Scenario]) -> None:
    ns, _, _ = zoo
    done = tcpwatch("snapshot", "--json", "--netns", ns, "time-wait", "--port", "7002")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["filter"] == "time-wait port:7002"
    connections = document["connections"]
    assert connections
    assert all(item["state"] == "TIME_WAIT" for item in connections)
    assert document["summary"]["states"] == {"TIME_WAIT": len(connections)}
    assert all(item["process"] is None for item in connections)


@requires_root
def test_table(zoo: tuple[str, Scenario, Scenario]) -> None:
    ns, sockets, _ = zoo
    done = tcpwatch("snapshot", "--netns", ns, "port:7004,7002,7010")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    header = lines[0].split("  ")
    assert [h.strip() for h in header if h.strip()] == [
        "State",
        "Recv-Q",
        "Send-Q",
        "Local Address:Port",
        "Peer Address:Port",
        "Timer",
        "Process",
        "Tags",
    ]
    body = [line.split() for line in lines[1:]]
    listen6 = next(row for row in body if row[3] == "[::1]:7004")
    assert listen6[0] == "LISTEN"
    assert listen6[4] == "[::]:*"
    assert listen6[6].endswith(f"/{sockets.pid}")
    time_wait = [row for row in body if row[0] == "TIME_WAIT"]
    assert time_wait
    assert all(row[5].startswith("timewait") and row[6] == "-" for row in time_wait)
    syn_sent = next(row for row in body if row[0] == "SYN_SENT")
    assert syn_sent[4] == "10.77.0.2:7010"
    assert syn_sent[5].startswith("retransmit")
    # Columns are aligned: every Process cell starts at the header's column.
    column = lines[0].index("Process")
    for line in lines[1:]:
        assert line[column - 2 : column] == "  " and line[column] != " ", line


@requires_root
def test_hostile_process_name_is_shown_literally(zoo: tuple[str, Scenario, Scenario]) -> None:
    ns, _, hostile = zoo
    done = tcpwatch("snapshot", "--netns", ns, "port:7100")
    assert done.returncode == 0, done.stderr
    assert b"\x1b" not in done.stdout
    assert all(byte >= 0x20 or byte == 0x0A for byte in done.stdout)
    text = done.stdout.decode()
    assert f"[bold]x\\x1b[2J/{hostile.pid}" in text
    as_json = json.loads(tcpwatch("snapshot", "--json", "--netns", ns, "port:7100").stdout)
    listener = next(item for item in as_json["connections"] if item["state"] == "LISTEN")
    assert listener["process"]["name"] == HOSTILE_NAME  # data stays data in JSON


@requires_root
def test_proc_source(zoo: tuple[str, Scenario, Scenario]) -> None:
    ns, sockets, _ = zoo
    done = tcpwatch("snapshot", "--json", "--source", "proc", "--netns", ns, "state:listen")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["source"] == "proc"
    ports = {item["local"]["port"] for item in document["connections"]}
    assert {7001, 7002, 7003, 7004, 7005, 7006, 7007, 7008, 7009, 7100} <= ports
    owned = [item for item in document["connections"] if item["local"]["port"] == 7001]
    assert owned[0]["process"]["pid"] == sockets.pid


MANY = r"""
l = listener(socket.AF_INET, "127.0.0.1", 7200, backlog=1024)
for _ in range(600):
    pair(l)
report("ready")
command()
"""


@requires_root
def test_closed_pipe_is_quiet() -> None:
    """`tcpwatch snapshot | head -1` on a long table: no traceback, no error."""
    with private_netns() as ns, run_scenario(ns, MANY) as many:
        many.expect("ready")
        done = subprocess.run(
            f"{sys.executable} -m tcpwatch snapshot --netns {ns} | head -1",
            shell=True,
            cwd=ROOT,
            capture_output=True,
            timeout=60,
        )
    assert done.stdout.decode().startswith("State")
    assert done.stderr == b"", done.stderr


@requires_root
def test_poller_snapshot(zoo: tuple[str, Scenario, Scenario]) -> None:
    ns, sockets, _ = zoo
    poller = open_poller("auto", ns)
    try:
        first = poller.poll()
        second = poller.poll()
    finally:
        poller.close()
    assert first.source is SourceKind.NETLINK
    assert first.netns == ns
    assert first.host == socket.gethostname()
    assert first.notice is None
    assert first.owners_note is None
    assert second.monotonic > first.monotonic
    assert abs(first.taken_at - time.time()) < 60
    inodes = {record.inode for record in first.sockets} - {0}
    assert set(first.owners) <= inodes
    assert {info.pid for info in first.owners.values()} >= {sockets.pid}
    assert set(second.owners) == {r.inode for r in second.sockets} - {0} - _unowned(ns)


def _unowned(ns: str) -> set[int]:
    return {row.inode for row in ss(ns, "-tanHoep") if row.inode and not row.pids}


@requires_root
def test_auto_falls_back_to_proc_with_a_notice(
    zoo: tuple[str, Scenario, Scenario],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Where sock_diag is missing (a kernel without tcp_diag, some sandboxes), /proc is used
    and the user is told what is missing. The kernel here has sock_diag, so its absence is
    simulated at the one place tcpwatch opens it."""
    ns, _, _ = zoo

    class NoSockDiag:
        def __init__(self, netns: str | None = None, **_options: object) -> None:
            raise SourceError("netlink sock_diag is not available: Protocol not supported")

    monkeypatch.setattr(netlink, "NetlinkSource", NoSockDiag)
    poller = open_poller("auto", ns)
    try:
        snapshot = poller.poll()
    finally:
        poller.close()
    assert snapshot.source is SourceKind.PROC
    assert snapshot.notice == (
        "netlink sock_diag unavailable (Protocol not supported): "
        "reading /proc/net/tcp; no socket cookies or tcp_info"
    )
    assert any(record.state is TcpState.LISTEN for record in snapshot.sockets)
    with pytest.raises(SourceError):
        open_poller("netlink", ns)

    assert main(["snapshot", "--netns", ns, "port:7001"]) == 0
    out, err = capsys.readouterr()
    assert err == f"tcpwatch: {snapshot.notice}\n"
    assert "0.0.0.0:7001" in out


def _conn(name: str, pid: int, local: str, inode: int = 7) -> Connection:
    timer = Timer(TimerName.RETRANSMIT, 200, 3)
    socket = record(
        TcpState.ESTABLISHED, (local, 80), (local, 0), send_q=12345, timer=timer, inode=inode
    )
    process = ProcessInfo(pid, name, (name,), "root", 0) if name else None
    return Connection("0x1", socket, process, 0.0, None, (), frozenset())


def test_table_cells_and_alignment() -> None:
    lines = render_table(
        [
            _conn("进程名", 1, "10.0.0.1"),
            _conn("a\tb\x9b", 22, "fe80::1"),
            _conn("", 0, "10.0.0.2", inode=0),
            _conn("", 0, "10.0.0.3"),
        ],
        owners_incomplete=True,
    ).splitlines()
    assert len(lines) == 5
    rows = {row[3]: row for row in (line.split() for line in lines[1:])}
    assert rows["10.0.0.1:80"][6] == "进程名/1"
    assert rows["[fe80::1]:80"][6] == "a\\x09b\\x9b/22"
    assert rows["10.0.0.2:80"][6] == "-"  # inode 0: no process can hold it
    assert rows["10.0.0.3:80"][6] == "?"  # owner hidden from us
    assert rows["[fe80::1]:80"][4] == "[fe80::1]:*"
    assert rows["10.0.0.1:80"][5] == "retransmit,200ms,3"
    # Every Tags cell starts in the same terminal column, wide characters counted twice.
    columns = {cell_width(line[: line.rindex(" -")]) for line in lines[1:]}
    assert len(columns) == 1
    assert all(not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in line) for line in lines)


@pytest.mark.parametrize(
    ("ms", "text"),
    [(0, "0ms"), (999, "999ms"), (59_999, "59s"), (60_000, "1m00s"), (7_199_000, "1h59m")],
)
def test_duration_text(ms: int, text: str) -> None:
    assert duration_text(ms) == text

"""The snapshot document's shape (DESIGN.md's JSON contract) and atomic writes."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from tcpwatch.errors import TcpwatchError
from tcpwatch.model import (
    Connection,
    Endpoint,
    Family,
    ProcessInfo,
    Snapshot,
    SocketRecord,
    SourceKind,
    Timer,
    TimerName,
    Transition,
)
from tcpwatch.outputs.jsondoc import (
    connection_json,
    first_view_json_text,
    iso,
    snapshot_document,
    snapshot_json_text,
    write_first_view_json,
    write_json_atomic,
)
from tcpwatch.tcp.states import TcpState
from tcpwatch.tcp.tags import DEFAULT_THRESHOLDS, Tag, TagThresholds
from tcpwatch.tracker import first_view
from tests.records import CONNECTION_KEYS, DOCUMENT_KEYS, TCP_INFO_KEYS, record


def _record(state: TcpState, inode: int, timer: Timer | None = None) -> SocketRecord:
    remote = ("127.0.0.1", 51234 if state is not TcpState.LISTEN else 0)
    return record(state, remote=remote, cookie=0x1A2B, recv_q=1, timer=timer, uid=1000, inode=inode)


JAVA = ProcessInfo(pid=4242, name="java", cmdline=("java", "-jar", "app.jar"), user="app", uid=1000)
T0 = 1_795_341_600.0  # 2026-11-22T10:00:00Z


def _connections() -> list[Connection]:
    closing = Connection(
        id="0x1a2b",
        record=_record(TcpState.CLOSE_WAIT, 123456, Timer(TimerName.KEEPALIVE, 7199000, 0)),
        process=JAVA,
        first_seen=T0 - 30,
        state_since=T0 - 20,
        history=(Transition(T0 - 20, TcpState.ESTABLISHED, TcpState.CLOSE_WAIT, False),),
        tags=frozenset({Tag.HALF_CLOSED}),
    )
    listening = Connection(
        id="0x1a2c",
        record=_record(TcpState.LISTEN, 123455),
        process=None,
        first_seen=T0,
        state_since=None,
        history=(),
        tags=frozenset({Tag.LISTENER}),
    )
    return [listening, closing]


def _snapshot() -> Snapshot:
    return Snapshot(
        taken_at=T0 + 0.123456,
        monotonic=1.0,
        host="web-1",
        netns=None,
        source=SourceKind.NETLINK,
        sockets=(),
        owners={},
    )


def test_iso() -> None:
    assert iso(T0 + 0.123456) == "2026-11-22T10:00:00.123456Z"
    assert iso(0) == "1970-01-01T00:00:00.000000Z"


def test_snapshot_document_fields_exactly() -> None:
    document = snapshot_document(_snapshot(), _connections(), "port:8080", with_history=True)
    assert set(document) == DOCUMENT_KEYS
    assert document["schema"] == "tcpwatch.snapshot/1"
    assert document["taken_at"] == "2026-11-22T10:00:00.123456Z"
    assert document["host"] == "web-1"
    assert document["netns"] is None
    assert document["source"] == "netlink"
    assert document["filter"] == "port:8080"
    assert document["summary"] == {
        "total": 2,
        "states": {"LISTEN": 1, "CLOSE_WAIT": 1},
        "tags": {"listener": 1, "half_closed": 1},
    }
    listening, closing = document["connections"]
    for item in (listening, closing):
        assert set(item) == CONNECTION_KEYS
    assert closing == {
        "id": "0x1a2b",
        "family": "ipv4",
        "state": "CLOSE_WAIT",
        "local": {"address": "127.0.0.1", "port": 8080},
        "remote": {"address": "127.0.0.1", "port": 51234},
        "recv_q": 1,
        "send_q": 0,
        "timer": {"name": "keepalive", "expires_ms": 7199000, "retrans": 0},
        "uid": 1000,
        "inode": 123456,
        "process": {
            "pid": 4242,
            "name": "java",
            "cmdline": ["java", "-jar", "app.jar"],
            "user": "app",
        },
        "tags": ["half_closed"],
        "state_since": "2026-11-22T09:59:40.000000Z",
        "history": [
            {
                "at": "2026-11-22T09:59:40.000000Z",
                "from": "ESTABLISHED",
                "to": "CLOSE_WAIT",
                "inferred": False,
            }
        ],
        "tcp_info": None,
    }
    assert listening["timer"] is None
    assert listening["process"] is None
    assert listening["state_since"] is None
    assert listening["remote"] == {"address": "127.0.0.1", "port": 0}
    json.dumps(document)  # serialisable as is


def test_former_owner_only_when_there_is_one() -> None:
    """`process` is the current owner; a socket nobody holds may name the one before."""
    time_wait = Connection(
        id="0x1a2d",
        record=_record(TcpState.TIME_WAIT, 0, Timer(TimerName.TIMEWAIT, 59000, 0)),
        process=None,
        first_seen=T0 - 30,
        state_since=T0 - 1,
        history=(),
        tags=frozenset(),
        former_process=JAVA,
    )
    document = connection_json(time_wait, with_history=False)
    assert set(document) == CONNECTION_KEYS | {"former_process"}
    assert document["process"] is None
    assert document["former_process"] == {
        "pid": 4242,
        "name": "java",
        "cmdline": ["java", "-jar", "app.jar"],
        "user": "app",
    }
    listed = list(document)
    assert listed.index("former_process") == listed.index("process") + 1
    for conn in _connections():
        assert "former_process" not in connection_json(conn, with_history=False)


def test_history_only_when_asked() -> None:
    closing = _connections()[1]
    assert connection_json(closing, with_history=False)["history"] == []
    document = snapshot_document(_snapshot(), [closing], "", with_history=False)
    assert document["connections"][0]["history"] == []


def test_gone_connection_is_closed() -> None:
    closing = _connections()[1]
    gone = Connection(
        id=closing.id,
        record=closing.record,
        process=closing.process,
        first_seen=closing.first_seen,
        state_since=T0,
        history=(),
        tags=frozenset(),
        gone_at=T0,
    )
    assert connection_json(gone, with_history=False)["state"] == "CLOSED"


def test_tcp_info_fields(tmp_path: Path) -> None:
    """tcp_info from a real socket carries the contract's fields."""
    import socket

    from tcpwatch.model import TcpInfo
    from tcpwatch.outputs.jsondoc import tcp_info_json
    from tcpwatch.tcpinfo import parse_tcp_info

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            raw = client.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 512)
    info = parse_tcp_info(raw)
    assert isinstance(info, TcpInfo)
    document = tcp_info_json(info)
    assert document is not None
    assert set(document) >= TCP_INFO_KEYS
    assert all(isinstance(document[key], int) for key in TCP_INFO_KEYS)
    assert tcp_info_json(None) is None


def _varied_connections() -> list[Connection]:
    """The fixtures plus what the direct writer treats specially: IPv6, a /proc id, a gone
    connection, odd process text, tcp_info of every length, tags shared and combined."""
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            raw = client.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 512)
    odd = ProcessInfo(pid=7, name='we"ird\\ \x1b[31m 进程\udcff', cmdline=("a\nb", ""), user=None)
    base = _connections()
    out = list(base)
    for n, size in enumerate((None, 104, 120, 135, 136, 200, len(raw))):
        record = SocketRecord(
            cookie=None,
            family=Family.IPV6 if n % 2 else Family.IPV4,
            state=TcpState.FIN_WAIT2 if n % 3 else TcpState.ESTABLISHED,
            local=Endpoint("::1" if n % 2 else "10.0.0.1", 40000 + n),
            remote=Endpoint("::ffff:10.0.0.2" if n % 2 else "10.0.0.2", 443),
            recv_q=n,
            send_q=2**40 + n,
            timer=Timer(TimerName.RETRANSMIT if n % 2 else TimerName.PERSIST, n * 200, n),
            uid=n,
            inode=0 if n == 3 else 900 + n,
            tcp_info_raw=None if size is None else (raw * 2)[:size],
            dumped_at=None if n % 2 else T0 - n,  # some reused since earlier dumps
        )
        out.append(
            Connection(
                id=f"10.0.0.1:{40000 + n}-10.0.0.2:443~{n}",
                record=record,
                process=odd if n % 2 else JAVA,
                first_seen=T0 + n,
                state_since=None if n % 3 == 0 else T0 + n / 7,
                history=base[1].history * n,
                tags=frozenset(list(Tag)[: n % 4]),
                gone_at=T0 + n if n == 5 else None,
                former_process=odd if n == 4 else None,
            )
        )
    return out


@pytest.mark.parametrize("with_history", [False, True])
def test_snapshot_json_text_is_the_compact_document(with_history: bool) -> None:
    """The direct writer produces exactly json.dumps of the document, compact."""
    connections = _varied_connections()
    snapshot = Snapshot(
        taken_at=T0,
        monotonic=1.0,
        host="hôte",
        netns='ns"1',
        source=SourceKind.PROC,
        sockets=(),
        owners={},
    )
    for conns, filter_text in ((connections, 'state:established "x"'), ([], "")):
        expected = json.dumps(
            snapshot_document(snapshot, conns, filter_text, with_history=with_history),
            separators=(",", ":"),
        )
        text = snapshot_json_text(snapshot, conns, filter_text, with_history=with_history)
        assert text == expected


def test_first_view_json_text_is_the_compact_first_view_document() -> None:
    """The records path writes what the Connection path writes for first_view's
    connections: ids (cookies, 4-tuples, a reused 4-tuple), owners, tags, tcp_info; and
    one connection for a socket a dump listed twice (the fixtures share a cookie)."""
    records = [conn.record for conn in _varied_connections()]
    records += [records[-1], records[-2], records[-1]]  # reused cookie-less 4-tuples
    assert records[0].cookie == records[1].cookie
    owners = {123456: JAVA, 904: ProcessInfo(7, 'we"ird 进程\udcff', ("a\nb",), None)}
    for thresholds in (DEFAULT_THRESHOLDS, TagThresholds(dead_retransmits=0, dead_probes=0)):
        for sockets in (tuple(records[1:]), tuple(records), ()):
            snapshot = Snapshot(
                taken_at=T0,
                monotonic=1.0,
                host="hôte",
                netns=None,
                source=SourceKind.NETLINK,
                sockets=sockets,
                owners=owners,
            )
            connections = first_view(snapshot, thresholds).values()
            expected = json.dumps(
                snapshot_document(snapshot, connections, "", with_history=False),
                separators=(",", ":"),
            )
            assert first_view_json_text(snapshot, thresholds) == expected


def _many_sockets_snapshot(count: int) -> Snapshot:
    """`count` sockets with distinct cookies, varied as the fixtures are."""
    records = [conn.record for conn in _varied_connections()]
    sockets = tuple(dataclasses.replace(records[n % len(records)], cookie=n) for n in range(count))
    owners = {123456: JAVA, 904: ProcessInfo(7, 'we"ird 进程\udcff', ("a\nb",), None)}
    return Snapshot(
        taken_at=T0,
        monotonic=1.0,
        host="hôte",
        netns="ns",
        source=SourceKind.NETLINK,
        sockets=sockets,
        owners=owners,
    )


@pytest.mark.parametrize("count", [0, 10, 7001])
def test_write_first_view_json_writes_the_text(count: int, tmp_path: Path) -> None:
    """The same text, whether written whole or in two halves by two processes (at
    7001 sockets a child writes the second half)."""
    snapshot = _many_sockets_snapshot(count)
    with open(tmp_path / "out.json", "w+b") as out:
        write_first_view_json(snapshot, out.fileno())
        out.seek(0)
        text = out.read().decode()
    assert text == first_view_json_text(snapshot) + "\n"
    assert json.loads(text)["summary"]["total"] == count


def test_write_first_view_json_reader_gone() -> None:
    """A reader that has left is a BrokenPipeError, and the child is not left behind."""
    snapshot = _many_sockets_snapshot(7001)
    children = _children()
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        with pytest.raises(BrokenPipeError):
            write_first_view_json(snapshot, write_end)
    finally:
        os.close(write_end)
    assert _children() == children


def _children() -> set[str]:
    """This process's child processes (alive or not yet reaped)."""
    return {
        pid
        for task in Path("/proc/self/task").iterdir()
        for pid in (task / "children").read_text().split()
    }


def test_write_json_atomic(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    write_json_atomic(target, {"a": "进程\udcff"})
    assert json.loads(target.read_text()) == {"a": "进程\udcff"}
    assert os.listdir(tmp_path) == ["out.json"]  # no temp file left behind
    umask = os.umask(0o027)
    try:
        write_json_atomic(tmp_path / "new.json", {})
    finally:
        os.umask(umask)
    assert (tmp_path / "new.json").stat().st_mode & 0o777 == 0o640


def test_write_json_atomic_failure_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(TcpwatchError) as caught:
        write_json_atomic(tmp_path / "missing" / "out.json", {})
    assert "missing/out.json" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_write_json_atomic_never_leaves_half_a_file(tmp_path: Path) -> None:
    """An unserialisable document fails before the target is touched."""
    target = tmp_path / "out.json"
    target.write_text('{"complete": true}')
    with pytest.raises(TypeError):
        write_json_atomic(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"complete": True}
    assert os.listdir(tmp_path) == ["out.json"]


def test_tcp_info_ages_count_up_to_the_document_time() -> None:
    """A record reused since an earlier dump shows the times since the last data and ACK
    as of the document, in both writers."""
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            raw = client.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 512)
    fresh = dataclasses.replace(_record(TcpState.ESTABLISHED, 7), tcp_info_raw=raw)
    old = dataclasses.replace(fresh, dumped_at=T0 - 3.0)
    snapshot = dataclasses.replace(_snapshot(), taken_at=T0)
    infos = []
    for socket_record in (fresh, old):
        conn = Connection(
            id="0x1",
            record=socket_record,
            process=None,
            first_seen=T0,
            state_since=None,
            history=(),
            tags=frozenset(),
        )
        document = snapshot_document(snapshot, [conn], "", with_history=False)
        text = snapshot_json_text(snapshot, [conn], "", with_history=False)
        assert json.loads(text) == document
        infos.append(document["connections"][0]["tcp_info"])
    for key in ("last_data_recv_ms", "last_data_sent_ms", "last_ack_recv_ms"):
        assert infos[1][key] == infos[0][key] + 3000
    assert infos[1]["bytes_acked"] == infos[0]["bytes_acked"]


def test_a_record_from_an_earlier_poll_has_its_timer_run_down() -> None:
    """The tracker keeps a connection whose timer only counted down (and a polling source
    hands out an unchanged socket's record again), so a document may be written from a
    record dumped polls ago: its 2MSL countdown is what is left at the document's time."""
    waiting = Connection(
        id="0x1a2d",
        record=dataclasses.replace(
            _record(TcpState.TIME_WAIT, 0, Timer(TimerName.TIMEWAIT, 60_000, 0)),
            dumped_at=T0 - 20,
        ),
        process=None,
        first_seen=T0 - 20,
        state_since=T0 - 20,
        history=(),
        tags=frozenset(),
    )
    expired = dataclasses.replace(
        waiting, id="0x1a2e", record=dataclasses.replace(waiting.record, dumped_at=T0 - 61)
    )
    snapshot = dataclasses.replace(_snapshot(), taken_at=T0)
    document = snapshot_document(snapshot, [waiting, expired], "", with_history=False)
    timers = [item["timer"] for item in document["connections"]]
    assert timers == [
        {"name": "timewait", "expires_ms": 40_000, "retrans": 0},
        {"name": "timewait", "expires_ms": 0, "retrans": 0},
    ]
    text = snapshot_json_text(snapshot, [waiting, expired], "", with_history=False)
    assert json.loads(text)["connections"][0]["timer"]["expires_ms"] == 40_000

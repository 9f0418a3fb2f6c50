"""The `tcpwatch.event/1` contract and human event lines."""

from __future__ import annotations

import json

from tcpwatch.model import EventKind, ProcessInfo
from tcpwatch.outputs.events import event_json, human_line
from tcpwatch.tcp.states import TcpState
from tcpwatch.tracker import Tracker
from tests.test_tracker import LO, Pair, listener, snap, sock

S = TcpState
CONTRACT_KEYS = [
    "schema",
    "at",
    "kind",
    "id",
    "family",
    "local",
    "remote",
    "from",
    "to",
    "path",
    "inferred",
    "process",
    "reason",
]


def _story():
    """A client and server through handshake, passive close on the server, TIME_WAIT."""
    p = Pair()
    proc = ProcessInfo(pid=42, name="srv", cmdline=("srv", "--x"), user="app", uid=1000)
    polls = [
        (listener(), p.s(S.ESTABLISHED, inode=5), p.c(S.ESTABLISHED)),
        (listener(), p.s(S.CLOSE_WAIT, recv_q=1, inode=5), p.c(S.FIN_WAIT2)),
        (listener(), p.c(S.TIME_WAIT)),
    ]
    tracker = Tracker()
    deltas = [
        tracker.update(snap(i * 0.5, *records, owners={5: proc})) for i, records in enumerate(polls)
    ]
    return p, deltas


def test_event_json_has_exactly_the_contract_fields() -> None:
    p, deltas = _story()
    documents = [event_json(e) for d in deltas for e in d.events]
    for document in documents:
        assert list(document) == CONTRACT_KEYS
        assert document["schema"] == "tcpwatch.event/1"
        assert document["at"].endswith("Z") and "T" in document["at"]
        json.dumps(document)  # serialisable as is
    server = [d for d in documents if d["id"] == p.sid]
    assert server[0] == {
        "schema": "tcpwatch.event/1",
        "at": server[0]["at"],
        "kind": "new",
        "id": p.sid,
        "family": "ipv4",
        "local": {"address": LO, "port": 8080},
        "remote": {"address": LO, "port": 40000},
        "from": None,
        "to": "ESTABLISHED",
        "path": ["SYN_RECV", "ESTABLISHED"],
        "inferred": True,
        "process": {"pid": 42, "name": "srv", "cmdline": ["srv", "--x"], "user": "app"},
        "reason": server[0]["reason"],
    }
    assert [d["kind"] for d in server] == ["new", "transition", "gone"]
    assert server[2]["path"] == ["CLOSE_WAIT", "LAST_ACK", "CLOSED"]
    assert server[2]["to"] == "CLOSED" and server[2]["inferred"] is True
    assert "the application then closed its end" in server[2]["reason"]


def test_time_wait_has_no_process_but_names_its_former_owner() -> None:
    p = Pair()
    proc = ProcessInfo(pid=42, name="cli", cmdline=("cli",), user="app")
    tracker = Tracker()
    tracker.update(snap(0, p.c(S.ESTABLISHED, inode=5), owners={5: proc}))
    delta = tracker.update(snap(0.5, p.c(S.TIME_WAIT), owners={5: proc}))
    (event,) = delta.events
    document = event_json(event)
    assert list(document) == [*CONTRACT_KEYS[:-1], "former_process", "reason"]
    assert document["process"] is None
    assert document["former_process"] == {
        "pid": 42,
        "name": "cli",
        "cmdline": ["cli"],
        "user": "app",
    }
    assert "[(cli/42)]" in human_line(event, color=False)


def test_concatenated_paths_rebuild_each_life() -> None:
    _p, deltas = _story()
    lives: dict[str, list[str]] = {}
    for d in deltas:
        for e in d.events:
            document = event_json(e)
            life = lives.setdefault(document["id"], [])
            if document["from"] is None:
                assert life == []
                life.extend(document["path"])
            else:
                assert document["path"][0] == document["from"] == life[-1]
                life.extend(document["path"][1:])
            assert document["path"][-1] == document["to"]
            inner = document["path"][1:-1] if document["from"] else document["path"][:-1]
            assert document["inferred"] is bool(inner)
    final = deltas[-1].connections
    for conn_id, life in lives.items():
        history = final[conn_id].history
        assert life == [history[0].to_state.value] + [h.to_state.value for h in history[1:]]


def test_human_line_marks_inferred_states_and_colours_only_on_request() -> None:
    _p, deltas = _story()
    gone = next(e for e in deltas[2].events if e.kind is EventKind.GONE)
    plain = human_line(gone, color=False)
    assert "CLOSE_WAIT > (LAST_ACK) > CLOSED" in plain
    assert "127.0.0.1:8080 -> 127.0.0.1:40000" in plain
    assert "srv/42" in plain and "\x1b" not in plain
    coloured = human_line(gone, color=True)
    assert "\x1b[" in coloured and "(LAST_ACK)" in coloured
    server_new = deltas[0].events[1]
    assert " (SYN_RECV) > ESTABLISHED " in human_line(server_new, color=False)


def test_human_line_shows_system_text_literally() -> None:
    evil = ProcessInfo(pid=7, name="x\x1b[2Jy\n", cmdline=(), user=None)
    tracker = Tracker()
    delta = tracker.update(
        snap(0, sock(S.ESTABLISHED, (LO, 1), (LO, 2), cookie=1, inode=9), owners={9: evil})
    )
    line = human_line(delta.events[0], color=True)
    assert "\x1b[2J" not in line and "\n" not in line
    assert "x\\x1b[2Jy\\x0a/7" in line

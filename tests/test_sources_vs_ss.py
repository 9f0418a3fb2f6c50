"""Both sources against `ss`, socket by socket, on real sockets in a private namespace."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from tcpwatch.model import Endpoint, SocketRecord
from tcpwatch.sources.base import SourceError
from tcpwatch.sources.netlink import NetlinkSource
from tcpwatch.sources.procfs import ProcSource
from tcpwatch.tcp.states import TcpState
from tests.netns import (
    ZOO_SCENARIO,
    ZOO_STATES,
    Scenario,
    SsSocket,
    add_silent_route,
    private_netns,
    requires_root,
    run_scenario,
    ss,
    wait_for_zoo,
)

pytestmark = requires_root

# Zero-window probing flips these between the retransmit and persist timers.
UNSTEADY_TIMERS = {"FIN_WAIT1", "LAST_ACK"}


@pytest.fixture(scope="module")
def zoo() -> Iterator[tuple[str, Scenario]]:
    with private_netns() as ns:
        add_silent_route(ns)
        with run_scenario(ns, ZOO_SCENARIO) as scenario:
            scenario.expect("ready")
            wait_for_zoo(ns)
            yield ns, scenario


def differences(record: SocketRecord, row: SsSocket, *, proc: bool = False) -> list[str]:
    found = []

    def check(what: str, ours: object, theirs: object) -> None:
        if ours != theirs:
            found.append(f"{row.local}->{row.remote} {what}: ours {ours!r}, ss {theirs!r}")

    check("state", record.state.value, row.state)
    check("local", (record.local.address, record.local.port), row.local)
    check("remote", (record.remote.address, record.remote.port), row.remote)
    check("recv_q", record.recv_q, row.recv_q)
    # /proc has no listen backlog.
    check("send_q", record.send_q, 0 if proc and row.state == "LISTEN" else row.send_q)
    check("inode", record.inode, row.inode)
    check("uid", record.uid, row.uid)
    if row.state not in UNSTEADY_TIMERS:
        check("timer", record.timer and record.timer.name.value, row.timer)
    return found


def settle(compare: Callable[[], list[str]], timeout: float = 5.0) -> None:
    """Compare until ours and ss agree (a socket can move between the two reads)."""
    deadline = time.monotonic() + timeout
    while True:
        problems = compare()
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert problems == []


def test_netlink_matches_ss_socket_by_socket(zoo: tuple[str, Scenario]) -> None:
    ns, _ = zoo
    source = NetlinkSource(netns=ns)

    def compare() -> list[str]:
        records = {record.cookie: record for record in source.dump()}
        rows = {row.cookie: row for row in ss(ns)}
        if set(records) != set(rows):
            return [f"cookies differ: {set(records) ^ set(rows)}"]
        return [p for cookie, row in rows.items() for p in differences(records[cookie], row)]

    try:
        settle(compare)
        states = {record.state for record in source.dump()}
    finally:
        source.close()
    assert {state.value for state in states} == ZOO_STATES


def test_proc_matches_ss_socket_by_socket(zoo: tuple[str, Scenario]) -> None:
    ns, _ = zoo
    source = ProcSource(netns=ns)

    def compare() -> list[str]:
        records = {record.four_tuple: record for record in source.dump()}
        rows = {(*row.local, *row.remote): row for row in ss(ns)}
        if set(records) != set(rows):
            return [f"sockets differ: {set(records) ^ set(rows)}"]
        return [p for key, row in rows.items() for p in differences(records[key], row, proc=True)]

    try:
        settle(compare)
        assert all(record.cookie is None for record in source.dump())
    finally:
        source.close()


def test_netns_by_name_path_and_pid_are_the_same_namespace(zoo: tuple[str, Scenario]) -> None:
    ns, scenario = zoo
    dumps = []
    for spec in (ns, f"/run/netns/{ns}", str(scenario.pid)):
        source = NetlinkSource(netns=spec)
        try:
            dumps.append({r.cookie for r in source.dump() if r.state is TcpState.LISTEN})
        finally:
            source.close()
    assert dumps[0] == dumps[1] == dumps[2] and len(dumps[0]) == 10


def test_other_namespaces_do_not_leak_in(zoo: tuple[str, Scenario]) -> None:
    """While the zoo is full of sockets, a fresh namespace still shows none."""
    ns, _ = zoo
    assert ss(ns)
    with private_netns() as empty:
        for source in (NetlinkSource(netns=empty), ProcSource(netns=empty)):
            try:
                assert source.dump() == []
            finally:
                source.close()


@pytest.mark.parametrize("kind", [NetlinkSource, ProcSource])
def test_missing_namespace_is_one_line(kind: type) -> None:
    with pytest.raises(SourceError, match=r"^network namespace 'tcpwatch-no-such-ns' not found$"):
        kind(netns="tcpwatch-no-such-ns")
    with pytest.raises(SourceError, match="not found"):
        kind(netns="/nonexistent/netns/file")


def test_a_file_that_is_not_a_namespace_is_one_line() -> None:
    with pytest.raises(SourceError, match="is not a network namespace"):
        NetlinkSource(netns="/proc/self/ns/uts")


MANY = r"""
lsock = listener(backlog=4096)
for _ in range(COUNT):
    pair(lsock)
report("ready")
command()
"""


def test_a_dump_spanning_many_replies_matches_ss() -> None:
    """3000 sockets need ~30 netlink replies: every one must be read and parsed."""
    count = 1500
    with private_netns() as ns, run_scenario(ns, MANY.replace("COUNT", str(count))) as scenario:
        scenario.expect("ready", timeout=30)
        netlink, proc = NetlinkSource(netns=ns), ProcSource(netns=ns)
        try:
            cookies = {record.cookie for record in netlink.dump()}
            tuples = {record.four_tuple for record in proc.dump()}
        finally:
            netlink.close()
            proc.close()
        rows = ss(ns)
    assert len(cookies) == 2 * count + 1
    assert cookies == {row.cookie for row in rows}
    assert tuples == {(*row.local, *row.remote) for row in rows}


def test_host_namespace_dump_works() -> None:
    """Without --netns both sources read the namespace tcpwatch runs in."""
    with socket.socket() as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        port = lsock.getsockname()[1]
        inode = os.fstat(lsock.fileno()).st_ino
        for source in (NetlinkSource(), ProcSource()):
            try:
                mine = [r for r in source.dump() if r.local == Endpoint("127.0.0.1", port)]
            finally:
                source.close()
            assert [(r.state, r.inode) for r in mine] == [(TcpState.LISTEN, inode)]


def test_a_failed_dump_does_not_poison_the_source(zoo: tuple[str, Scenario]) -> None:
    """After a dump fails half-way, the next one starts on a fresh socket and works."""
    ns, _ = zoo
    source = NetlinkSource(netns=ns)
    try:
        expected = {record.cookie for record in source.dump()}
        source._sock.close()  # the kernel side vanishes mid-use
        with pytest.raises(SourceError, match="Bad file descriptor"):
            source.dump()
        assert {record.cookie for record in source.dump()} == expected
    finally:
        source.close()

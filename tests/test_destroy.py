"""Destroy notifications from real sockets closed inside a private namespace."""

from __future__ import annotations

import select

import pytest

from tcpwatch.model import SocketRecord
from tcpwatch.sources.base import SourceError
from tcpwatch.sources.destroy import DestroyListener
from tcpwatch.sources.netlink import NetlinkSource
from tcpwatch.tcp.states import TcpState
from tests.netns import private_netns, requires_root, run_scenario, wait_until

pytestmark = requires_root

EXCHANGE_THEN_CLOSE = r"""
lsock = listener()
c, a = pair(lsock)
c.sendall(b"hello")
assert a.recv(5) == b"hello"
report("ready", client=c.getsockname()[1], server=lsock.getsockname()[1])
command()
c.close()
a.close()
report("closed")
command()
"""


def collect(listener: DestroyListener, wanted: int, timeout: float = 10.0) -> list[SocketRecord]:
    """Wait on the listener's fd (with a deadline) until `wanted` records arrived."""
    records: list[SocketRecord] = []

    def enough() -> bool:
        readable, _, _ = select.select([listener], [], [], 0.2)
        if readable:
            records.extend(listener.drain())
        return len(records) >= wanted

    wait_until(enough, timeout=timeout, what=f"{wanted} destroy notifications")
    return records


def test_closed_sockets_are_reported_with_final_tcp_info() -> None:
    with private_netns() as ns, run_scenario(ns, EXCHANGE_THEN_CLOSE) as scenario:
        listener = DestroyListener(netns=ns)
        try:
            ports = scenario.expect("ready")
            source = NetlinkSource(netns=ns)
            live = {(r.local.port, r.remote.port): r.cookie for r in source.dump()}
            source.close()
            assert listener.drain() == []  # nothing destroyed yet
            scenario.send("close")
            scenario.expect("closed")
            records = collect(listener, 2)
        finally:
            listener.close()
    client, server = ports["client"], ports["server"]
    by_ports = {(r.local.port, r.remote.port): r for r in records}
    assert set(by_ports) == {(client, server), (server, client)}
    for key, record in by_ports.items():
        assert record.cookie == live[key]  # the same socket the poll saw
        assert record.state is TcpState.CLOSE
        info = record.tcp_info
        assert info is not None and info.state == TcpState.CLOSE.kernel
    # 5 bytes of data and the peer's FIN, which takes one sequence number.
    assert by_ports[(server, client)].tcp_info.bytes_received == 6  # type: ignore[union-attr]
    assert listener.lost == 0


BURSTS = r"""
lsock = listener(backlog=512)
report("ready")
while command() == "burst":
    pairs = [pair(lsock) for _ in range(200)]
    for c, a in pairs:
        _kept.remove(c)
        _kept.remove(a)
        c.close()
        a.close()
    report("burst")
"""


def test_overflow_is_counted_not_fatal() -> None:
    with private_netns() as ns, run_scenario(ns, BURSTS) as scenario:
        listener = DestroyListener(netns=ns, receive_buffer=4096)
        source = NetlinkSource(netns=ns, tcp_info=False)
        lingering = {TcpState.LISTEN, TcpState.TIME_WAIT}

        def overflowed() -> bool:
            """Close 400 sockets unread; once they are gone, read: the kernel dropped some."""
            scenario.send("burst")
            scenario.expect("burst")
            wait_until(
                lambda: all(r.state in lingering for r in source.dump()),
                what="the burst's sockets to be freed",
            )
            listener.drain()
            return listener.lost >= 1

        try:
            scenario.expect("ready")
            wait_until(overflowed, timeout=30, what="an overflow of destroy notifications")
            # Notifications keep coming after the overflow.
            scenario.send("burst")
            scenario.expect("burst")
            assert collect(listener, 1)
        finally:
            source.close()
            listener.close()


def test_missing_namespace_is_one_line() -> None:
    with pytest.raises(SourceError, match=r"^network namespace 'tcpwatch-no-such-ns' not found$"):
        DestroyListener(netns="tcpwatch-no-such-ns")

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


MANY_CLOSES = r"""
lsock = listener(backlog=512)
pairs = [pair(lsock) for _ in range(300)]
report("ready")
command()
for c, a in pairs:
    c.close()
    a.close()
report("closed")
command()
c, a = pair(lsock)
report("pair", client=c.getsockname()[1])
c.close()
a.close()
command()
"""


def test_overflow_is_counted_not_fatal() -> None:
    with private_netns() as ns, run_scenario(ns, MANY_CLOSES) as scenario:
        listener = DestroyListener(netns=ns, receive_buffer=4096)
        try:
            scenario.expect("ready", timeout=20)
            scenario.send("close")
            scenario.expect("closed", timeout=20)
            records = listener.drain()
            assert listener.lost >= 1
            assert len(records) < 600
            # Notifications keep coming after the overflow.
            scenario.send("again")
            client = scenario.expect("pair")["client"]
            wait_until(
                lambda: any(r.local.port == client for r in collect(listener, 1)),
                what="a notification after the overflow",
            )
        finally:
            listener.close()


def test_missing_namespace_is_one_line() -> None:
    with pytest.raises(SourceError, match=r"^network namespace 'tcpwatch-no-such-ns' not found$"):
        DestroyListener(netns="tcpwatch-no-such-ns")

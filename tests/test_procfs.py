"""The /proc/net/tcp{,6} parser on tables captured from a real kernel, checked against the
`ss -tanHoe` output captured with them, and on malformed lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcpwatch.model import Family, SocketRecord
from tcpwatch.sources.base import SourceError
from tcpwatch.sources.procfs import ProcTableParser
from tests.netns import parse_ss

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TCP4 = (FIXTURES / "zoo_proc_tcp.txt").read_text()
TCP6 = (FIXTURES / "zoo_proc_tcp6.txt").read_text()
SS_ROWS = parse_ss((FIXTURES / "zoo_ss.txt").read_text())


def parse(text: str, family: Family) -> list[SocketRecord]:
    out: list[SocketRecord] = []
    ProcTableParser().parse(text, family, "/proc/net/tcp", out)
    return out


def test_every_socket_matches_ss() -> None:
    records = {r.four_tuple: r for r in parse(TCP4, Family.IPV4) + parse(TCP6, Family.IPV6)}
    rows = {(*row.local, *row.remote): row for row in SS_ROWS}
    assert set(records) == set(rows)
    for key, row in rows.items():
        record = records[key]
        assert record.cookie is None and record.tcp_info_raw is None
        assert record.state.value == row.state
        assert record.recv_q == row.recv_q
        assert record.send_q == (0 if row.state == "LISTEN" else row.send_q)  # no backlog
        assert (record.inode, record.uid) == (row.inode, row.uid)
        assert (record.timer and record.timer.name.value) == row.timer, key
        if record.timer is not None:
            assert row.timer_ms is not None and row.timer_resolution_ms is not None
            # /proc counts in clock ticks (10 ms); ss ran just after and rounds.
            slack = row.timer_resolution_ms + 1000
            assert abs(record.timer.expires_ms - row.timer_ms) <= slack


def test_families_and_mapped_addresses() -> None:
    v6 = parse(TCP6, Family.IPV6)
    assert {r.family for r in v6} == {Family.IPV6}
    assert any(r.local.address == "::ffff:127.0.0.1" for r in v6)
    assert any(r.local.address == "::" and r.local.port == 7003 for r in v6)
    assert any(r.local.address == "0.0.0.0" for r in parse(TCP4, Family.IPV4))


HEADER = TCP4.splitlines()[0]
GOOD = TCP4.splitlines()[1].split()


def changed(index: int, value: str) -> str:
    """The first captured line with field `index` replaced."""
    return " ".join([*GOOD[:index], value, *GOOD[index + 1 :]])


@pytest.mark.parametrize(
    "line",
    [
        changed(1, GOOD[1][:-1]),  # port not 4 hex digits
        changed(3, "0C"),  # no such TCP state
        changed(3, "ZZ"),
        " ".join(GOOD[:6]),  # cut short
        changed(2, GOOD[2].split(":")[0]),  # remote without port
        changed(5, GOOD[5].replace(":", "-")),  # timer field
        changed(9, "x"),  # inode
    ],
    ids=["port", "state", "hex", "short", "remote", "timer", "inode"],
)
def test_malformed_line_is_named(line: str) -> None:
    with pytest.raises(SourceError) as raised:
        parse(f"{HEADER}\n{line}\n", Family.IPV4)
    message = str(raised.value)
    assert message.startswith("malformed line in /proc/net/tcp: ")
    assert line.strip()[:40] in message and "\n" not in message


def test_ipv6_address_in_ipv4_table_is_malformed() -> None:
    v6_line = TCP6.splitlines()[1]
    with pytest.raises(SourceError, match="malformed line"):
        parse(f"{HEADER}\n{v6_line}\n", Family.IPV4)


def test_empty_table_has_no_sockets() -> None:
    assert parse(HEADER + "\n", Family.IPV4) == []

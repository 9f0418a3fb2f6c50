"""The filter language: every key, negation, alternatives, bare forms and every error."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tcpwatch.errors import UsageError
from tcpwatch.filters import FilterError, parse_filter
from tcpwatch.model import Connection, Family, ProcessInfo
from tcpwatch.tcp.states import TcpState
from tcpwatch.tcp.tags import Tag
from tests.records import record


def conn(
    state: TcpState = TcpState.ESTABLISHED,
    local: tuple[str, int] = ("127.0.0.1", 8080),
    remote: tuple[str, int] = ("127.0.0.1", 51234),
    *,
    family: Family = Family.IPV4,
    uid: int = 1000,
    inode: int = 4711,
    process: ProcessInfo | None = None,
    tags: frozenset[Tag] = frozenset(),
    gone: bool = False,
) -> Connection:
    socket = replace(record(state, local, remote, uid=uid, inode=inode), family=family)
    return Connection(
        id="0x1",
        record=socket,
        process=process,
        first_seen=0.0,
        state_since=None,
        history=(),
        tags=tags,
        gone_at=1.0 if gone else None,
    )


JAVA = ProcessInfo(pid=4242, name="java", cmdline=("java", "-jar", "app.jar"), user="app", uid=1000)
NGINX = ProcessInfo(pid=17, name="nginx", cmdline=("nginx",), user="root", uid=0)


def test_empty_filter_matches_everything() -> None:
    flt = parse_filter("   ")
    assert flt.text == ""
    assert flt.matches(conn())
    assert flt.matches(conn(TcpState.LISTEN, process=None))


def test_text_is_whitespace_normalised() -> None:
    assert parse_filter("  port:80 \t state:listen\n").text == "port:80 state:listen"


@pytest.mark.parametrize(
    ("text", "local", "remote", "expected"),
    [
        ("port:8080", 8080, 1, True),
        ("port:8080", 1, 8080, True),
        ("port:8080", 1, 2, False),
        ("port:1,2,3", 9, 3, True),
        ("sport:8080", 8080, 1, True),
        ("sport:8080", 1, 8080, False),
        ("lport:8080", 8080, 1, True),
        ("dport:8080", 1, 8080, True),
        ("dport:8080", 8080, 1, False),
        ("rport:8080", 1, 8080, True),
        ("8080", 1, 8080, True),
        ("8080", 1, 2, False),
        ("!port:8080", 8080, 1, False),
        ("!port:8080", 1, 2, True),
        ("port:0", 22, 0, True),
    ],
)
def test_ports(text: str, local: int, remote: int, expected: bool) -> None:
    c = conn(local=("10.0.0.1", local), remote=("10.0.0.2", remote))
    assert parse_filter(text).matches(c) is expected


def test_pid_and_proc() -> None:
    java, nginx, nobody = conn(process=JAVA), conn(process=NGINX), conn(process=None)
    assert parse_filter("pid:4242").matches(java)
    assert not parse_filter("pid:4242").matches(nginx)
    assert not parse_filter("pid:4242").matches(nobody)
    assert parse_filter("pid:1,17").matches(nginx)
    assert parse_filter("!pid:4242").matches(nobody)
    assert parse_filter("proc:java").matches(java)
    assert not parse_filter("proc:jav").matches(java)
    assert parse_filter("proc:ja*").matches(java)
    assert parse_filter("proc:?ginx").matches(nginx)
    assert parse_filter("proc:x,nginx").matches(nginx)
    assert not parse_filter("proc:*").matches(nobody)
    assert parse_filter("!proc:java").matches(nginx)
    assert not parse_filter("proc:Java").matches(java)  # names are case-sensitive


def test_owner_keys_match_the_former_owner_of_a_socket_nobody_holds() -> None:
    closed = replace(conn(TcpState.TIME_WAIT, inode=0, process=None), former_process=JAVA)
    assert parse_filter("pid:4242").matches(closed)
    assert parse_filter("proc:java").matches(closed)
    assert parse_filter("user:app").matches(closed)
    assert not parse_filter("pid:17").matches(closed)
    assert not parse_filter("proc:nginx").matches(closed)
    # The current owner wins over a former one (a socket passed on to another process).
    passed_on = replace(conn(process=NGINX), former_process=JAVA)
    assert parse_filter("proc:nginx").matches(passed_on)
    assert not parse_filter("proc:java").matches(passed_on)


@pytest.mark.parametrize(
    ("spelling", "state"),
    [
        ("estab", TcpState.ESTABLISHED),
        ("ESTABLISHED", TcpState.ESTABLISHED),
        ("fin-wait-1", TcpState.FIN_WAIT1),
        ("fin_wait2", TcpState.FIN_WAIT2),
        ("syn-recv", TcpState.SYN_RECV),
        ("syn-sent", TcpState.SYN_SENT),
        ("time-wait", TcpState.TIME_WAIT),
        ("Close-Wait", TcpState.CLOSE_WAIT),
        ("last-ack", TcpState.LAST_ACK),
        ("listen", TcpState.LISTEN),
        ("closing", TcpState.CLOSING),
    ],
)
def test_state_spellings_keyed_and_bare(spelling: str, state: TcpState) -> None:
    assert parse_filter(f"state:{spelling}").matches(conn(state))
    assert parse_filter(spelling).matches(conn(state))
    other = TcpState.LISTEN if state is not TcpState.LISTEN else TcpState.ESTABLISHED
    assert not parse_filter(f"state:{spelling}").matches(conn(other))
    assert parse_filter(f"!{spelling}").matches(conn(other))


def test_state_alternatives_and_closed() -> None:
    flt = parse_filter("state:close-wait,last-ack")
    assert flt.matches(conn(TcpState.CLOSE_WAIT))
    assert flt.matches(conn(TcpState.LAST_ACK))
    assert not flt.matches(conn(TcpState.ESTABLISHED))
    assert parse_filter("state:closed").matches(conn(TcpState.ESTABLISHED, gone=True))


@pytest.mark.parametrize(
    ("text", "local", "remote", "expected"),
    [
        ("addr:127.0.0.1", "127.0.0.1", "10.1.1.1", True),
        ("addr:127.0.0.1", "10.1.1.1", "127.0.0.1", True),
        ("addr:127.0.0.0/8", "10.1.1.1", "127.5.4.3", True),
        ("addr:192.168.0.0/16", "10.1.1.1", "127.5.4.3", False),
        ("src:10.0.0.0/8", "10.1.1.1", "127.0.0.1", True),
        ("src:127.0.0.0/8", "10.1.1.1", "127.0.0.1", False),
        ("dst:127.0.0.0/8", "10.1.1.1", "127.0.0.1", True),
        ("dst:10.0.0.0/8", "10.1.1.1", "127.0.0.1", False),
        ("addr:10.1.1.1/8", "10.200.0.1", "1.1.1.1", True),  # host bits allowed
        ("addr:192.168.1.1,10.0.0.0/8", "10.9.9.9", "1.1.1.1", True),
        ("!addr:10.0.0.0/8", "10.9.9.9", "1.1.1.1", False),
        # IPv6, and IPv4-mapped IPv6 against an IPv4 CIDR and vice versa.
        ("addr:::1", "::1", "::1", True),
        ("addr:[::1]", "::1", "::1", True),
        ("addr:fe80::/10", "fe80::1", "::1", True),
        ("addr:fd00::/8", "fe80::1", "::1", False),
        ("addr:127.0.0.0/8", "::ffff:127.0.0.1", "::ffff:127.0.0.1", True),
        ("addr:::ffff:10.0.0.0/104", "10.2.3.4", "1.1.1.1", True),
        ("addr:::/0", "10.2.3.4", "1.1.1.1", False),  # an IPv6 CIDR never matches IPv4
        ("addr:0.0.0.0/0", "::1", "::1", False),
    ],
)
def test_addresses(text: str, local: str, remote: str, expected: bool) -> None:
    family = Family.IPV6 if ":" in local else Family.IPV4
    c = conn(local=(local, 1), remote=(remote, 2), family=family)
    assert parse_filter(text).matches(c) is expected


def test_uid_and_user() -> None:
    assert parse_filter("uid:1000").matches(conn(uid=1000))
    assert not parse_filter("uid:0").matches(conn(uid=1000))
    assert parse_filter("uid:0,1000").matches(conn(uid=1000))
    assert parse_filter("user:app").matches(conn(process=JAVA))
    assert not parse_filter("user:root").matches(conn(process=JAVA))
    # Without a known owner, a full socket's uid names the user; inode 0 sockets have none.
    assert parse_filter("user:root").matches(conn(uid=0, process=None))
    assert not parse_filter("user:root").matches(conn(uid=0, inode=0, process=None))


def test_tags() -> None:
    c = conn(tags=frozenset({Tag.HALF_CLOSED, Tag.ORPHAN}))
    assert parse_filter("tag:half_closed").matches(c)
    assert parse_filter("tag:half-closed").matches(c)
    assert parse_filter("tag:listener,orphan").matches(c)
    assert not parse_filter("tag:listener").matches(c)
    assert parse_filter("!tag:lingering").matches(c)
    for tag in Tag:
        assert parse_filter(f"tag:{tag.value}").matches(conn(tags=frozenset({tag})))


def test_all_terms_must_match() -> None:
    c = conn(TcpState.CLOSE_WAIT, process=JAVA)
    assert parse_filter("port:8080 close-wait proc:java user:app").matches(c)
    assert not parse_filter("port:8080 close-wait proc:nginx").matches(c)
    assert not parse_filter("port:8080 estab proc:java").matches(c)


def test_key_is_case_insensitive() -> None:
    assert parse_filter("PORT:8080 State:CLOSE-WAIT").matches(conn(TcpState.CLOSE_WAIT))


@pytest.mark.parametrize(
    ("text", "term", "fragment"),
    [
        ("port:8080 bogus:1", "bogus:1", "unknown key 'bogus'"),
        ("port:", "port:", "empty value"),
        ("port:80,", "port:80,", "empty value"),
        ("port:,80", "port:,80", "empty value"),
        ("port:65536", "port:65536", "out of range"),
        ("sport:99999", "sport:99999", "out of range"),
        ("dport:-1", "dport:-1", "whole number"),
        ("port:http", "port:http", "whole number"),
        ("pid:abc", "pid:abc", "whole number"),
        ("pid:0", "pid:0", "out of range"),
        ("uid:x", "uid:x", "whole number"),
        ("uid:-3", "uid:-3", "whole number"),
        ("addr:10.0.0.0/33", "addr:10.0.0.0/33", "not an IP address or CIDR"),
        ("src:localhost", "src:localhost", "not an IP address or CIDR"),
        ("dst:1.2.3", "dst:1.2.3", "not an IP address or CIDR"),
        ("addr:::1/129", "addr:::1/129", "not an IP address or CIDR"),
        ("state:bogus", "state:bogus", "unknown TCP state 'bogus'"),
        ("tag:shiny", "tag:shiny", "unknown tag 'shiny'"),
        ("!", "!", "'!' must be followed"),
        ("port:80 !", "!", "'!' must be followed"),
        ("hello", "hello", "not key:value"),
        ("99999", "99999", "out of range"),
        ("!bogus", "!bogus", "not key:value"),
        (":80", ":80", "unknown key ''"),
        ("port:८०", "port:८०", "whole number"),  # non-ASCII digits are not ports
    ],
)
def test_errors_name_the_term(text: str, term: str, fragment: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse_filter(text)
    message = str(caught.value)
    assert f"{term!r}" in message
    assert fragment in message
    assert "\n" not in message
    assert isinstance(caught.value, UsageError)

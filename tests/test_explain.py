"""Explanations: catalog coverage in both languages, live values, who closed first, and
each diagnosis firing on its condition and not otherwise."""

from __future__ import annotations

import string
import struct
from dataclasses import replace

import pytest

from tcpwatch.filters import parse_filter
from tcpwatch.model import (
    Connection,
    ProcessInfo,
    SocketRecord,
    Timer,
    TimerName,
    Transition,
)
from tcpwatch.sources.netlink import NetlinkSource
from tcpwatch.sources.poller import open_poller
from tcpwatch.sources.sysctl import read_host_settings
from tcpwatch.tcp.explain import (
    CATALOGS,
    FIELDS,
    FLAGS,
    GLOSSARY_TERMS,
    LANGUAGES,
    Code,
    Diagnosis,
    DiagnosisThresholds,
    Severity,
    diagnose_population,
    explain,
    flag_meaning,
    glossary,
    pick_language,
)
from tcpwatch.tcp.host import HostSettings
from tcpwatch.tcp.states import TcpState as S
from tcpwatch.tcp.tags import Tag, TagThresholds, classify
from tcpwatch.tracker import Tracker
from tests.netns import (
    SsSocket,
    add_silent_route,
    private_netns,
    requires_root,
    run_ip,
    run_scenario,
    set_sysctl,
    ss,
    wait_until,
)
from tests.records import record

NOW = 10_000.0
HOST = HostSettings()
JAVA = ProcessInfo(4242, "java", ("java", "-jar", "app.jar"), "app")


def template_fields(template: str) -> set[str]:
    """The named fields a catalog template uses."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def rec(
    state: S,
    *,
    local: tuple[str, int] = ("127.0.0.1", 8080),
    remote: tuple[str, int] = ("127.0.0.1", 50000),
    recv_q: int = 0,
    send_q: int = 0,
    timer: Timer | None = None,
    inode: int = 77,
    raw: bytes | None = None,
) -> SocketRecord:
    return record(
        state, local, remote, recv_q=recv_q, send_q=send_q, timer=timer, inode=inode, raw=raw
    )


_ids = iter(range(1, 1_000_000))


def conn(
    record: SocketRecord,
    *,
    path: tuple[S, ...] = (),
    age: float = 5.0,
    process: ProcessInfo | None = JAVA,
    gone: bool = False,
) -> Connection:
    """A connection whose history is `path` (first state from None), entering its last
    state `age` seconds before NOW."""
    since = NOW - age
    history = tuple(
        Transition(since, path[i - 1] if i else None, state, inferred=False)
        for i, state in enumerate(path)
    )
    return Connection(
        id=f"0x{next(_ids):x}",
        record=record,
        process=process,
        first_seen=since - 1,
        state_since=since,
        history=history,
        tags=frozenset(),
        gone_at=NOW if gone else None,
    )


def tcp_info(*, retransmits: int = 0, backoff: int = 0, unacked: int = 0) -> bytes:
    u32 = [0] * 24
    u32[4] = unacked
    return struct.pack("=8B24I", 1, 0, retransmits, 0, backoff, 0, 0, 0, *u32).ljust(232, b"\0")


def codes(e: object) -> set[str]:
    return {d.code for d in e.diagnoses}  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------
# Coverage


def test_both_catalogs_have_the_same_keys_and_fields() -> None:
    en, zh = CATALOGS["en"], CATALOGS["zh"]
    assert set(en) == set(zh)
    for key in en:
        assert template_fields(en[key]) == template_fields(zh[key]), key


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_state_tag_and_code_has_text_that_formats(lang: str) -> None:
    cat = CATALOGS[lang]
    values = dict.fromkeys(FIELDS, "X")
    keys = [f"state.{s.value}.{part}" for s in S for part in ("title", "meaning", "next")]
    keys += [f"tag.{t.value}" for t in Tag]
    keys += [f"diag.{c.value}.{part}" for c in Code for part in ("title", "cause", "fix")]
    keys += [f"flag.{f.strip('[]')}" for f in FLAGS]
    keys += [f"term.{t}" for t in GLOSSARY_TERMS]
    keys += [k for k in cat if k.startswith(("note.", "who.", "state."))]
    for key in keys:
        text = cat[key].format_map(values)
        assert text.strip(), key
    if lang == "zh":
        assert all(any("\u4e00" <= ch <= "\u9fff" for ch in cat[k]) for k in keys), "untranslated"


def _one_of_each_state() -> list[Connection]:
    ka = Timer(TimerName.KEEPALIVE, 3000, 0)
    return [
        conn(rec(S.LISTEN, remote=("0.0.0.0", 0), recv_q=0, send_q=128), path=(S.LISTEN,)),
        conn(rec(S.SYN_SENT, local=("10.0.0.1", 40000), remote=("10.0.0.2", 443))),
        conn(rec(S.SYN_RECV, timer=Timer(TimerName.RETRANSMIT, 900, 1), inode=0)),
        conn(rec(S.ESTABLISHED)),
        conn(rec(S.ESTABLISHED, timer=ka)),
        conn(rec(S.ESTABLISHED, timer=Timer(TimerName.RETRANSMIT, 400, 2))),
        conn(rec(S.ESTABLISHED, timer=Timer(TimerName.PERSIST, 400, 1))),
        conn(rec(S.FIN_WAIT1)),
        conn(rec(S.FIN_WAIT1, inode=0)),
        conn(rec(S.FIN_WAIT2)),
        conn(rec(S.FIN_WAIT2, inode=0), age=100),
        conn(rec(S.CLOSING)),
        conn(rec(S.TIME_WAIT, timer=Timer(TimerName.TIMEWAIT, 42_000, 0), inode=0)),
        conn(rec(S.TIME_WAIT, inode=0)),
        conn(rec(S.CLOSE_WAIT, recv_q=1), age=100),
        conn(rec(S.LAST_ACK, inode=0)),
        conn(rec(S.CLOSE)),
        conn(rec(S.ESTABLISHED), gone=True),
    ]


@pytest.mark.parametrize("lang", LANGUAGES)
def test_explain_every_state_in_both_languages(lang: str) -> None:
    seen = set()
    everyone = _one_of_each_state()
    for c in everyone:
        e = explain(c, host=HOST, lang=lang, now=NOW, others=everyone)
        seen.add(c.state)
        assert c.state.value in e.title
        assert e.meaning and e.what_next and e.how_it_got_here
        assert e.path[-1] is c.state
        assert len(e.inferred) == len(e.path)
        for d in e.diagnoses:
            assert d.title and d.cause and d.fix
    assert seen == set(S)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_glossary_and_flag_legend(lang: str) -> None:
    terms = glossary(lang)
    assert [t for t, _ in terms] == list(GLOSSARY_TERMS) and all(text for _, text in terms)
    assert "SYN+ACK" in (flag_meaning("[S.]", lang) or "")
    assert flag_meaning("[X]", lang) is None
    c = conn(rec(S.ESTABLISHED), path=(S.SYN_SENT, S.ESTABLISHED))
    legend = next(n for n in explain(c, host=HOST, lang=lang, now=NOW).notes if "[S.]" in n)
    assert "[S] SYN" in legend and "[.] ACK" in legend and "[F.]" not in legend


def test_tcp_info_measurements_are_quoted() -> None:
    u32 = [0] * 24
    u32[0], u32[2], u32[15], u32[18], u32[23] = 204_000, 1448, 4_250, 10, 7  # rto mss rtt cwnd
    raw = struct.pack("=8B24I", 1, 0, 0, 0, 0, 0, 0, 0, *u32).ljust(232, b"\0")
    e = explain(conn(rec(S.ESTABLISHED, raw=raw)), host=HOST, now=NOW)
    note = next(n for n in e.notes if "round-trip" in n)
    assert "4.25 ms" in note and "204 ms" in note and "1448" in note and "10 segments" in note
    assert "7 retransmissions" in note
    assert not any("round-trip" in n for n in explain(conn(rec(S.ESTABLISHED)), host=HOST).notes)


def test_unknown_language_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown language"):
        explain(conn(rec(S.ESTABLISHED)), host=HOST, lang="fr", now=NOW)


def test_pick_language() -> None:
    assert pick_language({"LANG": "zh_CN.UTF-8"}) == "zh"
    assert pick_language({"LANG": "en_US.UTF-8"}) == "en"
    assert pick_language({}) == "en"
    assert pick_language({"LC_ALL": "en_GB.UTF-8", "LANG": "zh_CN.UTF-8"}) == "en"
    assert pick_language({"LC_ALL": "", "LC_MESSAGES": "zh_TW", "LANG": "C"}) == "zh"


# ---------------------------------------------------------------------------------------
# Live values


@pytest.mark.parametrize("lang", LANGUAGES)
def test_live_values_appear(lang: str) -> None:
    host = HostSettings(
        tcp_fin_timeout=17,
        tcp_keepalive_time=333,
        tcp_keepalive_intvl=11,
        tcp_keepalive_probes=4,
        tcp_syn_retries=2,
        somaxconn=777,
        tcp_max_syn_backlog=555,
    )
    tw = conn(rec(S.TIME_WAIT, timer=Timer(TimerName.TIMEWAIT, 42_000, 0), inode=0))
    assert "42" in explain(tw, host=host, lang=lang, now=NOW).what_next
    assert "60" in explain(tw, host=host, lang=lang, now=NOW).what_next
    orphan = conn(rec(S.FIN_WAIT2, inode=0))
    assert "17" in explain(orphan, host=host, lang=lang, now=NOW).what_next
    syn = conn(rec(S.SYN_SENT, timer=Timer(TimerName.RETRANSMIT, 1500, 1)))
    text = explain(syn, host=host, lang=lang, now=NOW).what_next
    assert "tcp_syn_retries = 2" in text and "7" in text  # 1 + 2 + 4 s
    ka = conn(rec(S.ESTABLISHED, timer=Timer(TimerName.KEEPALIVE, 5000, 0)))
    e = explain(ka, host=host, lang=lang, now=NOW)
    assert "5" in e.what_next and "11" in e.what_next and "4" in e.what_next
    assert any("333" in n for n in e.notes)
    listen = conn(rec(S.LISTEN, local=("0.0.0.0", 8080), remote=("0.0.0.0", 0), send_q=128))
    e = explain(listen, host=host, lang=lang, now=NOW)
    assert "777" in e.what_next and "555" in e.what_next
    cw = conn(rec(S.CLOSE_WAIT, recv_q=1))
    e = explain(cw, host=host, lang=lang, now=NOW)
    assert "java" in e.what_next and "4242" in e.what_next
    assert any("Recv-Q 1" in n for n in e.notes)


# ---------------------------------------------------------------------------------------
# How it got here, who closed first


def test_how_it_got_here_draws_the_segments() -> None:
    c = conn(
        rec(S.TIME_WAIT, inode=0),
        path=(S.SYN_SENT, S.ESTABLISHED, S.FIN_WAIT1, S.FIN_WAIT2, S.TIME_WAIT),
    )
    e = explain(c, host=HOST, now=NOW)
    assert e.how_it_got_here.startswith("connect() · sent [S] → SYN_SENT")
    assert "received [S.] · sent [.] → ESTABLISHED" in e.how_it_got_here
    assert "close() · sent [F.] → FIN_WAIT1" in e.how_it_got_here
    assert "received [F.] · sent [.] → TIME_WAIT" in e.how_it_got_here
    assert "(inferred)" not in e.how_it_got_here
    zh = explain(c, host=HOST, now=NOW, lang="zh")
    assert "发出 [S]" in zh.how_it_got_here and "收到 [S.]" in zh.how_it_got_here


def test_first_sighting_is_inferred_from_ports() -> None:
    # No history (one-shot): an ephemeral local port toward a service port is outgoing.
    out = conn(rec(S.ESTABLISHED, local=("10.0.0.1", 40000), remote=("10.0.0.2", 443)))
    e = explain(out, host=HOST, now=NOW)
    assert e.path == (S.CLOSED, S.SYN_SENT, S.ESTABLISHED)
    assert e.inferred == (True, True, False)
    assert "(inferred)" in e.how_it_got_here
    # Its local port belongs to a listener here: accepted.
    listener = conn(rec(S.LISTEN, local=("0.0.0.0", 8080), remote=("0.0.0.0", 0)))
    acc = conn(rec(S.ESTABLISHED, local=("127.0.0.1", 8080), remote=("127.0.0.1", 40000)))
    e = explain(acc, host=HOST, now=NOW, others=[listener, acc])
    assert e.path == (S.CLOSED, S.SYN_RECV, S.ESTABLISHED)


@pytest.mark.parametrize(
    ("path", "who"),
    [
        ((S.SYN_SENT, S.ESTABLISHED, S.FIN_WAIT1, S.FIN_WAIT2, S.TIME_WAIT), "This end"),
        ((S.SYN_RECV, S.ESTABLISHED, S.CLOSE_WAIT), "The peer"),
        ((S.ESTABLISHED, S.CLOSE_WAIT, S.LAST_ACK), "The peer"),
        ((S.ESTABLISHED, S.FIN_WAIT1, S.CLOSING), "Both ends"),
        ((S.SYN_SENT, S.ESTABLISHED), None),
    ],
)
def test_who_closed_first(path: tuple[S, ...], who: str | None) -> None:
    e = explain(conn(rec(path[-1]), path=path), host=HOST, now=NOW)
    if who is None:
        assert e.who_closed_first is None
    else:
        assert e.who_closed_first is not None and e.who_closed_first.startswith(who)


def test_reset_and_refused_are_explained() -> None:
    gone = conn(rec(S.ESTABLISHED), path=(S.SYN_SENT, S.ESTABLISHED, S.CLOSED), gone=True)
    e = explain(gone, host=HOST, now=NOW)
    assert e.who_closed_first is not None and "reset" in e.who_closed_first
    assert any(n.startswith("A reset ([R])") for n in e.notes)
    refused = conn(rec(S.SYN_SENT), path=(S.SYN_SENT,), gone=True)
    e = explain(refused, host=HOST, now=NOW)
    assert any("connection refused" in n for n in e.notes)
    assert e.ladder[-1].flags == "[R.]"
    # A SYN that kept being retransmitted and vanished timed out: no refusal.
    timed_out = conn(
        rec(S.SYN_SENT, timer=Timer(TimerName.RETRANSMIT, 100, 3)), path=(S.SYN_SENT,), gone=True
    )
    e = explain(timed_out, host=HOST, now=NOW)
    assert not any("connection refused" in n for n in e.notes)
    assert e.ladder[-1].label == "SYN retries"


def test_local_peer_is_shown_and_decides_who_closed() -> None:
    here = conn(rec(S.ESTABLISHED))
    there = conn(rec(S.FIN_WAIT2, local=("127.0.0.1", 50000), remote=("127.0.0.1", 8080)))
    e = explain(here, host=HOST, now=NOW, peer=there)
    assert any("FIN_WAIT2" in n for n in e.notes)
    assert e.who_closed_first is not None and e.who_closed_first.startswith("The peer")


# ---------------------------------------------------------------------------------------
# Diagnoses on single connections


def test_close_wait_leak_after_the_threshold_only() -> None:
    th = DiagnosisThresholds(tags=TagThresholds(lingering_s=30))
    old = explain(conn(rec(S.CLOSE_WAIT, recv_q=1), age=31), host=HOST, now=NOW, thresholds=th)
    assert Code.CLOSE_WAIT_LEAK.value in codes(old)
    d = next(d for d in old.diagnoses if d.code == "close_wait_leak")
    assert "java (pid 4242)" in d.title and "31 s" in d.cause and d.severity is Severity.PROBLEM
    young = explain(conn(rec(S.CLOSE_WAIT, recv_q=1), age=29), host=HOST, now=NOW, thresholds=th)
    assert Code.CLOSE_WAIT_LEAK.value not in codes(young)


def test_a_leaking_connection_counts_the_leak_of_its_whole_process() -> None:
    """The drill-down of one leaked CLOSE_WAIT tells how many its process holds past the
    threshold and how old the oldest is, as the host-wide finding does."""
    th = DiagnosisThresholds(tags=TagThresholds(lingering_s=30))
    nginx = ProcessInfo(99, "nginx", ("nginx",), "www")
    this = conn(rec(S.CLOSE_WAIT, recv_q=1), age=40)
    others = [
        conn(rec(S.CLOSE_WAIT, remote=("127.0.0.1", 50001), recv_q=1), age=95),
        conn(rec(S.CLOSE_WAIT, remote=("127.0.0.1", 50002), recv_q=1), age=31),
        conn(rec(S.CLOSE_WAIT, remote=("127.0.0.1", 50003), recv_q=1), age=5),  # too young
        conn(rec(S.CLOSE_WAIT, remote=("127.0.0.1", 50004), recv_q=1), age=60, process=nginx),
        conn(rec(S.ESTABLISHED, remote=("127.0.0.1", 50005)), age=500),
    ]
    e = explain(this, host=HOST, now=NOW, others=[this, *others], thresholds=th)
    d = next(d for d in e.diagnoses if d.code == "close_wait_leak")
    assert "3 connection(s)" in d.cause and "1 min 35 s" in d.cause, d.cause
    alone = explain(this, host=HOST, now=NOW, thresholds=th)
    d = next(d for d in alone.diagnoses if d.code == "close_wait_leak")
    assert "1 connection(s)" in d.cause and "40 s" in d.cause, d.cause


def _queue(*, closed_ages: tuple[float, ...], waiting: int = 0, accepted: int = 0):
    """A listener on *:8080 (java) with children: some their clients closed in the accept
    queue (CLOSE_WAIT, inode 0), some still waiting (ESTABLISHED, inode 0), some accepted."""
    lst = conn(rec(S.LISTEN, local=("0.0.0.0", 8080), remote=("0.0.0.0", 0), send_q=128))
    ports = iter(range(50000, 60000))

    def child(state: S, *, inode: int, age: float, recv_q: int = 0) -> Connection:
        r = rec(state, remote=("127.0.0.1", next(ports)), inode=inode, recv_q=recv_q)
        return replace(conn(r, age=age, process=JAVA if inode else None), tags=classify(r))

    closed = [child(S.CLOSE_WAIT, inode=0, age=a, recv_q=1) for a in closed_ages]
    queued = [child(S.ESTABLISHED, inode=0, age=12) for _ in range(waiting)]
    taken = [child(S.ESTABLISHED, inode=500 + i, age=12) for i in range(accepted)]
    return lst, closed, queued, taken


def test_a_close_wait_in_the_accept_queue_is_no_leak_but_a_slow_accept() -> None:
    """Its client closed it before the application accepted it: no process holds it, so
    it is no leak; the listener's process accepts too slowly."""
    th = DiagnosisThresholds(tags=TagThresholds(lingering_s=30))
    lst, closed, queued, taken = _queue(closed_ages=(95, 40, 5), waiting=2, accepted=1)
    everyone = [lst, *closed, *queued, *taken]
    e = explain(closed[1], host=HOST, now=NOW, others=everyone, thresholds=th)
    assert codes(e) == {"closed_in_accept_queue"}
    d = e.diagnoses[0]
    assert d.title == (
        "2 connection(s) closed by their clients in the accept queue of 0.0.0.0:8080"
    ), d.title
    assert "java (pid 4242)" in d.cause and "1 min 35 s" in d.cause, d.cause
    assert d.severity is Severity.PROBLEM
    assert any(n.startswith("unaccepted:") for n in e.notes)
    # Without the listener in view it still says what happened, without naming a process.
    alone = explain(closed[1], host=HOST, now=NOW, thresholds=th)
    (d,) = alone.diagnoses
    assert "1 connection(s)" in d.title and "the listening application" in d.cause
    # Too young: nothing yet (a client may close just before a fast accept()).
    assert codes(explain(closed[2], host=HOST, now=NOW, others=everyone, thresholds=th)) == set()
    # Waiting, not closed: the explanation says so, and no process is blamed.
    w = explain(queued[0], host=HOST, now=NOW, others=everyone, thresholds=th)
    assert codes(w) == set() and any(n.startswith("unaccepted:") for n in w.notes)
    assert w.what_next.startswith("It waits in the listener's accept queue")
    e = explain(closed[0], host=HOST, now=NOW, others=everyone, thresholds=th)
    assert "reads what the client sent, then end-of-file" in e.what_next, e.what_next


def test_a_listener_tells_its_accept_queue_apart_from_what_it_accepted() -> None:
    th = DiagnosisThresholds(tags=TagThresholds(lingering_s=30))
    lst, closed, queued, taken = _queue(closed_ages=(95, 40, 5), waiting=2, accepted=4)
    e = explain(lst, host=HOST, now=NOW, others=[lst, *closed, *queued, *taken], thresholds=th)
    text = " ".join(e.notes)
    assert "4 established connection(s) the application has accepted" in text, text
    assert "5 waiting in the accept queue" in text, text  # 2 ESTABLISHED + 3 CLOSE_WAIT
    (d,) = [d for d in e.diagnoses if d.code == "closed_in_accept_queue"]
    assert d.title.startswith("2 connection(s)") and "java (pid 4242)" in d.cause


def test_population_counts_closed_queued_connections_per_listener_and_no_leak() -> None:
    th = DiagnosisThresholds(tags=TagThresholds(lingering_s=30))
    lst, closed, queued, taken = _queue(closed_ages=(95, 40, 5), waiting=2, accepted=1)
    leaked = conn(rec(S.CLOSE_WAIT, remote=("127.0.0.1", 61000), recv_q=1), age=50)
    everyone = [lst, *closed, *queued, *taken, leaked]
    found = diagnose_population(everyone, HOST, now=NOW, thresholds=th)
    assert sorted(d.code for d in found) == ["close_wait_leak", "closed_in_accept_queue"]
    (in_queue,) = [d for d in found if d.code == "closed_in_accept_queue"]
    assert in_queue.title.startswith("2 connection(s)") and "1 min 35 s" in in_queue.cause
    # `f` shows the closed ones in that listener's queue (with the young one: a filter has
    # no age), not those still open there.
    assert shown_by(in_queue, everyone) == closed
    (leak,) = [d for d in found if d.code == "close_wait_leak"]
    assert leak.title == "1 CLOSE_WAIT leaked by java (pid 4242)", leak.title
    zh = diagnose_population(everyone, HOST, "zh", now=NOW, thresholds=th)
    assert any("全连接队列" in d.title for d in zh)


def test_a_queued_connection_that_is_gone_is_explained_as_gone() -> None:
    """Reset while it waited, or its listener closed: its last sighting still has no inode,
    but it waits for nothing any more."""
    for state in (S.ESTABLISHED, S.CLOSE_WAIT):
        gone = conn(rec(state, inode=0, recv_q=1), process=None, gone=True, age=100)
        e = explain(gone, host=HOST, now=NOW)
        assert "accept queue" not in e.what_next and codes(e) == set(), e.what_next
        assert e.path[-1] is S.CLOSED


def test_a_queued_connection_belongs_to_one_listener() -> None:
    """nginx-style dual stack (0.0.0.0:443 and [::]:443, IPv6 only) with a listener on one
    address too: each queued connection counts once, for the listener whose queue it is in
    (the one bound to its very address, else its family's wildcard), the same in the
    explanation and the host-wide findings."""
    th = DiagnosisThresholds(tags=TagThresholds(lingering_s=30))

    def listener(address: str) -> Connection:
        r = rec(S.LISTEN, local=(address, 443), remote=("0.0.0.0", 0), send_q=128)
        return conn(r, process=JAVA)

    def queued(local: str, port: int) -> Connection:
        r = rec(S.CLOSE_WAIT, local=(local, 443), remote=("198.51.100.7", port), inode=0)
        return replace(conn(r, process=None, age=60), tags=classify(r))

    any4, any6, one = listener("0.0.0.0"), listener("::"), listener("10.0.0.5")
    v4 = [queued("10.0.0.9", 50001), queued("10.0.0.9", 50002)]  # to 0.0.0.0 only
    v6 = [queued("2001:db8::5", 50003)]  # to :: only
    mapped = [queued("::ffff:10.0.0.9", 50004)]  # a v4 client of a dual-stack ::
    exact = [queued("10.0.0.5", 50005)]  # to 10.0.0.5, not to the wildcard
    everyone = [any4, any6, one, *v4, *v6, *mapped, *exact]
    for order in (everyone, everyone[::-1]):
        found = diagnose_population(order, HOST, now=NOW, thresholds=th)
        titles = sorted(d.title for d in found if d.code == "closed_in_accept_queue")
        assert titles == [
            "1 connection(s) closed by their clients in the accept queue of 10.0.0.5:443",
            "2 connection(s) closed by their clients in the accept queue of 0.0.0.0:443",
            "2 connection(s) closed by their clients in the accept queue of [::]:443",
        ], titles
        for child, bound in (
            (v4[0], "0.0.0.0:443"),
            (mapped[0], "[::]:443"),
            (exact[0], "10.0.0.5:443"),
        ):
            (d,) = explain(child, host=HOST, now=NOW, others=order, thresholds=th).diagnoses
            assert d.title.endswith(f"accept queue of {bound}"), (child, d.title)
        for lst, count in ((any4, 2), (any6, 2), (one, 1)):
            e = explain(lst, host=HOST, now=NOW, others=order, thresholds=th)
            (d,) = [d for d in e.diagnoses if d.code == "closed_in_accept_queue"]
            assert d.title.startswith(f"{count} connection(s)"), (lst, d.title)


def test_syn_sent_stuck() -> None:
    stuck = conn(rec(S.SYN_SENT, timer=Timer(TimerName.RETRANSMIT, 2000, 1)), age=1)
    assert codes(explain(stuck, host=HOST, now=NOW)) == {"syn_sent_stuck"}
    slow = conn(rec(S.SYN_SENT, timer=Timer(TimerName.RETRANSMIT, 900, 0)), age=4)
    assert codes(explain(slow, host=HOST, now=NOW)) == {"syn_sent_stuck"}
    fresh = conn(rec(S.SYN_SENT, timer=Timer(TimerName.RETRANSMIT, 900, 0)), age=0.5)
    assert codes(explain(fresh, host=HOST, now=NOW)) == set()


def test_dead_peer() -> None:
    dead = conn(rec(S.ESTABLISHED, raw=tcp_info(retransmits=4, backoff=4, unacked=3)))
    e = explain(dead, host=HOST, now=NOW)
    assert codes(e) == {"dead_peer"}
    assert "retransmits=4" in e.diagnoses[0].cause
    assert Tag.HALF_OPEN.value in " ".join(e.notes)
    healthy = conn(rec(S.ESTABLISHED, raw=tcp_info(retransmits=1, unacked=3)))
    assert codes(explain(healthy, host=HOST, now=NOW)) == set()


def test_listener_diagnoses() -> None:
    def listen(address: str, recv_q: int = 0, send_q: int = 10) -> set[str]:
        c = conn(
            rec(S.LISTEN, local=(address, 8080), remote=("*", 0), recv_q=recv_q, send_q=send_q)
        )
        return codes(explain(c, host=HOST, now=NOW))

    assert listen("127.0.0.1") == {"loopback_only_listener"}
    assert listen("::1") == {"loopback_only_listener"}
    assert listen("::ffff:127.0.0.1") == {"loopback_only_listener"}
    assert listen("0.0.0.0") == set()
    assert listen("::") == set()
    assert listen("192.0.2.1") == set()
    assert listen("0.0.0.0", recv_q=9) == {"accept_queue_overflow"}
    assert listen("0.0.0.0", recv_q=5) == set()


def test_listener_notes_bind_address_queue_and_children() -> None:
    lst = conn(rec(S.LISTEN, local=("127.0.0.1", 8080), remote=("0.0.0.0", 0), send_q=4096))
    kids = [conn(rec(S.SYN_RECV, remote=("127.0.0.1", 40000 + i), inode=0)) for i in range(20)] + [
        conn(rec(S.ESTABLISHED, remote=("127.0.0.1", 41000 + i))) for i in range(3)
    ]
    e = explain(lst, host=HOST, now=NOW, others=[lst, *kids])
    text = " ".join(e.notes)
    assert "connection refused" in text and "0.0.0.0" in text
    assert "20 handshake(s)" in text and "3 established" in text
    th = DiagnosisThresholds(syn_recv_min=16, syn_recv_ratio=0.0)
    assert "syn_recv_buildup" in codes(explain(lst, host=HOST, now=NOW, others=kids, thresholds=th))
    th = DiagnosisThresholds(syn_recv_min=21, syn_recv_ratio=0.0)
    assert "syn_recv_buildup" not in codes(
        explain(lst, host=HOST, now=NOW, others=kids, thresholds=th)
    )


def test_a_listener_counts_only_live_connections_on_its_own_address_and_port() -> None:
    def listener(address: str) -> Connection:
        return conn(rec(S.LISTEN, local=(address, 8080), remote=("0.0.0.0", 0), send_q=128))

    def child(state: S, local: tuple[str, int], *, gone: bool = False) -> Connection:
        return conn(rec(state, local=local, remote=("10.0.0.7", 51000)), gone=gone)

    mine = ("10.0.0.1", 8080)
    others = [
        child(S.SYN_RECV, mine),
        child(S.SYN_RECV, mine),
        child(S.ESTABLISHED, mine),
        child(S.ESTABLISHED, mine, gone=True),  # gone: not counted
        child(S.SYN_RECV, ("10.0.0.2", 8080)),  # another address
        child(S.ESTABLISHED, ("10.0.0.1", 8081)),  # another port
        listener("10.0.0.2"),  # a listener is not a child
    ]
    specific = listener("10.0.0.1")
    text = " ".join(explain(specific, host=HOST, now=NOW, others=[specific, *others]).notes)
    assert "2 handshake(s)" in text and "1 established" in text
    anywhere = listener("0.0.0.0")
    text = " ".join(explain(anywhere, host=HOST, now=NOW, others=[anywhere, *others]).notes)
    assert "3 handshake(s)" in text and "1 established" in text


def test_destination_counts_skip_the_connection_itself_gone_ones_and_other_ports() -> None:
    host = HostSettings(ip_local_port_range=(40000, 40009))
    th = DiagnosisThresholds(time_wait_per_destination=10_000, port_pressure_ratio=0.5)
    conns = [_outgoing(S.ESTABLISHED, 40000 + i) for i in range(4)]
    me = conns[0]
    near_misses = [
        replace(_outgoing(S.ESTABLISHED, 40005), gone_at=NOW),  # gone
        _outgoing(S.ESTABLISHED, 40006, ("10.0.0.9", 81)),  # same address, other port
        _outgoing(S.ESTABLISHED, 40007, ("10.0.0.8", 80)),  # same port, other address
    ]
    # Itself and 4 others would reach 5 of 10 ports; itself and the 3 others of the same
    # destination reach only 4 (the connection is counted once however often it is given).
    e = explain(me, host=host, now=NOW, others=[me, me, *conns[1:], *near_misses], thresholds=th)
    assert "ephemeral_port_pressure" not in codes(e)
    fifth = _outgoing(S.TIME_WAIT, 40004)
    e = explain(me, host=host, now=NOW, others=[*conns, fifth, *near_misses], thresholds=th)
    assert "ephemeral_port_pressure" in codes(e)


def test_orphan_lingering() -> None:
    th = DiagnosisThresholds(tags=TagThresholds(lingering_s=30))
    orphan = conn(rec(S.FIN_WAIT2, inode=0), age=45)
    e = explain(orphan, host=HOST, now=NOW, thresholds=th)
    assert codes(e) == {"orphan_lingering"}
    held = conn(rec(S.FIN_WAIT2, inode=5), age=45)
    assert codes(explain(held, host=HOST, now=NOW, thresholds=th)) == set()
    young = conn(rec(S.FIN_WAIT2, inode=0), age=10)
    assert codes(explain(young, host=HOST, now=NOW, thresholds=th)) == set()


# ---------------------------------------------------------------------------------------
# Host-wide findings


def _outgoing(state: S, port: int, dest: tuple[str, int] = ("10.0.0.9", 80)) -> Connection:
    return conn(rec(state, local=("10.0.0.1", port), remote=dest, inode=0), process=None)


def shown_by(finding: Diagnosis, conns: list[Connection]) -> list[Connection]:
    """The connections the finding's filter shows (what `f` filters the table to)."""
    shows = parse_filter(finding.shows)
    return [c for c in conns if shows.matches(c)]


def test_time_wait_buildup_per_destination() -> None:
    th = DiagnosisThresholds(time_wait_per_destination=3, port_pressure_ratio=1.1)
    conns = [_outgoing(S.TIME_WAIT, 40000 + i) for i in range(3)]
    conns += [_outgoing(S.TIME_WAIT, 41000 + i, ("10.0.0.8", 80)) for i in range(2)]
    found = diagnose_population(conns, HOST, now=NOW, thresholds=th)
    assert [d.code for d in found] == ["time_wait_buildup"]
    assert "10.0.0.9:80" in found[0].title and "3" in found[0].title
    assert "60" in found[0].cause
    assert shown_by(found[0], conns) == conns[:3]
    assert diagnose_population(conns[:2], HOST, now=NOW, thresholds=th) == ()
    assert "TIME_WAIT" in diagnose_population(conns, HOST, "zh", now=NOW, thresholds=th)[0].title


def test_ephemeral_port_pressure() -> None:
    host = HostSettings(ip_local_port_range=(40000, 40009))
    th = DiagnosisThresholds(time_wait_per_destination=10_000, port_pressure_ratio=0.5)
    conns = [_outgoing(S.TIME_WAIT, 40000 + i) for i in range(3)]
    conns += [_outgoing(S.ESTABLISHED, 40003 + i) for i in range(2)]
    found = diagnose_population(conns, host, now=NOW, thresholds=th)
    assert [d.code for d in found] == ["ephemeral_port_pressure"]
    assert "50%" in found[0].title and "40000" in found[0].cause
    elsewhere = _outgoing(S.ESTABLISHED, 40008, ("10.0.0.8", 80))
    assert shown_by(found[0], [*conns, elsewhere]) == conns
    assert diagnose_population(conns[:4], host, now=NOW, thresholds=th) == ()
    # The single-connection view sees the same pressure when given the others.
    e = explain(conns[-1], host=host, now=NOW, others=conns, thresholds=th)
    assert "ephemeral_port_pressure" in codes(e)


def test_close_wait_leaks_grouped_per_process() -> None:
    th = DiagnosisThresholds(tags=TagThresholds(lingering_s=30))
    other = ProcessInfo(99, "nginx", ("nginx",), "www")
    conns = [conn(rec(S.CLOSE_WAIT, recv_q=1), age=40 + i) for i in range(4)]
    conns += [conn(rec(S.CLOSE_WAIT, recv_q=1), age=35, process=other)]
    conns += [conn(rec(S.CLOSE_WAIT, recv_q=1), age=5, process=other)]  # too young
    found = diagnose_population(conns, HOST, now=NOW, thresholds=th)
    assert [d.code for d in found] == ["close_wait_leak", "close_wait_leak"]
    assert found[0].title.endswith("java (pid 4242)") and "4 connection(s)" in found[0].cause
    assert "43 s" in found[0].cause  # the oldest
    assert "nginx (pid 99)" in found[1].title and "1 connection(s)" in found[1].cause
    assert shown_by(found[0], conns) == conns[:4]
    assert shown_by(found[1], conns) == conns[4:]  # with the young one: a filter has no age


def test_population_listener_findings_and_gone_ignored() -> None:
    lst = conn(rec(S.LISTEN, local=("0.0.0.0", 8080), remote=("0.0.0.0", 0), recv_q=10, send_q=10))
    syns = [
        conn(rec(S.SYN_RECV, remote=("10.1.0.1", 30000 + i), inode=0), process=None)
        for i in range(20)
    ]
    th = DiagnosisThresholds(syn_recv_min=16, syn_recv_ratio=0.0)
    found = diagnose_population([lst, *syns], HOST, now=NOW, thresholds=th)
    assert {d.code for d in found} == {"accept_queue_overflow", "syn_recv_buildup"}
    assert found[0].severity is Severity.PROBLEM  # a full queue comes first
    elsewhere = conn(rec(S.ESTABLISHED, local=("127.0.0.1", 9090)))
    assert shown_by(found[0], [lst, *syns, elsewhere]) == [lst, *syns]
    assert shown_by(found[1], [lst, *syns, elsewhere]) == syns
    # A listener on one address: its finding leaves out the same port on other addresses.
    bound = conn(rec(S.LISTEN, local=("10.0.0.1", 8080), remote=("0.0.0.0", 0), recv_q=9, send_q=9))
    other_address = conn(rec(S.ESTABLISHED, local=("10.0.0.2", 8080)))
    (full,) = diagnose_population([bound], HOST, now=NOW, thresholds=th)
    assert shown_by(full, [bound, other_address]) == [bound]
    gone = [replace(c, gone_at=NOW) for c in syns]
    found = diagnose_population([lst, *gone], HOST, now=NOW, thresholds=th)
    assert {d.code for d in found} == {"accept_queue_overflow"}


# ---------------------------------------------------------------------------------------
# Against the kernel: what the explanations claim is what a real namespace does.

KERNEL_SCENARIO = r"""
import errno
l = listener(address="127.0.0.1")
port = l.getsockname()[1]
c, a = pair(l)
c.close()  # the client closes first: it is an orphan in FIN_WAIT2, the server in CLOSE_WAIT
other = socket.socket()
refused = other.connect_ex(("10.77.0.1", port)) == errno.ECONNREFUSED
stuck = keep(socket.socket())
stuck.setblocking(False)
stuck.connect_ex(("10.77.0.2", 80))
report("ready", port=port, refused=refused)
command()
"""


def _kernel_conn(record: SocketRecord, now: float) -> Connection:
    return Connection(
        id=hex(record.cookie or 0),
        record=record,
        process=None,
        first_seen=now,
        state_since=None,
        history=(),
        tags=frozenset(),
    )


@requires_root
def test_explanations_match_a_real_namespace() -> None:
    with private_netns() as ns:
        run_ip("-n", ns, "addr", "add", "10.77.0.1/32", "dev", "lo")
        add_silent_route(ns)
        set_sysctl(ns, "net.ipv4.tcp_fin_timeout", "13")
        host = read_host_settings(ns)
        with run_scenario(ns, KERNEL_SCENARIO) as scenario:
            info = scenario.expect("ready")
            # The kernel refused a client on the other address, as the listener note says.
            assert info["refused"] is True
            source = NetlinkSource(netns=ns)
            try:

                def retransmitted() -> list[SocketRecord] | None:
                    records = source.dump()
                    for r in records:
                        if r.state is S.SYN_SENT and r.timer is not None and r.timer.retrans:
                            return records
                    return None

                records = wait_until(retransmitted, timeout=5, what="a retransmitted SYN")
            finally:
                source.close()
    port = info["port"]
    now = NOW
    by_state = {r.state: r for r in records if port in (r.local.port, r.remote.port)}
    by_state.update({r.state: r for r in records if r.state is S.SYN_SENT})
    conns = [_kernel_conn(r, now) for r in by_state.values()]

    listen = explain(_kernel_conn(by_state[S.LISTEN], now), host=host, now=now, others=conns)
    assert codes(listen) == {"loopback_only_listener"}
    assert any("connection refused" in n for n in listen.notes)

    close_wait = by_state[S.CLOSE_WAIT]
    assert close_wait.recv_q == 1  # the FIN counts as one byte
    e = explain(_kernel_conn(close_wait, now), host=host, now=now, others=conns)
    assert any("Recv-Q 1" in n for n in e.notes)
    assert e.who_closed_first is not None and e.who_closed_first.startswith("The peer")
    assert e.path == (S.CLOSED, S.SYN_RECV, S.ESTABLISHED, S.CLOSE_WAIT)

    fin_wait2 = by_state[S.FIN_WAIT2]
    assert fin_wait2.inode == 0
    e = explain(_kernel_conn(fin_wait2, now), host=host, now=now, others=conns)
    assert "tcp_fin_timeout = 13" in e.what_next
    assert e.who_closed_first is not None and e.who_closed_first.startswith("This end")

    syn_sent = explain(_kernel_conn(by_state[S.SYN_SENT], now), host=host, now=now)
    assert codes(syn_sent) == {"syn_sent_stuck"}


ACCEPT_QUEUE_SCENARIO = r"""
import struct
l = listener(address="127.0.0.1", backlog=8)
port = l.getsockname()[1]
waiting = [keep(socket.create_connection(("127.0.0.1", port))) for _ in range(2)]
gave_up = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
gave_up_ports = [c.getsockname()[1] for c in gave_up]
for c in gave_up:
    c.close()
reset = socket.create_connection(("127.0.0.1", port))
reset.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
reset.close()  # SO_LINGER 0: an [R], not a [F.]
report("ready", port=port, waiting=[c.getsockname()[1] for c in waiting], gave_up=gave_up_ports)
command()
a, peer = l.accept()
keep(a)
report("accepted", peer=peer[1])
command()
"""


@requires_root
def test_connections_in_a_real_accept_queue() -> None:
    """A listener that does not accept: ss and tcpwatch agree on which connections wait
    there; those their clients closed are no leak; one reset while it waited
    is counted by the kernel but listed nowhere, and the listener says so; one accept()
    gives the first its owner."""
    th = DiagnosisThresholds(tags=TagThresholds(lingering_s=0))
    with private_netns() as ns, run_scenario(ns, ACCEPT_QUEUE_SCENARIO) as scenario:
        info = scenario.expect("ready")
        port = info["port"]

        def server_side(rows: list[SsSocket]) -> dict[int, SsSocket]:
            return {r.remote[1]: r for r in rows if r.local[1] == port and r.state != "LISTEN"}

        def settled() -> list[SsSocket] | None:
            rows = ss(ns)
            states = {p: r.state for p, r in server_side(rows).items()}
            want = {p: "ESTABLISHED" for p in info["waiting"]}
            want.update({p: "CLOSE_WAIT" for p in info["gave_up"]})
            return rows if states == want else None

        rows = wait_until(settled, what="the queued connections in ss")
        (listen,) = [r for r in rows if r.state == "LISTEN"]
        # The kernel's accept queue still counts the one reset while it waited, which it
        # no longer lists.
        assert listen.recv_q == 6
        assert all(r.inode == 0 for r in server_side(rows).values())

        poller = open_poller(netns=ns)
        tracker = Tracker()
        try:
            view = tracker.update(poller.poll()).connections.values()
            mine = {c.record.remote.port: c for c in view if c.record.local.port == port}
            queued = {p for p, c in mine.items() if Tag.UNACCEPTED in c.tags}
            assert queued == set(info["waiting"]) | set(info["gave_up"])
            assert all(mine[p].process is None for p in queued)
            found = diagnose_population(view, HOST, thresholds=th)
            assert [d.code for d in found] == ["closed_in_accept_queue"], found
            assert found[0].title == (
                f"3 connection(s) closed by their clients in the accept queue of 127.0.0.1:{port}"
            )
            assert f"(pid {scenario.pid})" in found[0].cause
            shown = parse_filter(found[0].shows)
            assert {c.record.remote.port for c in view if shown.matches(c)} == set(info["gave_up"])
            listener_text = explain(
                next(c for c in view if c.record.state is S.LISTEN), host=HOST, others=view
            )
            assert any("5 waiting in the accept queue" in n for n in listener_text.notes)
            assert any(
                "The accept queue holds 6, 1 more than listed" in n for n in listener_text.notes
            )

            scenario.send("accept")
            first = scenario.expect("accepted")["peer"]
            assert first == info["waiting"][0]  # the queue is first in, first out

            def owned() -> Connection | None:
                view = tracker.update(poller.poll()).connections
                taken = next(
                    c
                    for c in view.values()
                    if c.record.local.port == port and c.record.remote.port == first
                )
                return taken if taken.process is not None else None

            taken = wait_until(owned, what="the accepted connection's owner")
            assert taken.process.pid == scenario.pid
            assert Tag.UNACCEPTED not in taken.tags
        finally:
            poller.close()


def test_a_former_owner_is_named_as_such_and_a_leak_names_the_current_owner() -> None:
    """TIME_WAIT has no process (inode 0); the text says whose it was. A CLOSE_WAIT leak
    is still held: it names the process holding it now."""
    nginx = ProcessInfo(1201, "nginx", ("nginx",), "www")
    timer = Timer(TimerName.TIMEWAIT, 50_000, 0)
    local, remote = ("127.0.0.1", 40000), ("127.0.0.1", 8080)
    path = (S.ESTABLISHED, S.FIN_WAIT1, S.FIN_WAIT2, S.TIME_WAIT)
    tw = conn(rec(S.TIME_WAIT, local=local, remote=remote, timer=timer, inode=0), path=path)
    tw = replace(tw, process=None, former_process=nginx)
    e = explain(tw, host=HOST, now=NOW)
    assert e.who_closed_first is not None
    assert "no process now, formerly nginx (pid 1201)" in e.who_closed_first
    th = DiagnosisThresholds(tags=TagThresholds(lingering_s=30))
    leak = replace(conn(rec(S.CLOSE_WAIT, recv_q=1), age=40), former_process=nginx)
    found = diagnose_population([leak, tw], HOST, now=NOW, thresholds=th)
    titles = [d.title for d in found if d.code == "close_wait_leak"]
    assert titles == ["1 CLOSE_WAIT leaked by java (pid 4242)"]

"""tcpwatch's story of each connection against the kernel's own log of state changes.

A scenario runs in a private network namespace: connections older than tcpwatch (open,
half-closed, in TIME_WAIT), active and passive closes with states held for various times,
a half-close with data flowing, resets (SO_LINGER 0, and closing with unread data),
refused connects, a churn of short connections, a slow-accepting listener, keepalive.
Meanwhile `tcpwatch watch --ndjson --interval 0.2 --netns NS` runs as a user would run
it, and the tracepoint `sock:inet_sock_set_state` (a private tracefs instance, see
tests/tracefs.py for how its events map to tcpwatch's states) records what really
happened. Each connection's life as tcpwatch tells it (its events' paths, concatenated)
is compared with the kernel's.
`pytest -s` prints the measured figures.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

import pytest

from tests.netns import private_netns, requires_root, run_scenario, set_sysctl
from tests.tracefs import Life, skip_reason, trace_tcp

INTERVAL = 0.2
LOW, HIGH = 47200, 47300
SERVER = "127.77.0.1"
MARKER_PORT = 47290

_SKIP = skip_reason()
requires_tracefs = pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")

SCENARIO = r"""
import struct, threading, time
A = "127.77.0.1"
H = 0.6  # three polls: long enough for a state to be seen
def srv(port, backlog=64):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((A, port))
    s.listen(backlog)
    return keep(s)
ports = dict(active=47201, passive=47202, half=47203, reset=47204, unread=47205,
             churn=47206, keepalive=47207, slow=47208, simultaneous=47210)
L = {name: srv(port, 1 if name == "slow" else 64) for name, port in ports.items()}
def connect_to(lsock):
    c = socket.create_connection(lsock.getsockname())
    a, _ = lsock.accept()
    return c, a
def connect(name):
    return connect_to(L[name])
HOLDS = (0.05, 0.15, 0.3, 0.6)  # some states are seen by a poll, some must be inferred
def active():
    for i in range(12):
        c, a = connect("active")
        time.sleep(H); c.close(); time.sleep(HOLDS[i % 4]); a.close()
def passive():
    for i in range(12):
        c, a = connect("passive")
        time.sleep(HOLDS[i % 4]); a.close(); time.sleep(HOLDS[(i + 1) % 4]); c.close()
def half():
    for _ in range(3):
        c, a = connect("half")
        time.sleep(H)
        c.shutdown(socket.SHUT_WR)
        for _ in range(8):
            a.sendall(b"x" * 1000)
            c.recv(65536)
            time.sleep(0.1)
        a.close()
        time.sleep(H)
        c.close()
def reset():
    for _ in range(4):
        c, a = connect("reset")
        time.sleep(H)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
        time.sleep(H)
        a.close()
def unread():
    for _ in range(3):
        c, a = connect("unread")
        c.sendall(b"never read")
        time.sleep(H)
        a.close()  # unread data: the kernel sends a reset
        time.sleep(H)
        c.close()
def refused():
    for _ in range(5):
        try:
            socket.create_connection((A, 47299))
        except ConnectionRefusedError:
            pass
        time.sleep(0.1)
def churn():
    for _ in range(200):
        c, a = connect("churn")
        c.sendall(b"q"); a.recv(1); a.sendall(b"r"); c.recv(1)
        c.close(); a.close()
        time.sleep(0.01)
def simultaneous():
    # Both ends close at once from two threads: sometimes the FINs cross (CLOSING).
    for _ in range(10):
        c, a = connect("simultaneous")
        time.sleep(0.1)
        barrier = threading.Barrier(2)
        def close(sock):
            barrier.wait()
            sock.close()
        both = [threading.Thread(target=close, args=(x,)) for x in (c, a)]
        for t in both: t.start()
        for t in both: t.join()
def keepalive():
    c, a = connect("keepalive")
    c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
    time.sleep(2.5)
    c.close(); time.sleep(H); a.close()
def slow():
    clients = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex((A, ports["slow"]))
        clients.append(c)
    time.sleep(1.2)
    accepted = []
    L["slow"].settimeout(10)
    for _ in clients:
        accepted.append(L["slow"].accept()[0])
    time.sleep(H)
    for a in accepted:
        a.close()
    time.sleep(H)
    for c in clients:
        c.close()
# Connections older than tcpwatch: its first poll finds them mid-life.
pre = srv(47209)
old_open = [connect_to(pre) for _ in range(3)]
old_half = [connect_to(pre) for _ in range(2)]
for c, a in old_half:
    c.shutdown(socket.SHUT_WR)  # client FIN_WAIT2, server CLOSE_WAIT
for _ in range(2):
    c, a = connect_to(pre)
    c.close(); a.close()  # client TIME_WAIT
def older():
    time.sleep(H)
    for c, a in old_open:
        a.close(); time.sleep(0.1); c.close()
    for c, a in old_half:
        a.close(); time.sleep(0.1); c.close()
report("ready")
command()
threads = [threading.Thread(target=f) for f in (active, passive, half, reset, unread, refused,
                                                  churn, keepalive, slow, older, simultaneous)]
for t in threads: t.start()
for t in threads: t.join()
marker = keep(srv(47290))
keep(socket.create_connection((A, 47290)))
report("done")
command()
"""


@dataclass
class Ours:
    """One connection as tcpwatch's events tell it."""

    id: str
    tuple: tuple[str, int, str, int]
    path: list[str]
    observed: set[str]
    first_at: str


def _ours(events: list[dict]) -> list[Ours]:
    by_id: dict[str, Ours] = {}
    for e in events:
        key = (
            e["local"]["address"],
            e["local"]["port"],
            e["remote"]["address"],
            e["remote"]["port"],
        )
        conn = by_id.get(e["id"])
        if conn is None:
            assert e["from"] is None, e
            conn = by_id[e["id"]] = Ours(e["id"], key, list(e["path"]), set(), e["at"])
        else:
            assert e["path"][0] == e["from"] == conn.path[-1], e
            conn.path.extend(e["path"][1:])
        # Observed: the event's own sighting; a gone event's CLOSED is the absence itself.
        if e["kind"] != "gone" or e["from"] is not None:
            conn.observed.add(e["to"])
        if e["from"] is not None:
            conn.observed.add(e["from"])
    return list(by_id.values())


class _Reader:
    """Reads `tcpwatch watch` output as it comes (a full pipe would stall the polls)."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.events: list[dict] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.events.append(json.loads(line))
                self._changed.notify_all()

    def wait_for(self, condition, timeout: float = 60) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: any(map(condition, self.events)), timeout):
                raise AssertionError("tcpwatch watch did not report in time")

    def join(self) -> None:
        self._thread.join(timeout=20)


def _run(ns: str) -> tuple[list[dict], list[Life], float]:
    with trace_tcp(LOW, HIGH) as trace, run_scenario(ns, SCENARIO) as scenario:
        scenario.expect("ready")
        watch = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tcpwatch",
                "watch",
                "--ndjson",
                "--netns",
                ns,
                "--interval",
                str(INTERVAL),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        reader = _Reader(watch)
        try:
            reader.wait_for(lambda e: e["local"]["port"] == 47208 and e["to"] == "LISTEN")
            scenario.send("go")
            scenario.expect("done", timeout=60)
            # A poll that saw the marker connection came after everything before it.
            reader.wait_for(lambda e: e["remote"]["port"] == MARKER_PORT)
        finally:
            watch.send_signal(signal.SIGINT)
            _out, err = watch.communicate(timeout=20)
            reader.join()
        assert watch.returncode == 0, err
        window_end = time.monotonic()
        assert trace.lost() == 0, "the trace buffer overflowed"
        lives = trace.lives()
    return reader.events, lives, window_end


@requires_root
@requires_tracefs
def test_paths_match_the_kernel() -> None:
    with private_netns() as ns:
        set_sysctl(ns, "net.ipv4.tcp_tw_reuse", "0")  # one life per 4-tuple
        events, lives, window_end = _run(ns)
    ours_by_tuple: dict[tuple, list[Ours]] = defaultdict(list)
    for conn in _ours(events):
        ours_by_tuple[conn.tuple].append(conn)
    connections = [
        life
        for life in lives
        if not life.listener
        and life.tuple is not None
        and SERVER in (life.tuple[0], life.tuple[2])
        and MARKER_PORT not in (life.tuple[1], life.tuple[3])
    ]
    long_lived = exact_long = tracked_short = exact_short = 0
    false_observed: list[str] = []
    missed: list[str] = []
    wrong: list[str] = []
    for life in connections:
        lived = (life.end if life.end is not None else window_end) - life.start
        matches = ours_by_tuple.get(life.tuple, [])
        ours = matches.pop(0) if matches else None
        kernel_states = set(life.states) | {"CLOSED"}
        if ours is not None:
            extra = ours.observed - kernel_states
            if extra:
                false_observed.append(f"{life.tuple}: observed {extra}, kernel {life.states}")
        if lived >= 2 * INTERVAL:
            long_lived += 1
            if ours is None:
                missed.append(f"{life.tuple} lived {lived:.2f}s: {life.states}")
            elif ours.path == life.states:
                exact_long += 1
            else:
                wrong.append(f"{life.tuple}: ours {ours.path} kernel {life.states}")
        elif ours is not None:
            tracked_short += 1
            exact_short += ours.path == life.states
            if ours.path != life.states:
                wrong.append(f"(short) {life.tuple}: ours {ours.path} kernel {life.states}")
    short = len(connections) - long_lived
    print(
        f"\nkernel lives: {len(connections)}; lived >= 2 intervals: {long_lived}, exact "
        f"{exact_long} ({100.0 * exact_long / max(1, long_lived):.1f} %); shorter: {short}, "
        f"tracked {tracked_short}, exact {exact_short}"
    )
    for line in wrong[:40]:
        print("inexact:", line)
    assert long_lived >= 100, "the scenario should produce a few hundred connections"
    assert not missed, missed
    assert not false_observed, false_observed
    # Most connections too short for any poll are still reported, from destroy notifications.
    assert tracked_short >= 0.5 * short
    assert exact_short >= 0.95 * tracked_short
    assert exact_long >= 0.95 * long_lived, [w for w in wrong if not w.startswith("(short)")]

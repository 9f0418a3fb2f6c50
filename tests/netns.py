"""Helpers to build real sockets in a private network namespace and look at them with `ss`.

Typical use in a test::

    from tests.netns import private_netns, requires_root, run_scenario, wait_until

    @requires_root
    def test_something():
        with private_netns() as ns, run_scenario(ns, CODE) as scenario:
            info = scenario.expect("ready")      # waits for report("ready", ...)
            ...                                  # look at the sockets (NetlinkSource(netns=ns), ss)
            scenario.send("close")               # the scenario reads it with command()
            scenario.expect("closed")

A scenario is Python source run as `ip netns exec NS python -c ...`, so every socket it
makes lives in the namespace and all traffic stays on that namespace's loopback. It gets
these helpers predefined: `report(event, **data)` (one JSON line to the test),
`command() -> str` (next line from the test, "" at EOF), `keep(*objs)` (keep sockets alive),
`listener(...)`, `pair(...)`, `fill(sock)` (send until the windows are full).
Synchronisation is by these messages or by polling a condition with a deadline
(`wait_until`), never by sleeping.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def _root_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "needs the ip tool (iproute2) to create network namespaces"
    return None


_SKIP_REASON = _root_skip_reason()
requires_root = pytest.mark.skipif(_SKIP_REASON is not None, reason=_SKIP_REASON or "")
"""Skip marker for tests that create network namespaces (root and `ip` needed)."""

_counter = itertools.count()


def run_ip(*args: str) -> str:
    """Run `ip ARGS...`; return stdout; raise with ip's own message on failure."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def netns_exec(ns: str, *argv: str, check: bool = True) -> str:
    """Run a command inside namespace `ns`; return its stdout."""
    done = subprocess.run(
        ["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} in {ns} failed: {done.stderr.strip()}")
    return done.stdout


def set_sysctl(ns: str, key: str, value: str) -> None:
    """Set a per-namespace sysctl (e.g. "net.ipv4.tcp_fin_timeout") inside `ns`."""
    netns_exec(ns, "sysctl", "-q", "-w", f"{key}={value}")


def kill_netns_processes(ns: str) -> None:
    """SIGKILL every process still running in `ns` (only tests' own children live there)."""
    pids = subprocess.run(
        ["ip", "netns", "pids", ns], capture_output=True, text=True, check=False
    ).stdout.split()
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


@contextmanager
def private_netns(*, prefix: str = "tcpwatch-test") -> Iterator[str]:
    """Create a namespace named `<prefix>-<pid>-<n>` with lo up; yield its name.

    On exit every process left in it is killed and the namespace is deleted, whatever
    happened in the body.
    """
    name = f"{prefix}-{os.getpid()}-{next(_counter)}"
    run_ip("netns", "add", name)
    try:
        run_ip("-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        kill_netns_processes(name)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


@pytest.fixture
def netns() -> Iterator[str]:
    """Pytest fixture form of `private_netns()` (skips without root)."""
    if _SKIP_REASON is not None:
        pytest.skip(_SKIP_REASON)
    with private_netns() as name:
        yield name


def add_silent_route(ns: str, address: str = "10.77.0.2") -> str:
    """Route `address` into `ns`'s loopback, where it is dropped; return the address.

    A connect() to it sends SYNs that loop back, are not local and are discarded (no
    forwarding), so the socket stays in SYN_SENT. Nothing leaves the namespace.
    """
    run_ip("-n", ns, "route", "add", f"{address}/32", "dev", "lo", "src", "127.0.0.1")
    return address


# Predefined in every scenario (see the module docstring).
SCENARIO_PRELUDE = r"""
import json as _json, os, socket, sys
_kept = []
def report(event, **data):
    sys.stdout.write(_json.dumps({"event": event, **data}) + "\n")
    sys.stdout.flush()
def command():
    return sys.stdin.readline().strip()
def keep(*objs):
    _kept.extend(objs)
    return objs[0] if len(objs) == 1 else objs
def listener(family=socket.AF_INET, address="127.0.0.1", port=0, backlog=16, v6only=True,
             rcvbuf=None, defer_accept=None):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if v6only else 0)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if defer_accept:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, defer_accept)
    s.bind((address, port))
    s.listen(backlog)
    return keep(s)
def fill(sock, byte=b"y"):
    # Send until the peer's receive window and this end's send buffer are full.
    sock.setblocking(False)
    try:
        while True:
            sock.send(byte * 65536)
    except BlockingIOError:
        pass
def pair(lsock, family=socket.AF_INET, address="127.0.0.1", sndbuf=None):
    c = socket.socket(family, socket.SOCK_STREAM)
    if sndbuf:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    c.connect((address, lsock.getsockname()[1]))
    a, _ = lsock.accept()
    keep(c, a)
    return c, a
"""


class ScenarioError(AssertionError):
    """The scenario died, timed out or reported something unexpected."""


class Scenario:
    """A running scenario process inside a namespace (see `run_scenario`)."""

    def __init__(self, ns: str, code: str, python: str = sys.executable) -> None:
        self.ns = ns
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", ns, python, "-c", SCENARIO_PRELUDE + code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._pending = b""

    @property
    def pid(self) -> int:
        """The scenario's process id (`ip netns exec` execs python, so it is the Popen pid)."""
        return self.process.pid

    def expect(self, event: str, timeout: float = 10.0) -> dict[str, Any]:
        """Wait for `report(event, ...)`; return its data. Other events are skipped."""
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        while True:
            while b"\n" in self._pending:
                line, self._pending = self._pending.split(b"\n", 1)
                message = json.loads(line)
                if message.pop("event") == event:
                    return message
            left = deadline - time.monotonic()
            if left <= 0:
                raise ScenarioError(f"scenario did not report {event!r} within {timeout} s")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.process.wait(timeout=5)
                    raise ScenarioError(
                        f"scenario exited ({self.process.returncode}) before {event!r}: "
                        f"{self.stderr_text()}"
                    )
                self._pending += chunk

    def send(self, line: str) -> None:
        """Send one command line; the scenario reads it with `command()`."""
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    def stderr_text(self) -> str:
        assert self.process.stderr is not None
        return self.process.stderr.read().decode(errors="replace").strip()

    def close(self) -> None:
        """Stop the scenario (its sockets close) and reap it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@contextmanager
def run_scenario(ns: str, code: str) -> Iterator[Scenario]:
    """Run scenario `code` inside `ns`; yield the Scenario; kill it on exit."""
    scenario = Scenario(ns, code)
    try:
        yield scenario
    finally:
        scenario.close()


def wait_until(
    condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> T:
    """Poll `condition()` until it returns something truthy; return it, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(interval)


@dataclass(frozen=True, slots=True)
class SsSocket:
    """One line of `ss -tanHoe[p]`, with addresses spelled the way tcpwatch spells them."""

    state: str  # tcpwatch's name (ESTABLISHED, SYN_RECV, ...)
    recv_q: int
    send_q: int
    local: tuple[str, int]
    remote: tuple[str, int]  # port 0 for ss's "*"
    timer: str | None  # retransmit, keepalive, timewait, persist
    timer_ms: int | None  # ss rounds: see timer_resolution_ms
    timer_resolution_ms: int | None  # ss prints "119min" (1 min), "59sec" (1 s) or "992ms"
    timer_retrans: int | None
    uid: int
    inode: int
    cookie: int | None
    pids: tuple[int, ...]  # from users:((...)) with -p


_SS_STATES = {
    "ESTAB": "ESTABLISHED",
    "SYN-SENT": "SYN_SENT",
    "SYN-RECV": "SYN_RECV",
    "FIN-WAIT-1": "FIN_WAIT1",
    "FIN-WAIT-2": "FIN_WAIT2",
    "TIME-WAIT": "TIME_WAIT",
    "UNCONN": "CLOSE",
    "CLOSE-WAIT": "CLOSE_WAIT",
    "LAST-ACK": "LAST_ACK",
    "LISTEN": "LISTEN",
    "CLOSING": "CLOSING",
}
_SS_TIMERS = {"on": "retransmit", "keepalive": "keepalive", "timewait": "timewait"}
_SS_TIMER = re.compile(r"timer:\((\w+),([^,]*),(\d+)\)")
_SS_DURATION = re.compile(r"^(?:(\d+)min)?(?:(\d+)(sec|\.))?(?:(\d+)ms)?$")


def _ss_ms(text: str) -> tuple[int, int]:
    """ss's timer text as (milliseconds, resolution of that spelling in milliseconds)."""
    match = _SS_DURATION.match(text)
    if match is None:
        raise ValueError(f"unexpected ss timer value {text!r}")
    minutes, secs, _sep, msecs = match.groups()
    value = (int(minutes or 0) * 60 + int(secs or 0)) * 1000 + int(msecs or 0)
    if minutes and int(minutes) > 9:
        return value, 60_000
    if minutes or (secs and int(secs) > 9) or _sep == "sec":
        return value, 1000
    return value, 1


def _ss_endpoint(text: str) -> tuple[str, int]:
    address, _, port = text.rpartition(":")
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    address = address.split("%", 1)[0]
    if address == "*":
        address = "::"  # ss spells a dual-stack IPv6 wildcard "*"
    return address, 0 if port == "*" else int(port)


def parse_ss(text: str) -> list[SsSocket]:
    """Parse `ss -tanHoe` (optionally with -p) output into SsSocket rows."""
    rows = []
    for line in text.splitlines():
        if not line.strip() or line[0].isspace():
            continue  # -i detail lines start with whitespace
        fields = line.split()
        state, recv_q, send_q, local, remote = fields[:5]
        rest = " ".join(fields[5:])
        timer = _SS_TIMER.search(rest)
        uid = re.search(r"\buid:(\d+)", rest)
        inode = re.search(r"\bino:(\d+)", rest)
        cookie = re.search(r"\bsk:([0-9a-f]+)", rest)
        timer_ms, resolution = _ss_ms(timer.group(2)) if timer else (None, None)
        rows.append(
            SsSocket(
                state=_SS_STATES[state],
                recv_q=int(recv_q),
                send_q=int(send_q),
                local=_ss_endpoint(local),
                remote=_ss_endpoint(remote),
                timer=_SS_TIMERS.get(timer.group(1), timer.group(1)) if timer else None,
                timer_ms=timer_ms,
                timer_resolution_ms=resolution,
                timer_retrans=int(timer.group(3)) if timer else None,
                uid=int(uid.group(1)) if uid else 0,
                inode=int(inode.group(1)) if inode else 0,
                cookie=int(cookie.group(1), 16) if cookie else None,
                pids=tuple(int(p) for p in re.findall(r"pid=(\d+)", rest)),
            )
        )
    return rows


def ss(ns: str, options: str = "-tanHoe") -> list[SsSocket]:
    """The sockets `ss` sees in `ns` right now."""
    return parse_ss(netns_exec(ns, "ss", options))


# A namespace full of TCP sockets in every state that can be held still on loopback
# (all but CLOSE and CLOSING), IPv4 and IPv6, on fixed ports 7001-7011 (7011: a listener
# of uid 65534). Needs add_silent_route(ns) first (for SYN_SENT); reports "ready" (with
# its pid) once every socket call returned, then waits for a command; wait_for_zoo(ns)
# then waits until ss shows every state.
ZOO_SCENARIO = r"""
AF4, AF6 = socket.AF_INET, socket.AF_INET6
l4_any = listener(AF4, "0.0.0.0", 7001)
l4_lo = listener(AF4, "127.0.0.1", 7002)
l6_any = listener(AF6, "::", 7003)
l6_lo = listener(AF6, "::1", 7004)
l6_dual = listener(AF6, "::", 7005, v6only=False)
c4, a4 = pair(l4_any)
c4.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
c4.sendall(b"x" * 100)                       # 100 bytes unread in a4's receive queue
c6, a6 = pair(l6_lo, AF6, "::1")
cm, am = pair(l6_dual)                       # v4 client, v4-mapped server side
# An unaccepted connection in a listener's queue.
l_queue = listener(AF4, "127.0.0.1", 7006)
keep(socket.create_connection(("127.0.0.1", 7006)))
# SYN_RECV: a deferred-accept listener keeps the request sock until data arrives.
l_defer = listener(AF4, "127.0.0.1", 7007, defer_accept=30)
keep(socket.create_connection(("127.0.0.1", 7007)))
# CLOSE_WAIT / FIN_WAIT2: the client half-closes, the server does not close.
cw_c, cw_a = pair(l4_lo)
cw_c.shutdown(socket.SHUT_WR)
cw6_c, cw6_a = pair(l6_any, AF6, "::1")
cw6_c.shutdown(socket.SHUT_WR)
# TIME_WAIT: the client closes first, then the server.
for lsock, fam, addr in ((l4_lo, AF4, "127.0.0.1"), (l6_any, AF6, "::1")):
    tw_c, tw_a = pair(lsock, fam, addr)
    _kept.remove(tw_c); _kept.remove(tw_a)
    tw_c.close()
    tw_a.close()
# FIN_WAIT1: the peer's window is zero, so the FIN waits behind unsent data (persist timer).
l_small = listener(AF4, "127.0.0.1", 7008, rcvbuf=4096)
fw_c, fw_a = pair(l_small, sndbuf=4096)
fill(fw_c)
fw_c.shutdown(socket.SHUT_WR)
# LAST_ACK: the client half-closed; the server sends into its zero window, then closes.
l_la = listener(AF4, "127.0.0.1", 7009)
la_c, la_a = pair(l_la)
la_c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
la_c.shutdown(socket.SHUT_WR)
fill(la_a, b"z")
la_a.shutdown(socket.SHUT_WR)
# SYN_SENT: a connect whose SYNs are silently dropped inside the namespace.
syn = keep(socket.socket(AF4, socket.SOCK_STREAM))
syn.setblocking(False)
syn.connect_ex(("10.77.0.2", 7010))
# A listener of another user: a socket belongs to the effective uid that created it.
os.seteuid(65534)
keep(listener(AF4, "127.0.0.1", 7011))
os.seteuid(0)
report("ready", pid=os.getpid())
command()
"""

ZOO_STATES = frozenset(
    {
        "LISTEN",
        "ESTABLISHED",
        "SYN_SENT",
        "SYN_RECV",
        "FIN_WAIT1",
        "FIN_WAIT2",
        "TIME_WAIT",
        "CLOSE_WAIT",
        "LAST_ACK",
    }
)


def wait_for_zoo(ns: str, timeout: float = 10.0) -> list[SsSocket]:
    """After ZOO_SCENARIO reported ready: wait until ss shows every zoo state; return the rows."""
    return wait_until(
        lambda: (rows := ss(ns)) and {row.state for row in rows} >= ZOO_STATES and rows,
        timeout=timeout,
        what="every zoo state to show in ss",
    )

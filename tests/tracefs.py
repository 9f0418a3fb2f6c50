"""The kernel's own record of TCP state changes, for ground-truth tests.

`trace_tcp(ports)` opens a private tracefs instance with `sock:inet_sock_set_state` and
the reset events (`tcp:tcp_send_reset`, `tcp:tcp_receive_reset`) enabled and filtered to
a port range (the instance sees the whole host: other namespaces' sockets too), and
removes it afterwards. `KernelTrace.lives()` turns the events into socket lives.

Mapping to tcpwatch's states (documented because the tracepoint is not a poll):
- A life starts at `CLOSE -> SYN_SENT` (connect) or `LISTEN -> SYN_RECV` (the accepted
  child; its request sock, shown by sock_diag as SYN_RECV, has no event). `CLOSE ->
  LISTEN` lives are listeners.
- `FIN_WAIT2 -> CLOSE` and `CLOSING -> CLOSE` without a reset are the hand-over to a
  TIME_WAIT minisocket, which logs nothing more; it is mapped to TIME_WAIT (the minisocket
  outlives a test). Any other `X -> CLOSE` ends the life: CLOSED.
- The socket address (`skaddr`) is reused after a socket is freed, so a new life begins
  at every event whose old state is CLOSE (or LISTEN, for a child).
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import struct
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

TRACEFS = "/sys/kernel/tracing"
_counter = itertools.count()

_STATE = {
    1: "ESTABLISHED",
    2: "SYN_SENT",
    3: "SYN_RECV",
    4: "FIN_WAIT1",
    5: "FIN_WAIT2",
    6: "TIME_WAIT",
    7: "CLOSE",
    8: "CLOSE_WAIT",
    9: "LAST_ACK",
    10: "LISTEN",
    11: "CLOSING",
    12: "NEW_SYN_RECV",
}
_LINE = re.compile(r"^\s*\S.*?\s(\d+\.\d+): (\w+): (.*)$")
_FIELD = re.compile(r"(\w+)=(?:0x[0-9a-f]+ \((-?\d+)\)|(\S+))")


def skip_reason() -> str | None:
    """Why tracefs tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root for tracefs"
    if not os.path.isdir(os.path.join(TRACEFS, "instances")):
        done = subprocess.run(
            ["mount", "-t", "tracefs", "nodev", TRACEFS], capture_output=True, check=False
        )
        if done.returncode != 0 or not os.path.isdir(os.path.join(TRACEFS, "instances")):
            return "tracefs is not available (mount -t tracefs nodev /sys/kernel/tracing failed)"
    event = os.path.join(TRACEFS, "events", "sock", "inet_sock_set_state")
    if not os.path.isdir(event):
        return "the kernel has no sock:inet_sock_set_state tracepoint"
    if not os.path.exists(os.path.join(TRACEFS, "options", "fields")):
        return "tracefs has no 'fields' option (kernel too old to print skaddr)"
    return None


@dataclass
class Life:
    """One socket's life as the kernel logged it."""

    skaddr: int
    start: float
    states: list[str] = field(default_factory=list)  # tcpwatch names, mapped (see module doc)
    tuple: tuple[str, int, str, int] | None = None  # local address, port, remote address, port
    end: float | None = None  # None: still alive (or in TIME_WAIT) when the trace was read
    reset: bool = False
    cookies: set[int] = field(default_factory=set)  # from reset events, when logged

    @property
    def listener(self) -> bool:
        return self.states[:1] == ["LISTEN"]


def _ipv4(value: int) -> str:
    return socket.inet_ntoa(struct.pack("<I", value & 0xFFFFFFFF))


class KernelTrace:
    """A private tracefs instance recording TCP state changes on ports [low, high)."""

    def __init__(self, low: int, high: int) -> None:
        self.path = os.path.join(
            TRACEFS, "instances", f"tcpwatch-test-{os.getpid()}-{next(_counter)}"
        )
        self.low, self.high = low, high

    def _write(self, relative: str, text: str) -> None:
        with open(os.path.join(self.path, relative), "w") as f:
            f.write(text)

    def start(self) -> None:
        os.mkdir(self.path)
        self._write("buffer_size_kb", "8192")
        self._write("options/fields", "1")
        self._write("trace_clock", "mono")  # timestamps comparable with time.monotonic()
        ports = (
            f"(sport >= {self.low} && sport < {self.high}) || "
            f"(dport >= {self.low} && dport < {self.high})"
        )
        for event in ("sock/inet_sock_set_state", "tcp/tcp_receive_reset"):
            self._write(f"events/{event}/filter", ports)
            self._write(f"events/{event}/enable", "1")
        # tcp_send_reset has no ports in its fields on every kernel: kept, matched by skaddr.
        self._write("events/tcp/tcp_send_reset/enable", "1")

    def text(self) -> str:
        with open(os.path.join(self.path, "trace")) as f:
            return f.read()

    def lost(self) -> int:
        """Events the buffer overwrote (a comparison would be void if any were)."""
        total = 0
        per_cpu = os.path.join(self.path, "per_cpu")
        for cpu in os.listdir(per_cpu):
            with open(os.path.join(per_cpu, cpu, "stats")) as f:
                match = re.search(r"overrun: (\d+)", f.read())
            total += int(match.group(1)) if match else 0
        return total

    def stop(self) -> None:
        if os.path.isdir(self.path):
            self._write("events/enable", "0")
            os.rmdir(self.path)

    def lives(self) -> list[Life]:
        """Every socket life on the traced ports, in order of birth."""
        current: dict[int, Life] = {}
        lives: list[Life] = []
        for line in self.text().splitlines():
            if line.startswith("#"):
                continue
            match = _LINE.match(line)
            if match is None:
                continue
            stamp, event, rest = float(match.group(1)), match.group(2), match.group(3)
            fields = {
                m.group(1): int(m.group(2)) if m.group(2) is not None else m.group(3)
                for m in _FIELD.finditer(rest)
            }
            skaddr = fields.get("skaddr")
            if not isinstance(skaddr, int):
                continue
            if event == "inet_sock_set_state":
                self._state(current, lives, skaddr, stamp, fields)
            elif event in ("tcp_send_reset", "tcp_receive_reset"):
                life = current.get(skaddr)
                if life is not None:
                    life.reset = True
                    cookie = fields.get("sock_cookie")
                    if isinstance(cookie, int):
                        life.cookies.add(cookie)
        return lives

    @staticmethod
    def _state(
        current: dict[int, Life], lives: list[Life], skaddr: int, stamp: float, fields: dict
    ) -> None:
        old, new = _STATE[int(fields["oldstate"])], _STATE[int(fields["newstate"])]
        if (old == "CLOSE" and new != "CLOSE") or (old == "LISTEN" and new == "SYN_RECV"):
            life = current[skaddr] = Life(skaddr=skaddr, start=stamp)
            lives.append(life)
        elif skaddr in current:
            life = current[skaddr]
        else:
            return  # a life that began before the trace
        if int(fields["sport"]):
            life.tuple = (
                _ipv4(int(fields["saddr"])),
                int(fields["sport"]),
                _ipv4(int(fields["daddr"])),
                int(fields["dport"]),
            )
        if new != "CLOSE":
            life.states.append(new)
            return
        del current[skaddr]
        if old in ("FIN_WAIT2", "CLOSING") and not life.reset:
            life.states.append("TIME_WAIT")  # the hand-over to a TIME_WAIT minisocket
        else:
            life.states.append("CLOSED")
            life.end = stamp


@contextmanager
def trace_tcp(low: int, high: int) -> Iterator[KernelTrace]:
    """A private tracefs instance for ports [low, high); removed on exit."""
    trace = KernelTrace(low, high)
    try:
        trace.start()
        yield trace
    finally:
        trace.stop()

"""A private network namespace filled with N real TCP sockets, for the benchmarks.

Several holder processes own listeners and established pairs (so an inode-to-process scan
has real work to do), a churner process makes TIME_WAIT sockets by active closes, and a few
sockets sit in other states (FIN_WAIT2/CLOSE_WAIT half-closes, unaccepted connections in a
listener's queue, SYN_SENT to a listener whose queue is full). Client ends bind to many
127.0.0.x source addresses so the ephemeral port range is never the limit.

TIME_WAIT lasts 60 s, so `SocketFarm.top_up()` keeps the TIME_WAIT population at its target
before every measurement: it destroys an ageing generation (`ss -K`) and makes a fresh one.

Run as root. The same file is the holder program (`python farm.py holder`); holders talk to
the parent over pipes, one JSON line per command and reply, so readiness never needs sleeps.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
IP_BIND_ADDRESS_NO_PORT = 24
TIME_WAIT_LIFETIME = 60.0
# A TIME_WAIT generation older than this is replaced before a measurement starts, so no
# measurement (the slowest take a few seconds at 100k sockets) sees it expire.
TIME_WAIT_REFRESH_AGE = 40.0

_libc = ctypes.CDLL(None, use_errno=True)


def setns(path: str) -> None:
    """Move the calling thread into the network namespace at `path`."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


@contextlib.contextmanager
def inside(path: str) -> Iterator[None]:
    """Run the block inside a namespace; sockets created there keep living there."""
    own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(path)
        try:
            yield
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"cannot return to the original namespace: {os.strerror(err)}")
    finally:
        os.close(own)


class Namespace:
    """A uniquely named network namespace with lo up, deleted on exit whatever happens."""

    def __init__(self, prefix: str = "tcpwatch-bench") -> None:
        self.name = f"{prefix}-{os.getpid()}"
        self.path = f"/run/netns/{self.name}"

    def __enter__(self) -> Namespace:
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        try:
            subprocess.run(
                ["ip", "-n", self.name, "link", "set", "lo", "up"], check=True, capture_output=True
            )
        except BaseException:
            self.delete()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.delete()

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    def preexec(self) -> Callable[[], None]:
        """For Popen: start the child inside the namespace (no `ip netns exec` overhead)."""
        path = self.path

        def enter() -> None:
            setns(path)

        return enter


def die_with_parent() -> None:
    """For Popen: the child is killed when the benchmark dies, however it dies."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


# --- netlink sock_diag, minimal: counting sockets and timing the kernel's own dump --------

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
INET_DIAG_INFO = 2
_NLMSG = struct.Struct("=IHHII")
_STATE_NAMES = {
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
}


def diag_request(family: int, seq: int, ext: int = 1 << (INET_DIAG_INFO - 1)) -> bytes:
    """An inet_diag_req_v2 dump request for every TCP state of one address family."""
    body = struct.pack("=BBBxI", family, socket.IPPROTO_TCP, ext, 0xFFF) + bytes(48)
    header = _NLMSG.pack(16 + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
    return header + body


class RawDiag:
    """A sock_diag socket inside the namespace: the kernel's dump time with no parsing."""

    def __init__(self, netns_path: str, ext: int = 1 << (INET_DIAG_INFO - 1)) -> None:
        with inside(netns_path):
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
        self.sock.bind((0, 0))
        self.port = self.sock.getsockname()[0]
        self.ext = ext
        self.seq = 0
        self.buf = bytearray(1 << 16)

    def receive(self) -> tuple[float, int]:
        """Dump IPv4 then IPv6; return (seconds, bytes). Only the DONE trailer is looked at."""
        buf, recv_into, port = self.buf, self.sock.recv_into, self.port
        total = 0
        start = time.perf_counter()
        for family in (socket.AF_INET, socket.AF_INET6):
            self.seq += 1
            done = _NLMSG.pack(20, NLMSG_DONE, NLM_F_MULTI, self.seq, port)[4:]
            self.sock.send(diag_request(family, self.seq, self.ext))
            while True:
                n = recv_into(buf)
                total += n
                if buf[n - 16 : n - 4] == done or _NLMSG.unpack_from(buf, 0)[1] == NLMSG_ERROR:
                    break
        return time.perf_counter() - start, total

    def capture(self) -> list[bytes]:
        """One dump's raw replies, chunk by chunk as the kernel sent them (IPv4, then IPv6)."""
        chunks = []
        for family in (socket.AF_INET, socket.AF_INET6):
            self.seq += 1
            done = _NLMSG.pack(20, NLMSG_DONE, NLM_F_MULTI, self.seq, self.port)[4:]
            self.sock.send(diag_request(family, self.seq, self.ext))
            while True:
                n = self.sock.recv_into(self.buf)
                chunks.append(bytes(self.buf[:n]))
                if self.buf[n - 16 : n - 4] == done:
                    break
        return chunks

    def count(self) -> Counter[str]:
        """Sockets per state name, walking every message (not for timing)."""
        states: Counter[str] = Counter()
        for family in (socket.AF_INET, socket.AF_INET6):
            self.seq += 1
            self.sock.send(diag_request(family, self.seq, self.ext))
            finished = False
            while not finished:
                n = self.sock.recv_into(self.buf)
                offset = 0
                while offset < n:
                    length, kind, _flags, _seq, _pid = _NLMSG.unpack_from(self.buf, offset)
                    if kind == NLMSG_DONE:
                        finished = True
                        break
                    if kind == NLMSG_ERROR:
                        (errno_,) = struct.unpack_from("=i", self.buf, offset + 16)
                        raise OSError(-errno_, f"sock_diag dump failed: {os.strerror(-errno_)}")
                    states[_STATE_NAMES.get(self.buf[offset + 17], "?")] += 1
                    offset += (length + 3) & ~3
        return states

    def close(self) -> None:
        self.sock.close()


# --- the holder program ------------------------------------------------------------------


class _Holder:
    """Owns sockets inside the namespace and builds more on command."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.keep: list[socket.socket] = []
        # Plain established pairs, oldest first: what `churn` replaces.
        self.established: deque[tuple[socket.socket, socket.socket]] = deque()
        self.listeners: dict[tuple[int, str, int], socket.socket] = {}
        self.made = 0

    def listener(self, family: int, address: str, port: int, backlog: int) -> socket.socket:
        key = (family, address, port)
        if key not in self.listeners:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.listen(backlog)
            self.listeners[key] = sock
        return self.listeners[key]

    def _client(self, family: int, source_net: str) -> socket.socket:
        sock = socket.socket(family, socket.SOCK_STREAM)
        if family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            self.made += 1
            sock.bind((f"{source_net}.{self.made % 250 + 2}", 0))
        return sock

    def pairs(self, n: int, port: int, v6_every: int, source_net: str) -> list[tuple]:
        """n connected pairs (client, accepted server end); every v6_every-th over ::1."""
        v4 = self.listener(socket.AF_INET, "127.0.0.1", port, 4096)
        v6 = self.listener(socket.AF_INET6, "::1", port, 4096)
        out: list[tuple[socket.socket, socket.socket]] = []
        done = 0
        while done < n:
            batch = min(1024, n - done)
            clients: list[tuple[socket.socket, socket.socket]] = []
            for i in range(batch):
                if v6_every and (done + i) % v6_every == v6_every - 1:
                    client = self._client(socket.AF_INET6, source_net)
                    client.connect(("::1", port))
                    clients.append((client, v6))
                else:
                    client = self._client(socket.AF_INET, source_net)
                    client.connect(("127.0.0.1", port))
                    clients.append((client, v4))
            for client, listener in clients:
                server, _ = listener.accept()
                out.append((client, server))
            done += batch
        return out

    def handle(self, cmd: dict) -> dict:
        op = cmd["op"]
        if op == "pairs" and cmd.get("time_wait"):
            # Active close by the client: the client end becomes a TIME_WAIT minisocket.
            # Batch by batch, so the open sockets never exceed RLIMIT_NOFILE.
            left = cmd["n"]
            while left > 0:
                made = self.pairs(min(left, 1024), cmd["port"], 0, cmd["source_net"])
                for client, _ in made:
                    client.close()
                for _, server in made:
                    server.close()
                left -= len(made)
        elif op == "pairs":
            made = self.pairs(cmd["n"], cmd["port"], cmd.get("v6_every", 0), cmd["source_net"])
            if cmd.get("half_close"):
                # Client FIN_WAIT2 (not orphaned, so it stays), server CLOSE_WAIT.
                for client, _ in made:
                    client.shutdown(socket.SHUT_WR)
                self.keep.extend(s for pair in made for s in pair)
            else:
                self.established.extend(made)
        elif op == "churn":
            # Close the n oldest pairs (the client first, so it lingers in TIME_WAIT) and
            # connect n new ones: births, state changes and deaths, at a constant total.
            linger = struct.pack("ii", 1, 0)
            for _ in range(min(cmd["n"], len(self.established))):
                client, server = self.established.popleft()
                if cmd.get("abort"):  # RST instead of FIN: no TIME_WAIT left behind
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                client.close()
                server.close()
            self.established.extend(
                self.pairs(cmd["n"], cmd["port"], cmd.get("v6_every", 0), cmd["source_net"])
            )
        elif op == "queue":
            # A listener that never accepts: n connections wait in its queue, and the
            # connects beyond the full queue stay in SYN_SENT (their SYNs are dropped).
            listener = self.listener(socket.AF_INET, "127.0.0.1", cmd["port"], cmd["n"] - 1)
            del listener
            for _ in range(cmd["n"]):
                client = self._client(socket.AF_INET, cmd["source_net"])
                client.connect(("127.0.0.1", cmd["port"]))
                self.keep.append(client)
            for _ in range(cmd["syn_sent"]):
                client = self._client(socket.AF_INET, cmd["source_net"])
                client.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    client.connect(("127.0.0.1", cmd["port"]))
                self.keep.append(client)
        elif op == "listen":
            self.listener(socket.AF_INET, cmd["address"], cmd["port"], 128)
        else:
            raise ValueError(f"unknown op {op!r}")
        fds = len(self.keep) + 2 * len(self.established) + len(self.listeners)
        return {"ok": True, "fds": fds}


def holder_main(index: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent coordinates shutdown
    die_with_parent()
    # Raising the hard limit needs CAP_SYS_RESOURCE, which a container may not grant;
    # SocketFarm spreads sockets over enough holders to fit under it.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    holder = _Holder(index)
    print(json.dumps({"ok": True, "pid": os.getpid()}), flush=True)
    for line in sys.stdin:
        try:
            reply = holder.handle(json.loads(line))
        except OSError as error:
            reply = {"ok": False, "error": str(error)}
        print(json.dumps(reply), flush=True)


# --- the parent side ----------------------------------------------------------------------


@dataclass
class _Proc:
    popen: subprocess.Popen[str]

    def send(self, **cmd: object) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(json.dumps(cmd) + "\n")
        self.popen.stdin.flush()

    def call(self, **cmd: object) -> dict:
        self.send(**cmd)
        return self.reply()

    def reply(self) -> dict:
        assert self.popen.stdout is not None
        line = self.popen.stdout.readline()
        if not line:
            raise RuntimeError(f"holder {self.popen.pid} died (exit {self.popen.poll()})")
        data = json.loads(line)
        if not data.get("ok"):
            raise RuntimeError(f"holder {self.popen.pid}: {data.get('error')}")
        return data


@dataclass
class Composition:
    """How a total of N sockets is made up."""

    total: int
    time_wait: int
    half_closed_pairs: int
    established_pairs: int


QUEUED = 16  # unaccepted connections (client end + queued child: 2 sockets each)
SYN_SENT = 8


@dataclass
class SocketFarm:
    """N sockets across holder processes inside `ns`, plus background processes."""

    ns: Namespace
    holders: int = 6
    background: int = 300
    time_wait_share: float = 0.10
    half_closed_share: float = 0.01
    _procs: list[_Proc] = field(default_factory=list)
    _churner: _Proc | None = None
    _sleepers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _pairs: list[int] = field(default_factory=list)
    _half: int = 0
    _tw_target: int = 0
    _tw_born: float = 0.0
    diag: RawDiag | None = None

    def __enter__(self) -> SocketFarm:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _spawn(self, index: int) -> _Proc:
        enter = self.ns.preexec()

        def preexec() -> None:
            enter()
            die_with_parent()

        popen = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "holder", str(index)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=preexec,
        )
        return _Proc(popen)

    def start(self) -> None:
        self._procs = [self._spawn(i) for i in range(self.holders)]
        self._churner = self._spawn(self.holders)
        for proc in [*self._procs, self._churner]:
            proc.reply()
        self._pairs = [0] * self.holders
        for _ in range(self.background):
            self._sleepers.append(
                subprocess.Popen(
                    ["sleep", "infinity"],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    preexec_fn=die_with_parent,
                )
            )
        self.diag = RawDiag(self.ns.path)
        # A few listeners on other addresses, and the queue / SYN_SENT corner.
        holder = self._procs[0]
        holder.call(op="listen", address="0.0.0.0", port=8080)
        holder.call(op="listen", address="127.0.0.53", port=53)
        holder.call(op="queue", port=9000, n=QUEUED, syn_sent=SYN_SENT, source_net="127.0.2")

    def listeners(self) -> int:
        # v4+v6 per holder and for the half-close and churner ports; 0.0.0.0:8080, :53, the queue.
        return 2 * self.holders + 2 + 2 + 3

    def composition(self, total: int) -> Composition:
        time_wait = round(total * self.time_wait_share)
        half = round(total * self.half_closed_share / 2)
        fixed = self.listeners() + 2 * QUEUED + SYN_SENT
        established = max(0, (total - time_wait - 2 * half - fixed) // 2)
        return Composition(total, time_wait, half, established)

    def _broadcast(self, commands: list[tuple[_Proc, dict]]) -> None:
        """Send every command first so the holders build in parallel, then wait for all."""
        for proc, cmd in commands:
            proc.send(**cmd)
        for proc, _ in commands:
            proc.reply()

    def grow_to(self, total: int) -> Composition:
        """Add sockets until the namespace holds about `total` (never removes)."""
        comp = self.composition(total)
        commands: list[tuple[_Proc, dict]] = []
        want_pairs = comp.established_pairs
        for i, proc in enumerate(self._procs):
            share = want_pairs // self.holders + (1 if i < want_pairs % self.holders else 0)
            extra = share - self._pairs[i]
            if extra > 0:
                net = f"127.0.{10 + i}"
                cmd = dict(op="pairs", n=extra, port=20000 + i, v6_every=10, source_net=net)
                commands.append((proc, cmd))
                self._pairs[i] = share
        half_extra = comp.half_closed_pairs - self._half
        if half_extra > 0:
            cmd = dict(op="pairs", n=half_extra, port=21000, source_net="127.0.3", half_close=True)
            commands.append((self._procs[-1], cmd))
            self._half = comp.half_closed_pairs
        self._broadcast(commands)
        self._tw_target = comp.time_wait
        self.top_up(force=True)
        return comp

    def churn(self, n: int, abort: bool = False) -> None:
        """Replace about n established pairs, spread over the holders.

        Each closed pair leaves a TIME_WAIT socket, unless `abort` (closed with RST).
        """
        commands: list[tuple[_Proc, dict]] = []
        for i, proc in enumerate(self._procs):
            share = n // self.holders + (1 if i < n % self.holders else 0)
            if share:
                net = f"127.0.{10 + i}"
                cmd = dict(
                    op="churn", n=share, port=20000 + i, v6_every=10, source_net=net, abort=abort
                )
                commands.append((proc, cmd))
        self._broadcast(commands)

    def time_wait_now(self) -> int:
        """TIME_WAIT sockets in the namespace (the per-namespace sockstat counter)."""
        assert self._churner is not None
        with open(f"/proc/{self._churner.popen.pid}/net/sockstat") as f:
            for line in f:
                if line.startswith("TCP:"):
                    fields = line.split()
                    return int(fields[fields.index("tw") + 1])
        raise RuntimeError("no TCP line in sockstat")

    def top_up(self, force: bool = False) -> None:
        """Keep the TIME_WAIT population at its target and young enough to outlive a run."""
        assert self._churner is not None
        age = time.monotonic() - self._tw_born
        if force or age > TIME_WAIT_REFRESH_AGE:
            subprocess.run(
                ["ss", "-K", "-tan", "state", "time-wait"],
                check=True,
                stdout=subprocess.DEVNULL,
                preexec_fn=self.ns.preexec(),
            )
            self._tw_born = time.monotonic()
            missing = self._tw_target
        else:
            missing = self._tw_target - self.time_wait_now()
        if missing > 0:
            net = f"127.1.{int(time.monotonic()) % 200}"
            self._churner.call(op="pairs", n=missing, port=19999, source_net=net, time_wait=True)

    def count(self) -> Counter[str]:
        assert self.diag is not None
        return self.diag.count()

    def holder_pids(self) -> list[int]:
        return [p.popen.pid for p in self._procs]

    def close(self) -> None:
        if self.diag is not None:
            self.diag.close()
            self.diag = None
        for proc in [*self._procs, *([self._churner] if self._churner else [])]:
            with contextlib.suppress(OSError):
                assert proc.popen.stdin is not None
                proc.popen.stdin.close()
            proc.popen.kill()
            proc.popen.wait()
            with contextlib.suppress(OSError):
                assert proc.popen.stdout is not None
                proc.popen.stdout.close()
        self._procs, self._churner = [], None
        for sleeper in self._sleepers:
            sleeper.kill()
            sleeper.wait()
        self._sleepers = []


@contextlib.contextmanager
def churn_ready(
    sockets: int, *, holders: int, background: int
) -> Iterator[tuple[Namespace, SocketFarm]]:
    """A namespace grown to `sockets`, with no TIME_WAIT made up front (churn makes its own),
    its composition printed; everything removed on the way out."""
    with (
        Namespace() as ns,
        SocketFarm(ns, holders=holders, background=background, time_wait_share=0.0) as sock_farm,
    ):
        sock_farm.grow_to(sockets)
        counts = sock_farm.count()
        print(f"namespace {ns.name}: {sum(counts.values())} sockets {dict(sorted(counts.items()))}")
        yield ns, sock_farm


def raise_signals_as_exit() -> None:
    """SIGTERM/SIGHUP/SIGINT unwind as KeyboardInterrupt: namespace and holders are cleaned up."""

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    # Also when started with SIGINT ignored (e.g. in the background of a script).
    signal.signal(signal.SIGINT, signal.default_int_handler)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "holder":
        holder_main(int(sys.argv[2]))
    else:
        sys.exit("usage: farm.py holder INDEX  (started by the benchmarks, not by hand)")

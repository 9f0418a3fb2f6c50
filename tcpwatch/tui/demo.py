"""A deterministic fake socket source: a busy web host, for tests, screenshots and benchmarks.

It stands in for the kernel where the kernel cannot be made to hold a particular picture
on demand (a process leaking CLOSE_WAIT for minutes, a dead peer, 50k clients): every poll
returns a `Snapshot` built by hand, with a fake clock, so the real Tracker, filters and UI
can run over it and produce the same screen every time.

The host: nginx listens on :80/:443 and proxies over loopback to a Java app on :8080; the
Java app leaks a CLOSE_WAIT every few polls (nginx closed, Java never calls close()) and
keeps a pool to postgres on 127.0.0.1:5432; nginx's closed upstream connections pile up in
TIME_WAIT; curl is stuck in SYN_SENT toward a filtered peer; an ssh client vanished
(retransmissions, no ACK: a dead peer); a closed socket nobody owns waits in FIN_WAIT1; and
a process with a hostile name listens on :9000.
"""

from __future__ import annotations

import random
import struct
from dataclasses import replace
from types import MappingProxyType

from tcpwatch.model import (
    Endpoint,
    Family,
    ProcessInfo,
    Snapshot,
    SocketRecord,
    SourceKind,
    Timer,
    TimerName,
)
from tcpwatch.tcp.states import TcpState

# Fixed start of the fake clock: 2026-11-22T10:00:00Z.
DEMO_EPOCH = 1795341600.0
HOSTILE_NAME = "[bold]x\x1b[2J"

_NGINX = ProcessInfo(1201, "nginx", ("nginx: worker process",), "www-data", 33)
_JAVA = ProcessInfo(4242, "java", ("java", "-Xmx2g", "-jar", "/srv/app/shop.jar"), "app", 1000)
_POSTGRES = ProcessInfo(812, "postgres", ("postgres", "-D", "/var/lib/postgresql"), "postgres", 113)
_SSHD = ProcessInfo(640, "sshd", ("sshd: /usr/sbin/sshd -D",), "root", 0)
_SSH = ProcessInfo(7310, "ssh", ("ssh", "backup@203.0.113.99"), "ops", 1001)
_CURL = ProcessInfo(7702, "curl", ("curl", "-sS", "https://192.0.2.10/health"), "ops", 1001)
_HOSTILE = ProcessInfo(6666, HOSTILE_NAME, ("[red]evil", "\x1b]0;pwned\x07"), "nobody", 65534)

_TCP_INFO_HEAD = struct.Struct("=8B24I4Q6I")  # up to min_rtt: 160 bytes of struct tcp_info


def tcp_info_bytes(
    *,
    state: TcpState,
    rtt_us: int = 350,
    cwnd: int = 10,
    retransmits: int = 0,
    backoff: int = 0,
    probes: int = 0,
    unacked: int = 0,
    last_data_recv_ms: int = 200,
    last_ack_recv_ms: int = 200,
    bytes_acked: int = 0,
    bytes_received: int = 0,
) -> bytes:
    """Kernel-layout `struct tcp_info` bytes (the first 160), as sock_diag would send them."""
    u8 = (state.kernel or 0, 0, retransmits, probes, backoff, 7, 0x77, 0)
    rto = min(200_000 << backoff, 120_000_000)
    u32 = (
        *(rto, 40_000, 1448, 1448, unacked, 0, 0, 0, 0),
        *(500, 500, last_data_recv_ms, last_ack_recv_ms),
        *(65535, 64076, rtt_us, rtt_us // 2, 0x7FFFFFFF, cwnd, 1448, 3),
        *(0, 65483, retransmits),
    )
    u64 = (0, 0, bytes_acked, bytes_received)
    segs = (bytes_acked // 1448 + 3, bytes_received // 1448 + 3, 0, rtt_us, 0, 0)
    return _TCP_INFO_HEAD.pack(*u8, *u32, *u64, *segs)


class BusyHost:
    """A fake source that behaves like `Poller`: `.poll() -> Snapshot`, `.close()`.

    `clients` sets the size (about that many nginx client connections, plus a TIME_WAIT
    pile); `churn` is the fraction of them replaced per poll; `step` seconds of fake time
    pass per poll, so time-dependent text is the same on every run.
    """

    def __init__(
        self,
        *,
        clients: int = 24,
        churn: float = 0.05,
        seed: int = 7,
        start: float = DEMO_EPOCH,
        step: float = 1.0,
        host: str = "web-1",
    ) -> None:
        self._rng = random.Random(seed)
        self._clients = clients
        self._churn = churn
        self._step = step
        self._now = start - step
        self._host = host
        self._cookie = 0x1A2B00
        self._inode = 900_000
        self._port = 40_000
        self._socks: dict[int, SocketRecord] = {}
        self._owners: dict[int, ProcessInfo] = {}
        self._client_cookies: list[int] = []
        self._timewait: dict[int, float] = {}  # cookie -> when it expires (fake clock)
        self._proxy: list[tuple[int, int]] = []  # (nginx side, java side) cookie pairs
        self._fin_wait2: dict[int, float] = {}  # nginx side of a leaked pair -> expiry
        self._ticking: dict[int, int] = {}  # retransmitting socket -> its current timeout (ms)
        self._polls = 0
        self._build()

    # -- the source protocol --------------------------------------------------------

    def poll(self) -> Snapshot:
        self._now += self._step
        if self._polls:
            self._advance()
        self._polls += 1
        # Like a netlink dump, each record made or changed by this poll carries its time.
        socks = self._socks
        for cookie in [c for c, r in socks.items() if r.dumped_at is None]:
            socks[cookie] = replace(socks[cookie], dumped_at=self._now)
        return Snapshot(
            taken_at=self._now,
            monotonic=self._now - DEMO_EPOCH,
            host=self._host,
            netns=None,
            source=SourceKind.NETLINK,
            sockets=tuple(self._socks.values()),
            owners=MappingProxyType(dict(self._owners)),
            owners_note=None,
            notice=None,
        )

    def close(self) -> None:
        self._socks.clear()

    # -- building the picture -------------------------------------------------------

    def _add(
        self,
        state: TcpState,
        local: tuple[str, int],
        remote: tuple[str, int],
        owner: ProcessInfo | None,
        *,
        recv_q: int = 0,
        send_q: int = 0,
        timer: Timer | None = None,
        info: bytes | None = None,
    ) -> int:
        self._cookie += 1
        family = Family.IPV6 if ":" in local[0] else Family.IPV4
        inode = 0
        if owner is not None and state not in (TcpState.TIME_WAIT, TcpState.SYN_RECV):
            self._inode += 1
            inode = self._inode
            self._owners[inode] = owner
        if info is None and state not in (TcpState.LISTEN, TcpState.TIME_WAIT, TcpState.SYN_RECV):
            info = tcp_info_bytes(state=state)
        self._socks[self._cookie] = SocketRecord(
            cookie=self._cookie,
            family=family,
            state=state,
            local=Endpoint(*local),
            remote=Endpoint(*remote),
            recv_q=recv_q,
            send_q=send_q,
            timer=timer,
            uid=owner.uid if owner is not None and owner.uid is not None else 0,
            inode=inode,
            tcp_info_raw=info,
        )
        return self._cookie

    def _ephemeral(self) -> int:
        self._port = 40_000 + (self._port - 40_000 + 7) % 20_000
        return self._port

    def _client_address(self) -> tuple[str, int]:
        net = self._rng.choice(("203.0.113", "198.51.100"))
        return (f"{net}.{self._rng.randrange(1, 255)}", self._rng.randrange(1024, 65535))

    def _build(self) -> None:
        any4, any6, lo = "0.0.0.0", "::", "127.0.0.1"
        self._add(TcpState.LISTEN, (any4, 80), (any4, 0), _NGINX, send_q=511)
        self._add(TcpState.LISTEN, (any4, 443), (any4, 0), _NGINX, recv_q=3, send_q=511)
        self._add(TcpState.LISTEN, (any6, 443), (any6, 0), _NGINX, send_q=511)
        self._add(TcpState.LISTEN, (any4, 8080), (any4, 0), _JAVA, send_q=100)
        self._add(TcpState.LISTEN, (lo, 5432), (any4, 0), _POSTGRES, send_q=244)
        self._add(TcpState.LISTEN, (any6, 22), (any6, 0), _SSHD, send_q=128)
        self._add(TcpState.LISTEN, (any4, 9000), (any4, 0), _HOSTILE, send_q=4096)
        for _ in range(3):
            cookie = self._add(
                TcpState.SYN_RECV,
                (any4, 443),
                self._client_address(),
                None,
                timer=Timer(TimerName.RETRANSMIT, 1_900, 1),
            )
            self._ticking[cookie] = 2_000
        for _ in range(self._clients):
            self._new_client()
        for _ in range(4):
            self._new_proxy_pair()
        for _ in range(6):
            port = self._ephemeral()
            self._add(TcpState.ESTABLISHED, (lo, port), (lo, 5432), _JAVA)
            self._add(TcpState.ESTABLISHED, (lo, 5432), (lo, port), _POSTGRES)
        for _ in range(max(3, self._clients // 8)):
            self._new_timewait(remaining_ms=self._rng.randrange(5_000, 60_000))
        for _ in range(3):
            self._leak_one()
        syn_sent = self._add(
            TcpState.SYN_SENT,
            ("10.0.0.5", self._ephemeral()),
            ("192.0.2.10", 443),
            _CURL,
            timer=Timer(TimerName.RETRANSMIT, 3_100, 3),
            info=tcp_info_bytes(state=TcpState.SYN_SENT, retransmits=3, backoff=3, unacked=1),
        )
        dead_peer = self._add(
            TcpState.ESTABLISHED,
            ("10.0.0.5", self._ephemeral()),
            ("203.0.113.99", 22),
            _SSH,
            send_q=4_344,
            timer=Timer(TimerName.RETRANSMIT, 25_600, 7),
            info=tcp_info_bytes(
                state=TcpState.ESTABLISHED,
                rtt_us=48_000,
                retransmits=7,
                backoff=7,
                unacked=3,
                last_data_recv_ms=94_000,
                last_ack_recv_ms=94_000,
                bytes_acked=88_000,
                bytes_received=41_000,
            ),
        )
        self._add(
            TcpState.ESTABLISHED,
            ("2001:db8::5", 22),
            ("2001:db8:1::17", 50_122),
            _SSHD,
            timer=Timer(TimerName.KEEPALIVE, 7_150_000, 0),
        )
        orphan = self._add(
            TcpState.FIN_WAIT1,
            ("10.0.0.5", 443),
            ("203.0.113.77", 61_000),
            None,
            send_q=2_896,
            timer=Timer(TimerName.PERSIST, 12_000, 4),
        )
        self._add(TcpState.ESTABLISHED, ("10.0.0.5", 9000), self._client_address(), _HOSTILE)
        # The three in nginx's accept queue on 443 (its Recv-Q): no process until accept().
        for port in (52_001, 52_002, 52_003):
            self._add(TcpState.ESTABLISHED, ("10.0.0.5", 443), ("198.51.100.23", port), None)
        self._ticking.update({syn_sent: 8_000, dead_peer: 25_600, orphan: 12_000})

    def _new_client(self) -> None:
        cookie = self._add(
            TcpState.ESTABLISHED,
            ("10.0.0.5", self._rng.choice((80, 443))),
            self._client_address(),
            _NGINX,
            timer=Timer(TimerName.KEEPALIVE, self._rng.randrange(600_000, 7_200_000), 0),
            info=tcp_info_bytes(
                state=TcpState.ESTABLISHED,
                rtt_us=self._rng.randrange(2_000, 90_000),
                bytes_acked=self._rng.randrange(500, 900_000),
                bytes_received=self._rng.randrange(300, 9_000),
            ),
        )
        self._client_cookies.append(cookie)

    def _new_proxy_pair(self) -> None:
        port = self._ephemeral()
        near = self._add(TcpState.ESTABLISHED, ("127.0.0.1", port), ("127.0.0.1", 8080), _NGINX)
        far = self._add(TcpState.ESTABLISHED, ("127.0.0.1", 8080), ("127.0.0.1", port), _JAVA)
        self._proxy.append((near, far))

    def _new_timewait(self, remaining_ms: int = 60_000) -> None:
        cookie = self._add(
            TcpState.TIME_WAIT,
            ("127.0.0.1", self._ephemeral()),
            ("127.0.0.1", 8080),
            None,
            timer=Timer(TimerName.TIMEWAIT, remaining_ms, 0),
        )
        self._timewait[cookie] = self._now + remaining_ms / 1000

    def _leak_one(self) -> None:
        """nginx closes an upstream connection; java never closes its end."""
        port = self._ephemeral()
        near = self._add(
            TcpState.FIN_WAIT2,
            ("127.0.0.1", port),
            ("127.0.0.1", 8080),
            None,
            timer=Timer(TimerName.TIMEWAIT, 60_000, 0),
        )
        self._fin_wait2[near] = self._now + 60
        self._add(
            TcpState.CLOSE_WAIT,
            ("127.0.0.1", 8080),
            ("127.0.0.1", port),
            _JAVA,
            recv_q=1,
            info=tcp_info_bytes(state=TcpState.CLOSE_WAIT, last_data_recv_ms=20_000),
        )

    # -- one poll's worth of change ---------------------------------------------------

    def _tick(self) -> None:
        """Retransmission-style timers count down; at zero they re-arm with a doubled
        timeout and one more retry, as the kernel's exponential backoff does."""
        for cookie, rto_ms in self._ticking.items():
            record = self._socks[cookie]
            timer = record.timer
            if timer is None:
                continue
            left = timer.expires_ms - int(self._step * 1000)
            if left <= 0:
                rto_ms = min(120_000, rto_ms * 2)
                self._ticking[cookie] = rto_ms
                timer = Timer(timer.name, rto_ms + left % rto_ms, timer.retrans + 1)
            else:
                timer = Timer(timer.name, left, timer.retrans)
            self._socks[cookie] = replace(record, timer=timer, dumped_at=None)

    def _advance(self) -> None:
        rng = self._rng
        self._tick()
        for cookie, expires in list(self._timewait.items()):
            record = self._socks[cookie]
            left = int((expires - self._now) * 1000)
            if left <= 0:
                del self._socks[cookie], self._timewait[cookie]
            else:
                self._socks[cookie] = replace(
                    record, timer=Timer(TimerName.TIMEWAIT, left, 0), dumped_at=None
                )
        for cookie, expires in list(self._fin_wait2.items()):
            if expires <= self._now:
                del self._socks[cookie], self._fin_wait2[cookie]
        replaced = max(1, int(len(self._client_cookies) * self._churn))
        for _ in range(replaced):
            index = rng.randrange(len(self._client_cookies))
            cookie = self._client_cookies[index]
            self._client_cookies[index] = self._client_cookies[-1]
            self._client_cookies.pop()
            record = self._socks.pop(cookie)
            self._owners.pop(record.inode, None)
            self._new_client()
        # nginx finishes one upstream request per poll: it closes first, so its end lingers
        # in TIME_WAIT; java closes too (its end is simply gone) - except every third poll.
        near, far = self._proxy.pop(0)
        near_record = self._socks.pop(near)
        self._owners.pop(near_record.inode, None)
        far_record = self._socks.pop(far)
        if self._polls % 3 == 0:
            self._socks[far] = replace(
                far_record, state=TcpState.CLOSE_WAIT, recv_q=1, dumped_at=None
            )
            self._socks[near] = replace(
                near_record,
                state=TcpState.FIN_WAIT2,
                inode=0,
                tcp_info_raw=None,
                timer=Timer(TimerName.TIMEWAIT, 60_000, 0),
                dumped_at=None,
            )
            self._fin_wait2[near] = self._now + 60
        else:
            self._owners.pop(far_record.inode, None)
            self._socks[near] = replace(
                near_record,
                state=TcpState.TIME_WAIT,
                inode=0,
                uid=0,
                tcp_info_raw=None,
                timer=Timer(TimerName.TIMEWAIT, 60_000, 0),
                dumped_at=None,
            )
            self._timewait[near] = self._now + 60
        self._new_proxy_pair()

"""The default source: a raw NETLINK_SOCK_DIAG dump of every TCP socket, parsed with `struct`.

Speed matters here (50k sockets every second), so the parser works on the kernel's bytes
with precompiled structs, shares Endpoint objects between polls and keeps tcp_info as raw
bytes for lazy unpacking. `DumpParser.feed` is pure with respect to its input (captured
dumps can be fed to it in tests); `NetlinkSource` adds the socket and the request loop.
"""

from __future__ import annotations

import errno
import gc
import os
import socket
import struct
import time
from time import perf_counter
from typing import Literal

from tcpwatch.model import (
    Endpoint,
    Family,
    SocketChanges,
    SocketRecord,
    SourceKind,
    Timer,
    TimerName,
)
from tcpwatch.slots import other_defaults, slot_setters
from tcpwatch.sources.base import SourceError
from tcpwatch.tcp.states import TcpState

try:
    from tcpwatch.sources._reuse import Memory as _CMemory
except ImportError:  # built without a C compiler: feed's Python hit path does the same
    _CMemory = None

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_DUMP_INTR = 0x10
NLM_F_DUMP = 0x300
INET_DIAG_INFO = 2
ALL_STATES = 0xFFF
AF_INET = 2
AF_INET6 = 10

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
# nlmsghdr's len, type, flags and seq, and the socket's cookie (low, high): what tells
# whether a message is one the last dump had.
_HEADER_AND_COOKIE = struct.Struct("=IHHI48xII")
# nlmsghdr (len, type, flags, seq, pid) + inet_diag_msg (family, state, timer, retrans,
# sockid, expires, rqueue, wqueue, uid, inode), one unpack per socket. The sockid's ports
# and addresses are skipped here: they are looked up by their raw bytes (see DumpParser).
_SOCKET_MESSAGE = struct.Struct("=IHHI4xBBBB40xIIIIIII")
_SOCKID_OFFSET = 20  # sport, dport (big endian), src[16], dst[16]
_SOCKID_ENDS = 56
# struct tcp_info's last_data_sent, last_ack_sent, last_data_recv and last_ack_recv:
# milliseconds since, the only bytes of an idle socket's message that change between dumps.
_AGES_OFFSET = 44
_AGES_ENDS = 60
# inet_diag_msg's idiag_timer, and idiag_expires (ms left), from the message's start.
_TIMER_AT = 18
_EXPIRES_OFFSET = 68
_EXPIRES_ENDS = 72
_TIMEWAIT_TIMER = 3
_COOKIE_OFFSET = 60  # the socket's cookie, two 32-bit halves, low first
# A TIME_WAIT socket's deadline never moves (but for a rare re-armed 2MSL): remembered
# under its deadline, in whole seconds, so that its record is reused while it counts down.
_DEADLINE_GRAIN_MS = 1000
_U32 = struct.Struct("=I")
_ADDRESSES = struct.Struct("=HH16s16s")
_ATTR = struct.Struct("=HH")
_ERRNO = struct.Struct("=i")
# nlmsghdr + inet_diag_req_v2: family, protocol, ext, pad, states, inet_diag_sockid (48).
_REQUEST = struct.Struct("=IHHIIBBBxI48x")
_HEADER_SIZE = _NLMSGHDR.size
_MSG_END = _SOCKET_MESSAGE.size
# What the C hit path needs to know of the layout (see _reuse.c).
_REUSE_LIMITS = (
    _HEADER_SIZE,
    _MSG_END,
    _AGES_OFFSET,
    _AGES_ENDS,
    SOCK_DIAG_BY_FAMILY,
    NLM_F_DUMP_INTR,
    _TIMER_AT,
    _EXPIRES_OFFSET,
    _TIMEWAIT_TIMER,
    _DEADLINE_GRAIN_MS,
    _COOKIE_OFFSET,
)
# Whether the hit path runs in C (the extension was built at install time).
ACCELERATED = _CMemory is not None

_STATE_BY_NUMBER: tuple[TcpState | None, ...] = tuple(
    TcpState.from_kernel(n) if 1 <= n <= 11 else None for n in range(256)
)
_TIMER_BY_NUMBER: dict[int, TimerName] = {
    1: TimerName.RETRANSMIT,
    2: TimerName.KEEPALIVE,
    3: TimerName.TIMEWAIT,
    4: TimerName.PERSIST,
}
# Endpoint caches are cleared when they grow past this many entries or a quarter more than
# the socket count of the last dump, whichever is larger, so churn cannot grow them.
_CACHE_FLOOR = 65536

RECV_BUFFER_SIZE = 1 << 20
SO_RCVBUF_WANTED = 4 << 20

# Building a frozen dataclass through __init__ costs one object.__setattr__ per field;
# storing through the slot descriptors directly saved about a quarter of the parse time at
# 50k records. RECORD_SETTERS store SocketRecord's fields in the order of _RECORD_FIELDS
# (the /proc parser uses them too); any field added to the class later must have a
# default, and RECORD_DEFAULTS sets it, so the records always stay complete.
_RECORD_FIELDS = (
    "cookie",
    "family",
    "state",
    "local",
    "remote",
    "recv_q",
    "send_q",
    "timer",
    "uid",
    "inode",
    "tcp_info_raw",
    "dumped_at",
)
_TIMER_FIELDS = ("name", "expires_ms", "retrans")


RECORD_SETTERS = slot_setters(SocketRecord, _RECORD_FIELDS)
RECORD_DEFAULTS = other_defaults(SocketRecord, _RECORD_FIELDS)
_TIMER_SETTERS = slot_setters(Timer, _TIMER_FIELDS)
_TIMER_DEFAULTS = other_defaults(Timer, _TIMER_FIELDS)


def _swap16(port: int) -> int:
    return ((port & 0xFF) << 8) | (port >> 8)


def _kernel_error(code: int) -> SourceError:
    if code in (errno.ENOENT, errno.EOPNOTSUPP, errno.EPROTONOSUPPORT):
        return SourceError(
            "the kernel has no TCP sock_diag support (is the tcp_diag module loaded?)"
        )
    if code in (errno.EPERM, errno.EACCES):
        return SourceError("netlink sock_diag refused the dump: permission denied")
    return SourceError(f"netlink sock_diag dump failed: {os.strerror(code)}")


def _malformed(what: str) -> SourceError:
    return SourceError(f"malformed sock_diag reply: {what}")


# Where messages of one length carry INET_DIAG_INFO (None: they do not): the attribute's
# offset, its (len, type) header, and where its payload starts and ends.
_Layout = tuple[int, tuple[int, int], int, int]
_FamilyCaches = tuple[
    dict[bytes, dict[int, Endpoint]], dict[bytes, tuple[Endpoint, Endpoint]], Family
]


class DumpParser:
    """Turns sock_diag reply bytes into SocketRecords; keeps caches across polls.

    Caches, per family: the (local, remote) Endpoint pair by the raw sockid bytes (ports
    and addresses), so a connection seen before costs one lookup; Endpoint objects by raw
    address and port, shared by all sockets on them; and for each message length the
    position of the INET_DIAG_INFO attribute. The kernel lays out the attributes of
    same-sized messages identically, so after one full walk over a message of a given
    length, later ones only check the attribute header at the remembered position.

    With `reuse`, for polling: a socket whose message is byte for byte the one of the last
    dump, but for tcp_info's "milliseconds since" fields, gets the same SocketRecord
    object again (its `dumped_at` tells how old those fields are). On a server most
    connections are idle between two polls; reusing them costs one dictionary lookup
    instead of building a record, and the tracker recognises them by identity. Sockets
    with a running timer are never reused (its expiry changes every dump), but for
    TIME_WAIT's 2MSL, whose deadline is fixed: those are compared by their deadline to
    the second, so a record is reused for a socket that only counted down (its `timer`
    then reads as of `dumped_at`, like the ages). Every socket of the last dump is
    remembered, and taken out as this dump finds it: what is left at the end vanished.
    After each dump, `fresh`, `outdated` and `vanished()` say how it differs from the one
    before (see `SocketChanges`), so that later stages need not look at every socket.
    Runs of such hits go through the C extension when it was built (`accelerated`); the
    Python loop below does the same, and reads every message that is not a hit.
    """

    def __init__(self, *, reuse: bool = False, accelerated: bool = True) -> None:
        # family -> (address -> port -> Endpoint, sockid bytes -> (local, remote), Family)
        self._families: dict[int, _FamilyCaches] = {
            AF_INET: ({}, {}, Family.IPV4),
            AF_INET6: ({}, {}, Family.IPV6),
        }
        # A message of the bare size has no attributes (TIME_WAIT sockets).
        self._layouts: dict[int, _Layout | None] = {_MSG_END: None}
        self._reuse = reuse
        # A socket's cookie -> its message but for the header and tcp_info's ages (see
        # `_masked`; None for a socket never reused), and its record; for the last dump
        # (`_previous`, emptied as this one finds its sockets) and this one. A hit is one
        # lookup by a small int and one comparison of bytes. With the C extension, a
        # `_reuse.Memory` holds both instead, and runs the hits.
        self._memory = _CMemory() if reuse and accelerated and _CMemory is not None else None
        self._previous: dict[int, tuple[bytes | None, SocketRecord]] = {}
        self._current: dict[int, tuple[bytes | None, SocketRecord]] = {}
        self._remembered = 0  # sockets the last dump left to compare with
        self._dumped_at: float | None = None
        self._dumped_at_ms = 0
        self.dumps = 0  # dumps started with `start_poll`
        self.fresh: list[SocketRecord] = []  # this dump's records that are not reused ones
        self.outdated: list[SocketRecord] = []  # the last dump's records these replace

    def start_poll(self, last_count: int, dumped_at: float | None = None) -> None:
        """Prepare a new dump (`last_count`: sockets in the previous one; `dumped_at`: the
        wall time of this one): bound the caches, forget sockets the last dump lacked."""
        if self._memory is not None:
            self._memory.swap()
            self._remembered = self._memory.remembered()
        elif self._reuse:
            self._previous, self._current = self._current, {}
            self._remembered = len(self._previous)
        if self._reuse:
            self._dumped_at = dumped_at
            self._dumped_at_ms = 0 if dumped_at is None else int(dumped_at * 1000)
            self.dumps += 1
            self.fresh, self.outdated = [], []
        limit = max(_CACHE_FLOOR, last_count + last_count // 4)
        for cache, pairs, _family in self._families.values():
            if sum(map(len, cache.values())) > limit:
                cache.clear()
            if len(pairs) > limit:
                pairs.clear()
        if len(self._layouts) > 4096:
            self._layouts = {_MSG_END: None}

    def vanished(self) -> tuple[SocketRecord, ...]:
        """After a dump: the last dump's records of the sockets this one did not have."""
        if self._memory is not None:
            return tuple(self._memory.vanished())
        return tuple(record for _key, record in self._previous.values())

    def _walk_attributes(self, data: bytes, off: int, length: int) -> bytes | None:
        """Validate every attribute of the message at `off`; return INET_DIAG_INFO's payload."""
        pos = off + _MSG_END
        message_end = off + length
        found = None
        while pos < message_end:
            if message_end - pos < 4:
                raise _malformed(f"truncated attribute header at offset {pos}")
            attr_length, attr_type = _ATTR.unpack_from(data, pos)
            if attr_length < 4 or pos + attr_length > message_end:
                raise _malformed(
                    f"truncated attribute (type {attr_type}, length {attr_length}) at offset {pos}"
                )
            if attr_type == INET_DIAG_INFO:
                found = (
                    pos - off,
                    (attr_length, attr_type),
                    pos - off + 4,
                    pos - off + attr_length,
                )
            pos += (attr_length + 3) & ~3
        self._layouts[length] = found
        return None if found is None else data[off + found[2] : off + found[3]]

    def feed(
        self, data: bytes, out: list[SocketRecord], seq: int | None = None
    ) -> tuple[bool, bool]:
        """Parse whole netlink messages in `data`, appending a record per socket to `out`.

        Returns (done, interrupted): NLMSG_DONE seen; a message carried NLM_F_DUMP_INTR.
        With `seq`, messages of other sequence numbers (leftovers of an abandoned dump)
        are skipped. Raises SourceError for NLMSG_ERROR and truncated or malformed messages.
        """
        end = len(data)
        off = 0
        done = False
        interrupted = False
        unpack_header = _NLMSGHDR.unpack_from
        unpack_header_and_cookie = _HEADER_AND_COOKIE.unpack_from
        unpack_message = _SOCKET_MESSAGE.unpack_from
        unpack_attr = _ATTR.unpack_from
        unpack_addresses = _ADDRESSES.unpack_from
        states = _STATE_BY_NUMBER
        timers = _TIMER_BY_NUMBER
        families = self._families
        layouts = self._layouts
        walk = self._walk_attributes
        append = out.append
        new = object.__new__
        record = SocketRecord
        timer_class = Timer
        (
            set_cookie,
            set_family,
            set_state,
            set_local,
            set_remote,
            set_recv_q,
            set_send_q,
            set_timer,
            set_uid,
            set_inode,
            set_info,
            set_dumped_at,
        ) = RECORD_SETTERS
        record_defaults = RECORD_DEFAULTS
        dumped_at = self._dumped_at
        set_timer_name, set_timer_expires, set_timer_retrans = _TIMER_SETTERS
        timer_defaults = _TIMER_DEFAULTS
        reuse = self._reuse
        memory = self._memory
        if memory is not None:
            take, put = memory.take, memory.put
        else:
            take, put = self._previous.pop, self._current.__setitem__
        # Nothing to reuse in a first dump: no C call per message.
        c_hits = memory.hits if memory is not None and self._remembered else None
        fresh_append = self.fresh.append
        outdated_append = self.outdated.append
        any_seq = -1 if seq is None else seq
        now_ms = self._dumped_at_ms
        masked = None
        while off < end:
            if c_hits is not None:
                off = c_hits(data, off, any_seq, now_ms, layouts, out, _REUSE_LIMITS)
                if off >= end:
                    break
            left = end - off
            if left >= _MSG_END:
                if reuse:
                    length, kind, flags, message_seq, low, high = unpack_header_and_cookie(
                        data, off
                    )
                    if (
                        kind == SOCK_DIAG_BY_FAMILY
                        and _MSG_END <= length <= left
                        and (seq is None or message_seq == seq)
                        and not flags & NLM_F_DUMP_INTR
                    ):
                        masked = _masked(data, off, length, layouts.get(length, False), now_ms)
                        seen = take(low | (high << 32), None)
                        if seen is not None:
                            if masked is not None and seen[0] == masked:
                                append(seen[1])
                                put(low | (high << 32), seen)
                                off += (length + 3) & ~3
                                continue
                            outdated_append(seen[1])
                    else:
                        masked = None
                (
                    length,
                    kind,
                    flags,
                    message_seq,
                    family,
                    state_number,
                    timer_number,
                    retrans,
                    cookie_low,
                    cookie_high,
                    expires,
                    rqueue,
                    wqueue,
                    uid,
                    inode,
                ) = unpack_message(data, off)
            elif left >= _HEADER_SIZE:
                length, kind, flags, message_seq, _pid = unpack_header(data, off)
            else:
                raise _malformed(f"truncated netlink header ({left} bytes at offset {off})")
            if length < _HEADER_SIZE or length > left:
                raise _malformed(
                    f"bad netlink message length {length} at offset {off} ({left} bytes left)"
                )
            if seq is not None and message_seq != seq:
                off += (length + 3) & ~3
                continue
            if flags & NLM_F_DUMP_INTR:
                interrupted = True
            if kind == SOCK_DIAG_BY_FAMILY:
                if length < _MSG_END:
                    raise _malformed(
                        f"socket message of {length} bytes at offset {off} is shorter than "
                        f"inet_diag_msg"
                    )
                state = states[state_number]
                if state is None:
                    raise _malformed(f"unknown TCP state {state_number} at offset {off}")
                known = families.get(family)
                if known is None:
                    raise _malformed(f"unknown address family {family} at offset {off}")
                cache, pairs, family_enum = known
                key = data[off + _SOCKID_OFFSET : off + _SOCKID_ENDS]
                ends = pairs.get(key)
                if ends is None:
                    sport, dport, src, dst = unpack_addresses(data, off + _SOCKID_OFFSET)
                    ports = cache.get(src)
                    if ports is None:
                        ports = cache[src] = {}
                    local = ports.get(sport)
                    if local is None:
                        local = ports[sport] = _endpoint(family, src, sport)
                    ports = cache.get(dst)
                    if ports is None:
                        ports = cache[dst] = {}
                    remote = ports.get(dport)
                    if remote is None:
                        remote = ports[dport] = _endpoint(family, dst, dport)
                    pairs[key] = (local, remote)
                else:
                    local, remote = ends
                if length == _MSG_END:
                    info = None
                else:
                    layout = layouts.get(length, False)
                    if layout is None:
                        info = None
                    elif layout and unpack_attr(data, off + layout[0]) == layout[1]:
                        info = data[off + layout[2] : off + layout[3]]
                    else:
                        info = walk(data, off, length)
                name = timers.get(timer_number) if timer_number else None
                item = new(record)
                cookie = cookie_low | (cookie_high << 32)
                set_cookie(item, cookie)
                set_family(item, family_enum)
                set_state(item, state)
                set_local(item, local)
                set_remote(item, remote)
                set_recv_q(item, rqueue)
                set_send_q(item, wqueue)
                if name is None:
                    set_timer(item, None)
                else:
                    timer = new(timer_class)
                    set_timer_name(timer, name)
                    set_timer_expires(timer, expires)
                    set_timer_retrans(timer, retrans)
                    if timer_defaults:
                        for setter, default in timer_defaults:
                            setter(timer, default)
                    set_timer(item, timer)
                set_uid(item, uid)
                set_inode(item, inode)
                set_info(item, info)
                set_dumped_at(item, dumped_at)
                if record_defaults:
                    for setter, default in record_defaults:
                        setter(item, default)
                append(item)
                if reuse:
                    if (
                        masked is None
                        and (name is None or timer_number == _TIMEWAIT_TIMER)
                        and not flags & NLM_F_DUMP_INTR
                    ):  # the first message of its length: its layout is known now
                        masked = _masked(data, off, length, layouts.get(length), now_ms)
                    put(cookie, (masked, item))
                    fresh_append(item)
            elif kind == NLMSG_DONE:
                done = True
                if length >= _HEADER_SIZE + 4:
                    (status,) = _ERRNO.unpack_from(data, off + _HEADER_SIZE)
                    if status < 0:
                        raise _kernel_error(-status)
                break
            elif kind == NLMSG_ERROR:
                if length < _HEADER_SIZE + 4:
                    raise _malformed(f"truncated error message at offset {off}")
                (status,) = _ERRNO.unpack_from(data, off + _HEADER_SIZE)
                if status < 0:
                    raise _kernel_error(-status)
            off += (length + 3) & ~3
        return done, interrupted


def _masked(
    data: bytes, off: int, length: int, layout: _Layout | Literal[False] | None, now_ms: int
) -> bytes | None:
    """The message at `off` without its netlink header (which carries the dump's sequence
    number) and tcp_info's ages: what stays the same while a socket is idle; with a 2MSL
    timer, its expiry replaced by its deadline (`now_ms`: the dump's wall time) in whole
    seconds. None while the layout of messages of this length is unknown (`layout` False),
    and for other running timers. _reuse.c compares messages with these bytes in place."""
    if layout is False:
        return None
    timer = data[off + _TIMER_AT]
    if timer:
        if timer != _TIMEWAIT_TIMER:
            return None
        (expires,) = _U32.unpack_from(data, off + _EXPIRES_OFFSET)
        deadline = _U32.pack(((now_ms + expires) // _DEADLINE_GRAIN_MS) & 0xFFFFFFFF)
        head = data[off + _HEADER_SIZE : off + _EXPIRES_OFFSET] + deadline
        start = off + _EXPIRES_ENDS
    else:
        head = b""
        start = off + _HEADER_SIZE
    if layout is None or layout[3] - layout[2] < _AGES_ENDS:
        return head + data[start : off + length]
    info = off + layout[2]
    return head + data[start : info + _AGES_OFFSET] + data[info + _AGES_ENDS : off + length]


def _endpoint(family: int, raw: bytes, port: int) -> Endpoint:
    if family == AF_INET:
        address = socket.inet_ntop(socket.AF_INET, raw[:4])
    else:
        address = socket.inet_ntop(socket.AF_INET6, raw)
    return Endpoint(address, _swap16(port))


def parse_dump(data: bytes) -> list[SocketRecord]:
    """Parse a complete captured dump (one or more replies, each ending in NLMSG_DONE)."""
    parser = DumpParser()
    records: list[SocketRecord] = []
    # Each reply ends at its NLMSG_DONE, where feed() stops, so cut at those boundaries.
    for chunk in _split_replies(data):
        done, _interrupted = parser.feed(chunk, records)
        if not done:
            raise _malformed("the dump ends without NLMSG_DONE")
    return records


def _split_replies(data: bytes) -> list[bytes]:
    """Cut concatenated dumps after each NLMSG_DONE (a malformed tail stays for feed())."""
    chunks: list[bytes] = []
    start = off = 0
    end = len(data)
    while end - off >= _HEADER_SIZE:
        length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, off)
        if length < _HEADER_SIZE:
            break
        off += (length + 3) & ~3
        if kind == NLMSG_DONE:
            chunks.append(data[start:off])
            start = off
    if start < end:
        chunks.append(data[start:])
    return chunks


def build_request(family: int, seq: int, *, tcp_info: bool = True) -> bytes:
    """A SOCK_DIAG_BY_FAMILY dump request for every TCP socket of `family` (AF_INET/AF_INET6)."""
    return _REQUEST.pack(
        _REQUEST.size,
        SOCK_DIAG_BY_FAMILY,
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
        0,
        family,
        socket.IPPROTO_TCP,
        1 << (INET_DIAG_INFO - 1) if tcp_info else 0,
        ALL_STATES,
    )


def open_diag_socket() -> socket.socket:
    """A NETLINK_SOCK_DIAG socket in the current namespace; SourceError if unavailable."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    except OSError as exc:
        raise SourceError(f"netlink sock_diag is not available: {exc.strerror}") from None
    return sock


def _raise_rcvbuf(sock: socket.socket) -> None:
    """Ask for a large receive buffer (SO_RCVBUFFORCE as root, else what the limit allows)."""
    so_rcvbufforce = getattr(socket, "SO_RCVBUFFORCE", 33)
    try:
        sock.setsockopt(socket.SOL_SOCKET, so_rcvbufforce, SO_RCVBUF_WANTED)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SO_RCVBUF_WANTED)


class NetlinkSource:
    """Dumps every TCP socket (IPv4 and IPv6, all states) of one network namespace.

    `tcp_info=False` skips the INET_DIAG_INFO attribute (records then carry no tcp_info).
    `reuse=False`, for a single dump, skips remembering the messages (see DumpParser).
    After each dump, `recv_seconds` and `parse_seconds` tell where its time went.
    """

    kind = SourceKind.NETLINK
    notice: str | None = None

    def __init__(
        self, netns: str | None = None, *, tcp_info: bool = True, reuse: bool = True
    ) -> None:
        self._netns = netns
        self._sock = self._open()
        # Set when a dump failed half-way: the kernel may still be sending the rest of it,
        # so the next dump starts on a fresh socket.
        self._abandoned = False
        self._tcp_info = tcp_info
        self._buffer = bytearray(RECV_BUFFER_SIZE)
        self._view = memoryview(self._buffer)
        self._reuse = reuse
        self._parser = DumpParser(reuse=reuse)
        self._seq = 0
        self._last_count = 0
        # Seconds spent in the last dump: receiving from the kernel, and parsing.
        self.recv_seconds = 0.0
        self.parse_seconds = 0.0
        # How the last dump differs from the one before (None: not known, see dump()).
        self.changes: SocketChanges | None = None

    def _open(self) -> socket.socket:
        if self._netns is None:
            sock = open_diag_socket()
        else:
            from tcpwatch.sources.netns import call_in_netns

            sock = call_in_netns(self._netns, open_diag_socket)
        try:
            _raise_rcvbuf(sock)
            sock.bind((0, 0))
        except OSError as exc:
            sock.close()
            raise SourceError(f"cannot set up the netlink socket: {exc.strerror}") from None
        return sock

    def dump(self) -> list[SocketRecord]:
        """Every TCP socket now; retried when the kernel flags the dump as interrupted.

        The cyclic garbage collector is paused meanwhile: the records hold no cycles, and
        letting it rescan a growing heap every few hundred records made parsing 50k
        sockets about half again slower.
        """
        if self._abandoned:
            self._sock.close()
            self._sock = self._open()
            self._abandoned = False
        parser = self._parser
        parser.start_poll(self._last_count, time.time())
        self.changes = None
        collecting = gc.isenabled()
        gc.disable()
        try:
            for attempt in range(3):
                retried = attempt > 0
                self.recv_seconds = self.parse_seconds = 0.0
                records: list[SocketRecord] = []
                interrupted = False
                for family in (AF_INET, AF_INET6):
                    interrupted |= self._dump_family(family, records)
                if not interrupted:
                    break
        except SourceError:
            self._abandoned = True
            raise
        finally:
            if collecting:
                gc.enable()
        self._last_count = len(records)
        # A retried dump took entries out for sockets it then parsed again: not exact.
        if self._reuse and not (interrupted or retried):
            self.changes = SocketChanges(
                base=parser.dumps - 1,
                dump=parser.dumps,
                fresh=tuple(parser.fresh),
                outdated=tuple(parser.outdated),
                vanished=parser.vanished(),
            )
        return records

    def _dump_family(self, family: int, records: list[SocketRecord]) -> bool:
        """Request one family's dump and parse it into `records`; True if interrupted."""
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        request = build_request(family, self._seq, tcp_info=self._tcp_info)
        sock = self._sock
        view = self._view
        feed = self._parser.feed
        clock = perf_counter
        seq = self._seq
        interrupted = False
        try:
            sock.send(request)
            while True:
                started = clock()
                size = sock.recv_into(view)
                received = clock()
                if size == 0:
                    raise SourceError("malformed sock_diag reply: the kernel closed the dump")
                done, intr = feed(view[:size].tobytes(), records, seq)
                self.parse_seconds += clock() - received
                self.recv_seconds += received - started
                interrupted |= intr
                if done:
                    return interrupted
        except OSError as exc:
            raise _kernel_error(exc.errno or errno.EIO) from None

    def close(self) -> None:
        self._sock.close()

"""The fallback source: /proc/net/tcp and /proc/net/tcp6, for kernels without sock_diag.

/proc offers less than netlink: no socket cookie (connections are keyed by 4-tuple), no
tcp_info, and no listen backlog (a listener's send_q is 0). Timer expiry comes in clock
ticks (USER_HZ) and is converted to milliseconds.
"""

from __future__ import annotations

import gc
import os
import socket
import struct
import time
from typing import BinaryIO

from tcpwatch.model import (
    Endpoint,
    Family,
    SocketChanges,
    SocketRecord,
    SourceKind,
    Timer,
    TimerName,
)
from tcpwatch.sources.base import SourceError
from tcpwatch.sources.netlink import RECORD_DEFAULTS, RECORD_SETTERS
from tcpwatch.tcp.states import TcpState

# /proc prints the timer and the state as two hex digits.
_TIMERS = {
    "01": TimerName.RETRANSMIT,
    "02": TimerName.KEEPALIVE,
    "03": TimerName.TIMEWAIT,
    "04": TimerName.PERSIST,
}
_STATE_BY_HEX = {
    spelling: state
    for state in TcpState
    if state.kernel is not None
    for spelling in (f"{state.kernel:02X}", f"{state.kernel:02x}")
}
_MS_PER_TICK = 1000 / os.sysconf("SC_CLK_TCK")
_WORD = struct.Struct("=I")
_WORDS6 = struct.Struct("=4I")


def _address(family: Family, text: str) -> str:
    """Decode /proc's hex address: 32-bit words printed in host byte order."""
    if family is Family.IPV4:
        return socket.inet_ntop(socket.AF_INET, _WORD.pack(int(text, 16)))
    words = [int(text[i : i + 8], 16) for i in range(0, 32, 8)]
    return socket.inet_ntop(socket.AF_INET6, _WORDS6.pack(*words))


class ProcTableParser:
    """Parses /proc/net/tcp{,6} text; caches Endpoints by their hex spelling across polls."""

    def __init__(self) -> None:
        self._endpoints: dict[str, Endpoint] = {}
        self._pairs: dict[tuple[str, str], tuple[Endpoint, Endpoint]] = {}

    def parse(
        self,
        text: str,
        family: Family,
        origin: str,
        out: list[SocketRecord],
        dumped_at: float | None = None,
    ) -> None:
        """Append a record per line of `text` (one table, header first) to `out`; each made
        at wall time `dumped_at` (see `SocketRecord.dumped_at`).

        SourceError names the first malformed line (`origin` says which file it came from).
        """
        if len(self._pairs) > 4 * 65536:
            self._pairs.clear()
            self._endpoints.clear()
        pairs = self._pairs
        states = _STATE_BY_HEX
        timers = _TIMERS
        new = object.__new__
        record = SocketRecord
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
        lines = text.splitlines()
        address_size = 8 if family is Family.IPV4 else 32
        for line in lines[1:]:
            fields = line.split()
            if not fields:
                continue
            try:
                local, remote, state_hex, queues, timer_text, retrans_hex = fields[1:7]
                uid, inode = int(fields[7]), int(fields[9])
                state = states[state_hex]
                ends = pairs.get((local, remote))
                if ends is None:
                    ends = pairs[(local, remote)] = (
                        self._endpoint(local, family, address_size),
                        self._endpoint(remote, family, address_size),
                    )
                tx_hex, rx_hex = queues.split(":")
                recv_q, send_q = int(rx_hex, 16), int(tx_hex, 16)
                timer_hex, when_hex = timer_text.split(":")
                name = timers.get(timer_hex)  # "00": no timer
                timer = None if name is None else _timer(name, when_hex, retrans_hex, fields[8])
            except (ValueError, IndexError, KeyError):
                shown = line.strip()
                if len(shown) > 120:
                    shown = shown[:117] + "..."
                raise SourceError(f"malformed line in {origin}: {shown!r}") from None
            item = new(record)
            set_cookie(item, None)
            set_family(item, family)
            set_state(item, state)
            set_local(item, ends[0])
            set_remote(item, ends[1])
            set_recv_q(item, recv_q)
            set_send_q(item, send_q)
            set_timer(item, timer)
            set_uid(item, uid)
            set_inode(item, inode)
            set_info(item, None)
            set_dumped_at(item, dumped_at)
            if record_defaults:
                for setter, default in record_defaults:
                    setter(item, default)
            out.append(item)

    def _endpoint(self, text: str, family: Family, address_size: int) -> Endpoint:
        endpoint = self._endpoints.get(text)
        if endpoint is None:
            address, port = text.split(":")
            if len(address) != address_size or len(port) != 4:
                raise ValueError(text)
            endpoint = self._endpoints[text] = Endpoint(_address(family, address), int(port, 16))
        return endpoint


def _timer(name: TimerName, when_hex: str, retrans_hex: str, probes: str) -> Timer:
    expires_ms = int(int(when_hex, 16) * _MS_PER_TICK)
    # Like sock_diag: keepalive and zero-window probes count probes sent, not retransmits.
    if name is TimerName.KEEPALIVE or name is TimerName.PERSIST:
        return Timer(name, expires_ms, int(probes))
    return Timer(name, expires_ms, int(retrans_hex, 16))


def _open_tables(base: str) -> list[tuple[Family, str, BinaryIO]]:
    tables = []
    for family, name in ((Family.IPV4, "tcp"), (Family.IPV6, "tcp6")):
        path = f"{base}/{name}"
        try:
            tables.append((family, path, open(path, "rb", buffering=0)))  # noqa: SIM115
        except FileNotFoundError:
            if family is Family.IPV4:
                raise SourceError(f"{path} does not exist (is /proc mounted?)") from None
            # No tcp6: IPv6 is disabled, so there are no IPv6 sockets to list.
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc.strerror}") from None
    return tables


class ProcSource:
    """Lists every TCP socket of one network namespace from /proc."""

    kind = SourceKind.PROC
    notice: str | None = None
    changes: SocketChanges | None = None  # /proc records are new objects every dump

    def __init__(self, netns: str | None = None) -> None:
        if netns is None:
            self._tables = _open_tables("/proc/net")
        else:
            from tcpwatch.sources.netns import call_in_netns

            # An open /proc/net file stays bound to the namespace of the thread that opened it.
            self._tables = call_in_netns(netns, lambda: _open_tables("/proc/thread-self/net"))
        self._parser = ProcTableParser()

    def dump(self) -> list[SocketRecord]:
        """Every TCP socket now (the garbage collector paused meanwhile, as in netlink)."""
        records: list[SocketRecord] = []
        dumped_at = time.time()
        collecting = gc.isenabled()
        gc.disable()
        try:
            for family, path, table in self._tables:
                try:
                    table.seek(0)
                    text = table.read().decode("ascii", errors="replace")
                except OSError as exc:
                    raise SourceError(f"cannot read {path}: {exc.strerror}") from None
                self._parser.parse(text, family, path, records, dumped_at)
        finally:
            if collecting:
                gc.enable()
        return records

    def close(self) -> None:
        for _family, _path, table in self._tables:
            table.close()

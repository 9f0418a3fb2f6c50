"""The fallback source: /proc/net/tcp and /proc/net/tcp6, for kernels without sock_diag.

/proc offers less than netlink: no socket cookie (connections are keyed by 4-tuple), no
tcp_info, and no listen backlog (a listener's send_q is 0). Timer expiry comes in clock
ticks (USER_HZ) and is converted to milliseconds.
"""

from __future__ import annotations

import os
import socket
import struct
from typing import BinaryIO

from tcpwatch.model import Endpoint, Family, SocketRecord, SourceKind, Timer, TimerName
from tcpwatch.sources.base import SourceError
from tcpwatch.tcp.states import TcpState

_TIMERS = {
    1: TimerName.RETRANSMIT,
    2: TimerName.KEEPALIVE,
    3: TimerName.TIMEWAIT,
    4: TimerName.PERSIST,
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

    def parse(self, text: str, family: Family, origin: str, out: list[SocketRecord]) -> None:
        """Append a record per line of `text` (one table, header first) to `out`.

        SourceError names the first malformed line (`origin` says which file it came from).
        """
        if len(self._endpoints) > 4 * 65536:
            self._endpoints.clear()
        lines = text.splitlines()
        expected_address = 8 if family is Family.IPV4 else 32
        for line in lines[1:]:
            fields = line.split()
            if not fields:
                continue
            try:
                _slot, local, remote, state_hex, queues, timer_text, retrans_hex = fields[:7]
                uid, probes, inode = int(fields[7]), int(fields[8]), int(fields[9])
                tx_hex, rx_hex = queues.split(":")
                timer_hex, when_hex = timer_text.split(":")
                state = TcpState.from_kernel(int(state_hex, 16))
                local_ep = self._endpoint(local, family, expected_address)
                remote_ep = self._endpoint(remote, family, expected_address)
                timer_number = int(timer_hex, 16)
                retrans = int(retrans_hex, 16)
                expires_ms = int(int(when_hex, 16) * _MS_PER_TICK)
                recv_q, send_q = int(rx_hex, 16), int(tx_hex, 16)
            except (ValueError, IndexError):
                shown = line.strip()
                if len(shown) > 120:
                    shown = shown[:117] + "..."
                raise SourceError(f"malformed line in {origin}: {shown!r}") from None
            name = _TIMERS.get(timer_number)
            timer = None
            if name is not None:
                # Like sock_diag: keepalive and zero-window probes count probes sent.
                count = probes if name in (TimerName.KEEPALIVE, TimerName.PERSIST) else retrans
                timer = Timer(name, expires_ms, count)
            out.append(
                SocketRecord(
                    None, family, state, local_ep, remote_ep, recv_q, send_q, timer, uid, inode
                )
            )

    def _endpoint(self, text: str, family: Family, address_size: int) -> Endpoint:
        endpoint = self._endpoints.get(text)
        if endpoint is None:
            address, port = text.split(":")
            if len(address) != address_size or len(port) != 4:
                raise ValueError(text)
            endpoint = self._endpoints[text] = Endpoint(_address(family, address), int(port, 16))
        return endpoint


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

    def __init__(self, netns: str | None = None) -> None:
        if netns is None:
            self._tables = _open_tables("/proc/net")
        else:
            from tcpwatch.sources.netns import call_in_netns

            # An open /proc/net file stays bound to the namespace of the thread that opened it.
            self._tables = call_in_netns(netns, lambda: _open_tables("/proc/thread-self/net"))
        self._parser = ProcTableParser()

    def dump(self) -> list[SocketRecord]:
        records: list[SocketRecord] = []
        for family, path, table in self._tables:
            try:
                table.seek(0)
                text = table.read().decode("ascii", errors="replace")
            except OSError as exc:
                raise SourceError(f"cannot read {path}: {exc.strerror}") from None
            self._parser.parse(text, family, path, records)
        return records

    def close(self) -> None:
        for _family, _path, table in self._tables:
            table.close()

"""Destroy notifications: the kernel's last word on every full TCP socket it frees.

Polling misses sockets that live and die between two polls; a sock_diag socket bound to
the SKNLGRP_INET_TCP_DESTROY and SKNLGRP_INET6_TCP_DESTROY multicast groups receives one
message per freed socket, with its final tcp_info. Messages can be dropped when the reader
falls behind (the kernel reports ENOBUFS), so they supplement polling, never replace it.
A destroyed socket's record has state CLOSE, and uid, inode and timer are not filled in.
"""

from __future__ import annotations

import errno
import socket

from tcpwatch.model import SocketRecord
from tcpwatch.sources.base import SourceError
from tcpwatch.sources.netlink import DumpParser, open_diag_socket

SKNLGRP_INET_TCP_DESTROY = 1
SKNLGRP_INET6_TCP_DESTROY = 3
DESTROY_GROUPS = (1 << (SKNLGRP_INET_TCP_DESTROY - 1)) | (1 << (SKNLGRP_INET6_TCP_DESTROY - 1))
_BUFFER_SIZE = 1 << 16
_RCVBUF = 4 << 20
_MAX_READS = 256


def _open_listener(receive_buffer: int) -> socket.socket:
    sock = open_diag_socket()
    try:
        try:
            sock.setsockopt(
                socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), receive_buffer
            )
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.bind((0, DESTROY_GROUPS))
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.EPERM, errno.EACCES):
            raise SourceError("destroy notifications need CAP_NET_ADMIN (run as root)") from None
        raise SourceError(f"cannot subscribe to destroy notifications: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


class DestroyListener:
    """Non-blocking subscriber to TCP destroy notifications of one network namespace.

    Wait for `fileno()` to become readable (select/poll/an event loop), then `drain()`.
    `lost` counts the times the kernel dropped notifications because they were not read
    fast enough; `receive_buffer` (bytes) sets how much may queue up before that happens.
    """

    def __init__(self, netns: str | None = None, *, receive_buffer: int = _RCVBUF) -> None:
        if netns is None:
            self._sock = _open_listener(receive_buffer)
        else:
            from tcpwatch.sources.netns import call_in_netns

            self._sock = call_in_netns(netns, lambda: _open_listener(receive_buffer))
        self._buffer = bytearray(_BUFFER_SIZE)
        self._view = memoryview(self._buffer)
        self._parser = DumpParser()
        self.lost = 0

    def fileno(self) -> int:
        return self._sock.fileno()

    def drain(self) -> list[SocketRecord]:
        """Records of sockets destroyed since the last drain (never blocks).

        Reads at most `_MAX_READS` batches, so a storm of closes cannot keep the caller
        here forever; the descriptor then stays readable and the rest comes next time.
        """
        records: list[SocketRecord] = []
        self._parser.start_poll(0)  # keeps its caches bounded
        for _read in range(_MAX_READS):
            try:
                size = self._sock.recv_into(self._view)
            except BlockingIOError:
                return records
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    self.lost += 1
                    continue
                raise SourceError(f"reading destroy notifications failed: {exc.strerror}") from None
            self._parser.feed(self._view[:size].tobytes(), records)
        return records

    def close(self) -> None:
        self._sock.close()

"""The interface every socket source implements."""

from __future__ import annotations

from typing import Protocol

from tcpwatch.errors import TcpwatchError
from tcpwatch.model import SocketChanges, SocketRecord, SourceKind


class SourceError(TcpwatchError):
    """A source cannot deliver; the message is one line meant for the user."""


class SocketSource(Protocol):
    """Dumps every TCP socket of one network namespace."""

    kind: SourceKind
    # Shown to the user when set, e.g. why the /proc fallback is in use.
    notice: str | None
    # How the last dump differs from the one before, for a source that knows.
    changes: SocketChanges | None

    def dump(self) -> list[SocketRecord]: ...

    def close(self) -> None: ...

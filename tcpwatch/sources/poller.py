"""One poll = one Snapshot: a source's socket dump plus the owners of those sockets."""

from __future__ import annotations

import socket
import time
from operator import attrgetter

from tcpwatch.model import ProcessInfo, Snapshot
from tcpwatch.sources.base import SocketSource, SourceError
from tcpwatch.sources.owners import OwnerResolver

FALLBACK_NOTICE = (
    "netlink sock_diag unavailable ({reason}): reading /proc/net/tcp; no socket cookies or tcp_info"
)


_INODE = attrgetter("inode")  # a C-level loop over 50k records, not a generator


class Poller:
    """Polls one source and resolves owners; `notice` is shown with every snapshot."""

    def __init__(
        self,
        source: SocketSource,
        owners: OwnerResolver | None,
        netns: str | None,
        *,
        notice: str | None = None,
        prefetch_owners: bool = False,
    ) -> None:
        self._source = source
        self._prefetch_owners = prefetch_owners
        self._owners = owners
        self._netns = netns
        self._notice = notice
        self._host = socket.gethostname()
        self._owners_dump: int | None = None  # the dump the owner answer is for

    def poll(self) -> Snapshot:
        taken_at = time.time()
        monotonic = time.monotonic()
        if self._prefetch_owners and self._owners is not None:
            self._prefetch_owners = False  # only the first scan is a full one
            self._owners.prefetch()  # alongside the dump
        sockets = tuple(self._source.dump())
        changes = self._source.changes
        owners: dict[int, ProcessInfo] = {}
        note: str | None = None
        if self._owners is not None:
            if changes is not None and changes.follows(self._owners_dump):
                # Only the sockets that came, went or changed: no pass over all of them.
                came = {record.inode for record in changes.fresh}
                left = {record.inode for record in (*changes.outdated, *changes.vanished)}
                owners, note = self._owners.resolve_changes(came - left, left - came, sockets)
            else:
                owners, note = self._owners.resolve(map(_INODE, sockets), hints=sockets)
            self._owners_dump = None if changes is None else changes.dump
        notices = [text for text in (self._notice, self._source.notice) if text]
        return Snapshot(
            taken_at=taken_at,
            monotonic=monotonic,
            host=self._host,
            netns=self._netns,
            source=self._source.kind,
            sockets=sockets,
            owners=owners,
            owners_note=note,
            notice="; ".join(notices) or None,
            changes=changes,
        )

    def close(self) -> None:
        self._source.close()
        if self._owners is not None:
            self._owners.close()


def open_poller(
    source: str = "auto",
    netns: str | None = None,
    owners: bool = True,
    *,
    once: bool = False,
) -> Poller:
    """A poller on the chosen source: "netlink", "proc", or "auto" (netlink, else /proc
    with a notice saying what is missing). SourceError when neither can be opened.

    once, for a single poll by a single-threaded caller: scan for owners in a child
    process during the dump (see `OwnerResolver.prefetch`), and keep nothing for a next
    dump to reuse (see `DumpParser`).
    """
    from tcpwatch.sources.netlink import NetlinkSource

    resolver = OwnerResolver() if owners else None
    if source == "netlink":
        return Poller(NetlinkSource(netns, reuse=not once), resolver, netns, prefetch_owners=once)
    if source == "proc":
        from tcpwatch.sources.procfs import ProcSource

        return Poller(ProcSource(netns), resolver, netns, prefetch_owners=once)
    if source != "auto":
        raise ValueError(f"unknown source {source!r}")
    try:
        return Poller(NetlinkSource(netns, reuse=not once), resolver, netns, prefetch_owners=once)
    except SourceError as error:
        from tcpwatch.sources.procfs import ProcSource

        notice = FALLBACK_NOTICE.format(reason=_reason(str(error)))
        return Poller(ProcSource(netns), resolver, netns, notice=notice, prefetch_owners=once)


def _reason(message: str) -> str:
    """The cause alone, so that the notice does not say "netlink sock_diag" twice."""
    if message.startswith("netlink sock_diag") and ": " in message:
        message = message.split(": ", 1)[1]
    return message.rstrip(".")

"""Which process holds each socket: socket inode -> ProcessInfo, kept up to date cheaply.

The kernel has no inode -> pid index: the only way is to read every `/proc/PID/fd/*` link,
which is what `ss -p` does on every run. This resolver does it once and then rescans a
process's fds only when that process is new, its open-fd count changed (the size of
`/proc/PID/fd` is the fd count on Linux >= 6.2), or a socket the caller asks about stays
unknown for two polls (a process closed one socket and opened another). A process that
closes a socket and opens another at the same fd count (a server replacing connections)
usually gets the freed fd number back, so the fd of every socket that left the dump is
read again once: that finds most new sockets without reading any process whole. Process
details (name, cmdline, user) come from psutil, cached per process.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import platform
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import psutil

from tcpwatch.model import ProcessInfo, SocketRecord
from tcpwatch.tcp.states import TcpState

NOTE_NOT_ROOT = "owner unknown for some sockets: run as root to see all owners"

_SOCKET_PREFIX = "socket:["
# fd links one poll may read looking for sockets that are not where the fd counts say.
SEARCH_BUDGET = 20_000


@dataclass(slots=True)
class _Pid:
    """What the last scan of one process found."""

    start: int  # clock ticks after boot: tells a reused pid from the old process
    fd_ctime: int  # ctime of /proc/PID/fd: changes when that inode is made anew
    fd_count: int
    inodes: frozenset[int] = frozenset()
    fd_of: dict[int, int] = field(default_factory=dict)  # socket inode -> its fd number
    denied: bool = False  # its fds cannot be read (another user's process, not root)
    changed: int = 0  # the poll at which its set of sockets last changed
    info: ProcessInfo | None = None


@dataclass(slots=True)
class _Holders:
    """inode -> the lowest pid holding it (a stable choice among forked holders).

    Most sockets have one holder; `shared` keeps every holder of the others so that the
    owner can move to the next one when the lowest lets go.
    """

    owner: dict[int, int] = field(default_factory=dict)
    shared: dict[int, set[int]] = field(default_factory=dict)
    changed: set[int] = field(default_factory=set)  # inodes added or removed since cleared

    def add(self, inode: int, pid: int) -> None:
        self.changed.add(inode)
        current = self.owner.setdefault(inode, pid)
        if current != pid:
            self.shared.setdefault(inode, {current}).add(pid)
            if pid < current:
                self.owner[inode] = pid

    def remove(self, inode: int, pid: int) -> None:
        self.changed.add(inode)
        pids = self.shared.get(inode)
        if pids is None:
            if self.owner.get(inode) == pid:
                del self.owner[inode]
            return
        pids.discard(pid)
        self.owner[inode] = min(pids)
        if len(pids) == 1:
            del self.shared[inode]


def _fd_count_works() -> bool:
    """`stat("/proc/PID/fd").st_size` counts open fds from Linux 6.2 on (0 before)."""
    try:
        major, minor = (int(part) for part in platform.release().split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (6, 2)


class OwnerResolver:
    """Maps socket inodes to the process holding them, incrementally across polls."""

    def __init__(self, proc: str = "/proc") -> None:
        self._proc = proc
        self._pids: dict[int, _Pid] = {}
        self._holders = _Holders()
        self._use_fd_count = _fd_count_works()
        # Not root: other users' processes may be unreadable or hidden (hidepid).
        self._not_root = os.geteuid() != 0
        # Inodes no readable process held when a search had read every process; not
        # searched again while they are still asked about.
        self._unfindable: set[int] = set()
        # Inodes asked about but not found at the previous poll.
        self._missing_before: set[int] = set()
        # Processes the current search has read already (it spans polls; see _search).
        self._searched: set[int] = set()
        # Inodes asked about at the previous poll: those missing now were closed.
        self._wanted_before: set[int] = set()
        # The previous answer: each poll copies it and changes only what changed.
        self._owners: dict[int, ProcessInfo] = {}
        # Processes whose sockets changed: their name and cmdline may have too (exec).
        self._stale_info: set[int] = set()
        self._polls = 0
        # A first scan running in a child process (see `prefetch`): (pid, pipe read end).
        self._child: tuple[int, int] | None = None

    def prefetch(self) -> None:
        """Start the first full scan now, in a child process, so that it overlaps what the
        caller does next (the socket dump); the next `resolve` takes its result.

        Reading every fd link is syscall-bound and the dump is CPU-bound: in two processes
        they overlap, which threads do not (the GIL). Forks, so only for a caller with no
        other threads (the one-shot `snapshot`). No-op once anything has been scanned.
        """
        if self._pids or self._child is not None:
            return
        try:
            read_end, write_end = os.pipe()
        except OSError:
            return  # no prefetch: `resolve` scans here as usual
        try:
            child = os.fork()
        except OSError:
            os.close(read_end)
            os.close(write_end)
            return
        if child == 0:  # the child: report through the pipe, never return
            status = 1
            try:
                os.close(read_end)
                self._refresh()
                found = {
                    pid: (e.start, e.fd_ctime, e.fd_count, e.denied, e.fd_of)
                    for pid, e in self._pids.items()
                }
                with os.fdopen(write_end, "wb") as pipe:
                    pipe.write(marshal.dumps(found))
                status = 0
            finally:
                os._exit(status)
        os.close(write_end)
        self._child = (child, read_end)

    def close(self) -> None:
        """Stop and reap a prefetching child that no `resolve` took."""
        if self._child is not None:
            child, read_end = self._child
            self._child = None
            os.close(read_end)  # a child still writing gets EPIPE and exits
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child, 0)

    def _adopt(self) -> None:
        """Take the prefetching child's scan as if `_refresh` had made it (a failed child
        leaves nothing: `_refresh` then scans here as usual)."""
        assert self._child is not None
        child, read_end = self._child
        self._child = None
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
        _pid, status = os.waitpid(child, 0)
        if status != 0:
            return
        found: dict[int, tuple[int, int, int, bool, dict[int, int]]] = marshal.loads(data)
        holders_add = self._holders.add
        for pid, (start, fd_ctime, fd_count, denied, inodes) in found.items():
            self._pids[pid] = _Pid(
                start,
                fd_ctime,
                fd_count,
                frozenset(inodes),
                inodes,
                denied,
                changed=self._polls if inodes else 0,
            )
            for inode in inodes:
                holders_add(inode, pid)

    def resolve(
        self, inodes: Iterable[int], hints: Sequence[SocketRecord] = ()
    ) -> tuple[dict[int, ProcessInfo], str | None]:
        """The owner of every inode that has one, and a note when some owners are unknowable.

        Inode 0 (TIME_WAIT, request and orphan sockets) never has an owner. `hints`, the
        polled sockets themselves, tell a search which processes to read first.
        """
        wanted = set(inodes)
        wanted.discard(0)
        failure = self._refresh_or_why()
        if failure is not None:
            return {}, failure
        # Set operations over every socket are the cost of a poll: one pass finds both
        # the sockets that came and those that went; the rest works on those and on the
        # inodes whose holder changed (`recent`).
        came_or_went = wanted.symmetric_difference(self._wanted_before)
        closed = came_or_went - wanted
        opened = came_or_went - closed
        self._wanted_before = wanted
        return self._resolve(wanted, opened, closed, hints)

    def resolve_changes(
        self, opened: set[int], closed: set[int], hints: Sequence[SocketRecord] = ()
    ) -> tuple[dict[int, ProcessInfo], str | None]:
        """The same answer as `resolve`, told only the inodes that came (`opened`) and went
        (`closed`) since the last call: no pass over every socket."""
        failure = self._refresh_or_why()
        if failure is not None:
            return {}, failure
        opened, closed = opened - {0}, closed - {0}
        wanted = self._wanted_before
        wanted -= closed
        wanted |= opened
        return self._resolve(wanted, opened, closed, hints)

    def _refresh_or_why(self) -> str | None:
        """Start a poll: reread what changed in /proc; the note to show if it cannot."""
        self._polls += 1
        try:
            self._refresh()
        except OSError as error:
            return f"owners unknown: cannot read {self._proc}: {error.strerror or error}"
        return None

    def _resolve(
        self,
        wanted: set[int],
        opened: set[int],
        closed: set[int],
        hints: Sequence[SocketRecord],
    ) -> tuple[dict[int, ProcessInfo], str | None]:
        owner = self._holders.owner
        if closed:
            self._reread_fds_of(closed)
        recent = self._holders.changed
        missing = self._unowned(self._missing_before | opened | recent, wanted)
        # Search only for sockets already missing at the previous poll: most sockets
        # missing once were closed after the dump, and the next dump will not have them.
        search = (missing & self._missing_before) - self._unfindable
        if search and self._search(search, self._likely_holders(search, hints)):
            self._unfindable = missing.difference(owner)
        else:
            self._unfindable &= missing
        self._missing_before = self._unowned(missing | recent, wanted)
        owners = self._answer(wanted, closed, opened)
        note = None
        if len(owners) < len(wanted) and (
            self._not_root or any(entry.denied for entry in self._pids.values())
        ):
            note = NOTE_NOT_ROOT
        return owners, note

    def _unowned(self, inodes: set[int], wanted: set[int]) -> set[int]:
        owner = self._holders.owner
        return {inode for inode in inodes if inode in wanted and inode not in owner}

    def _answer(
        self, wanted: set[int], closed: set[int], opened: set[int]
    ) -> dict[int, ProcessInfo]:
        """The previous answer, copied (it was handed out), with the closed sockets gone
        and every socket that came or whose holder or holder's details changed looked up."""
        owner = self._holders.owner
        owners = self._owners.copy()
        for inode in closed:
            owners.pop(inode, None)
        update = opened | (self._holders.changed & wanted)
        self._holders.changed = set()
        for pid in self._reread_stale_info(wanted):
            entry = self._pids.get(pid)
            if entry is not None:
                update |= entry.inodes & wanted
        for inode in update:
            pid = owner.get(inode)
            info = None if pid is None else self._info(pid)
            if info is None:
                owners.pop(inode, None)
            else:
                owners[inode] = info
        self._owners = owners
        return owners

    def _reread_stale_info(self, wanted: set[int]) -> list[int]:
        """Read name, cmdline and user again for processes whose sockets changed and that
        hold a socket asked about; returns those whose details are not as they were."""
        changed: list[int] = []
        for pid in list(self._stale_info):
            entry = self._pids.get(pid)
            if entry is None:
                self._stale_info.discard(pid)
                continue
            if entry.inodes.isdisjoint(wanted):
                continue  # read when it holds a socket asked about
            self._stale_info.discard(pid)
            info = _process_info(pid)
            if info != entry.info:
                entry.info = info
                changed.append(pid)
        return changed

    def _refresh(self) -> None:
        """Drop dead processes, rescan new ones and those whose fd count changed.

        A reused pid is told apart by the process start time. Reading it costs three
        syscalls per process, so it is read only when `/proc/PID/fd` is a new inode (its
        ctime changed): while one process lives, its inode and ctime stay the same.
        """
        if self._child is not None:
            self._adopt()
        seen: set[int] = set()
        for name in os.listdir(self._proc):
            if not name.isdigit():
                continue
            pid = int(name)
            try:
                fd_stat = os.stat(f"{self._proc}/{pid}/fd")
            except OSError:  # exited meanwhile
                continue
            entry = self._pids.get(pid)
            if entry is None or entry.fd_ctime != fd_stat.st_ctime_ns:
                start = self._start_time(pid)
                if start is None:
                    continue
                if entry is not None and entry.start != start:
                    self._forget(pid)
                    entry = None
            seen.add(pid)
            fd_count = fd_stat.st_size
            if entry is None:
                entry = self._pids[pid] = _Pid(start, fd_stat.st_ctime_ns, fd_count)
                self._scan(pid, entry)
                continue
            entry.fd_ctime = fd_stat.st_ctime_ns
            if fd_count != entry.fd_count and self._use_fd_count:
                entry.fd_count = fd_count
                self._scan(pid, entry)
        for pid in [pid for pid in self._pids if pid not in seen]:
            self._forget(pid)

    def _reread_fds_of(self, closed: set[int]) -> None:
        """Read again the fd of each closed socket that had a known owner: the process's
        next socket most likely took that fd number (the lowest free one), at the same fd
        count. One link per closed socket, and it drops the closed one from the cache."""
        owner = self._holders.owner
        readlink = os.readlink
        touched: set[int] = set()
        for inode in closed:
            pid = owner.get(inode)
            if pid is None:
                continue
            entry = self._pids[pid]
            fd = entry.fd_of.get(inode)
            if fd is None:
                continue
            try:
                target = readlink(f"{self._proc}/{pid}/fd/{fd}")
            except OSError:  # fd closed, or the process is gone
                target = ""
            now = int(target[8:-1]) if target.startswith(_SOCKET_PREFIX) else 0
            if now == inode:
                continue  # still held: a socket the caller does not ask about
            del entry.fd_of[inode]
            self._holders.remove(inode, pid)
            if now and now not in entry.fd_of:
                entry.fd_of[now] = fd
                self._holders.add(now, pid)
            touched.add(pid)
        for pid in touched:  # once per process: its set of inodes can be large
            entry = self._pids[pid]
            entry.inodes = frozenset(entry.fd_of)
            entry.changed = self._polls

    def _likely_holders(self, missing: set[int], hints: Sequence[SocketRecord]) -> set[int]:
        """Processes most likely to hold `missing`: the owner of the listener on the same
        local port (accepted connections), and owners of sockets with the same local
        address and port or to the same remote endpoint (a client's other connections)."""
        locals_: set[tuple[str, int]] = set()
        remotes: set[tuple[str, int]] = set()
        for record in hints:
            if record.inode in missing:
                locals_.add((record.local.address, record.local.port))
                locals_.add(("", record.local.port))  # a wildcard listener's address
                if record.remote.port:
                    remotes.add((record.remote.address, record.remote.port))
        if not locals_:
            return set()
        owner = self._holders.owner
        wildcard = {"0.0.0.0", "::"}
        pids: set[int] = set()
        for record in hints:
            pid = owner.get(record.inode) if record.inode else None
            if pid is None:
                continue
            local = (record.local.address, record.local.port)
            if (
                local in locals_
                or (record.remote.address, record.remote.port) in remotes
                or (
                    record.state is TcpState.LISTEN
                    and record.local.address in wildcard
                    and ("", record.local.port) in locals_
                )
            ):
                pids.add(pid)
        return pids

    def _search(self, missing: set[int], likely: set[int]) -> bool:
        """Rescan processes whose fd count did not change, looking for `missing` inodes.

        A process can close one socket and open another between polls, keeping its fd
        count. A search reads at most SEARCH_BUDGET fd links per poll and resumes where it
        stopped at the next poll. Likely holders come first: the `likely` ones, those
        whose sockets changed most recently, then those holding any.
        Returns True when every readable process has been searched since the search began.
        """
        budget = SEARCH_BUDGET
        candidates = [
            (pid not in likely, -entry.changed, not entry.inodes, pid)
            for pid, entry in self._pids.items()
            if pid not in self._searched and not entry.denied
        ]
        candidates.sort()
        for *_, pid in candidates:
            if not missing or budget <= 0:
                break
            entry = self._pids[pid]
            budget -= entry.fd_count or 1
            missing.difference_update(self._scan(pid, entry))
            self._searched.add(pid)
        if not missing:
            self._searched.clear()
            return False
        if budget > 0:  # nothing left to read: what is still missing cannot be found
            self._searched.clear()
            return True
        return False

    def _scan(self, pid: int, entry: _Pid) -> frozenset[int]:
        """Read the process's fd links; record its socket inodes. Returns them."""
        fd_dir = f"{self._proc}/{pid}/fd"
        fd_of: dict[int, int] = {}
        try:
            names = os.listdir(fd_dir)
        except PermissionError:
            entry.denied = True
            return frozenset()
        except OSError:  # exited meanwhile
            names = []
        readlink = os.readlink
        for fd in names:
            try:
                target = readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if target.startswith(_SOCKET_PREFIX):
                fd_of[int(target[8:-1])] = int(fd)
        entry.denied = False
        entry.fd_of = fd_of
        new = frozenset(fd_of)
        if new != entry.inodes:
            entry.changed = self._polls
            self._stale_info.add(pid)  # name and cmdline may have changed too (exec, prctl)
        for inode in entry.inodes - new:
            self._holders.remove(inode, pid)
        for inode in new - entry.inodes:
            self._holders.add(inode, pid)
        entry.inodes = new
        return new

    def _forget(self, pid: int) -> None:
        entry = self._pids.pop(pid)
        for inode in entry.inodes:
            self._holders.remove(inode, pid)

    def _start_time(self, pid: int) -> int | None:
        try:
            with open(f"{self._proc}/{pid}/stat", "rb") as file:
                data = file.read()
        except OSError:
            return None
        # Field 22 (starttime), counted after the ")" that ends the command name.
        return int(data[data.rindex(b")") + 2 :].split(b" ", 20)[19])

    def _info(self, pid: int) -> ProcessInfo | None:
        entry = self._pids.get(pid)
        if entry is None:
            return None
        if entry.info is None:
            entry.info = _process_info(pid)
        return entry.info


def _process_info(pid: int) -> ProcessInfo | None:
    """Name, cmdline and user of a process; parts the caller may not read stay empty."""
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            name = process.name()
            try:
                cmdline = tuple(process.cmdline())
            except psutil.AccessDenied:
                cmdline = ()
            try:
                uid: int | None = process.uids().real
            except psutil.AccessDenied:
                uid = None
            try:
                user: str | None = process.username()
            except (psutil.AccessDenied, KeyError):
                user = None if uid is None else str(uid)
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:
        return ProcessInfo(pid=pid, name="?", cmdline=(), user=None, uid=None)
    return ProcessInfo(pid=pid, name=name, cmdline=cmdline, user=user, uid=uid)

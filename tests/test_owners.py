"""Socket owners against real processes in a private network namespace, checked with `ss -p`."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcpwatch.sources import owners as owners_module
from tcpwatch.sources.netlink import NetlinkSource
from tcpwatch.sources.owners import NOTE_NOT_ROOT, OwnerResolver, _Holders
from tests.netns import private_netns, requires_root, ss

ROOT = Path(__file__).resolve().parents[1]


# A process that holds sockets on command (one JSON line in, one JSON line out). Its
# forked child shares every socket the parent had at fork time, as preforking servers do.
HOLDER = r"""
import ctypes, json, os, signal, socket, sys

libc = ctypes.CDLL(None, use_errno=True)
socks = {}

def ino(s):
    return os.fstat(s.fileno()).st_ino

def reply(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()

listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(16)
port = listener.getsockname()[1]
child = os.fork()
if child == 0:
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: go when the parent goes
    if os.getppid() == 1:
        os._exit(0)
    sys.stdin.close()
    signal.pause()
    os._exit(0)
reply(pid=os.getpid(), child=child, port=port, listener=ino(listener))
for line in sys.stdin:
    cmd = json.loads(line)
    op = cmd["op"]
    if op == "connect":  # an established pair, both ends held by this process only
        client = socket.create_connection(("127.0.0.1", port))
        server, _ = listener.accept()
        socks[cmd["name"]] = (client, server)
        reply(client=ino(client), server=ino(server))
    elif op == "timewait":  # the client closes first and ends in TIME_WAIT
        client = socket.create_connection(("127.0.0.1", port))
        server, _ = listener.accept()
        client.close()
        server.recv(1)
        server.close()
        reply(ok=True)
    elif op == "swap":  # close a pair and open another: the fd count stays the same
        for s in socks.pop(cmd["name"]):
            s.close()
        client = socket.create_connection(("127.0.0.1", port))
        server, _ = listener.accept()
        socks[cmd["name"]] = (client, server)
        reply(client=ino(client), server=ino(server), fds=len(os.listdir("/proc/self/fd")))
    elif op == "files":  # plain files to trade for sockets later
        files = [open(os.devnull) for _ in range(2)]
        reply(fds=len(os.listdir("/proc/self/fd")))
    elif op == "trade":  # close two files and open a pair: fd count same, no socket freed
        for f in files:
            f.close()
        client = socket.create_connection(("127.0.0.1", port))
        server, _ = listener.accept()
        socks[cmd["name"]] = (client, server)
        reply(client=ino(client), server=ino(server), fds=len(os.listdir("/proc/self/fd")))
    elif op == "fds":
        reply(fds=len(os.listdir("/proc/self/fd")))
    elif op == "rename":  # PR_SET_NAME: the process's name (comm) changes, as after exec
        libc.prctl(15, cmd["name"].encode(), 0, 0, 0)
        reply(ok=True)
    elif op == "kill-child":
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        reply(ok=True)
"""


class Holder:
    """The HOLDER script running inside a namespace."""

    def __init__(self, ns: str) -> None:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", HOLDER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.hello = self._read()

    def _read(self, timeout: float = 10.0) -> dict:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, "holder did not answer"
        line = self.proc.stdout.readline()
        assert line, "holder exited"
        return json.loads(line)

    def ask(self, **command: object) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def ns() -> Iterator[str]:
    with private_netns() as name:
        yield name


@pytest.fixture
def holder(ns: str) -> Iterator[Holder]:
    h = Holder(ns)
    try:
        yield h
    finally:
        h.stop()


def ss_sockets(ns: str) -> list[tuple[str, int, set[int]]]:
    """(state, inode, pids holding it) for every socket `ss -tanHoep` shows in `ns`."""
    return [(row.state, row.inode, set(row.pids)) for row in ss(ns, "-tanHoep")]


@requires_root
def test_owners_match_ss(ns: str, holder: Holder) -> None:
    holder.ask(op="connect", name="a")
    holder.ask(op="timewait")
    deadline = time.monotonic() + 5
    rows = ss_sockets(ns)
    while not any(state == "TIME_WAIT" for state, _, _ in rows):
        assert time.monotonic() < deadline, "no TIME_WAIT socket appeared"
        rows = ss_sockets(ns)
    assert {state for state, _, _ in rows} >= {"LISTEN", "ESTABLISHED", "TIME_WAIT"}
    owners, note = OwnerResolver().resolve(inode for _, inode, _ in rows)
    assert note is None
    for state, inode, pids in rows:
        if inode == 0:
            assert state == "TIME_WAIT"
            assert inode not in owners
            continue
        assert pids, f"ss shows no owner for {inode}"
        assert owners[inode].pid == min(pids), (state, inode, pids)
        assert owners[inode].name == "python" or owners[inode].name.startswith("python")
        assert owners[inode].user == "root"
        assert owners[inode].uid == 0
        assert owners[inode].cmdline[:2] == (sys.executable, "-c")
    # The listener is shared with the forked child: the lowest pid wins.
    hello = holder.hello
    assert owners[hello["listener"]].pid == min(hello["pid"], hello["child"])


@requires_root
def test_incremental_cache_follows_changes(ns: str, holder: Holder) -> None:
    resolver = OwnerResolver()
    pid, child = holder.hello["pid"], holder.hello["child"]
    listener = holder.hello["listener"]
    owners, _ = resolver.resolve([listener])
    assert owners[listener].pid == min(pid, child)

    # A new socket: the holder's fd count changed, so it is rescanned.
    pair = holder.ask(op="connect", name="a")
    owners, _ = resolver.resolve([listener, pair["client"], pair["server"]])
    assert owners[pair["client"]].pid == pid
    assert owners[pair["server"]].pid == pid

    # Close one pair and open one: the fd count is unchanged; the new sockets took the
    # freed fd numbers, and reading those finds them at once, with no process read whole.
    before = holder.ask(op="fds")["fds"]
    swapped = holder.ask(op="swap", name="a")
    assert swapped["fds"] == before
    asked = [listener, swapped["client"], swapped["server"]]
    scans: list[int] = []
    scan = resolver._scan
    resolver._scan = lambda p, entry: scans.append(p) or scan(p, entry)  # type: ignore[method-assign]
    owners, _ = resolver.resolve(asked)
    assert scans == []
    assert owners[swapped["client"]].pid == pid
    assert owners[swapped["server"]].pid == pid

    # A holder exits: the shared listener now belongs to the process still holding it.
    holder.ask(op="kill-child")
    owners, _ = resolver.resolve([listener])
    assert owners[listener].pid == pid
    assert {inode: pids for _, inode, pids in ss_sockets(ns)}[listener] == {pid}


@requires_root
def test_each_answer_equals_a_fresh_resolver_s_and_stays_as_handed_out(
    ns: str, holder: Holder
) -> None:
    """Answers are built from the previous one: they must still be what a resolver
    starting from nothing says, poll after poll, and an answer handed out never changes."""
    resolver = OwnerResolver()
    pid = holder.hello["pid"]
    listener = holder.hello["listener"]
    first = holder.ask(op="connect", name="a")
    asked = [listener, first["client"], first["server"]]
    answers = []
    steps = [
        lambda: holder.ask(op="connect", name="b"),
        lambda: holder.ask(op="swap", name="a"),
        # A new name alone is read at the next change of its sockets (re-reading every
        # process's details each poll would cost more than the sockets), and then shows
        # on every socket it holds, not only on the new ones.
        lambda: holder.ask(op="rename", name="renamed[x]") and holder.ask(op="connect", name="c"),
        lambda: holder.ask(op="kill-child"),
    ]
    for step in [lambda: {}, *steps]:
        reply = step()
        asked += [reply[end] for end in ("client", "server") if end in reply]
        asked = [inode for inode in asked if inode in {i for _, i, _ in ss_sockets(ns)}]
        owners, _ = resolver.resolve(asked)
        fresh, _ = OwnerResolver().resolve(asked)
        assert owners == fresh
        answers.append((owners, dict(owners)))
    assert {owners[inode].name for inode in asked if owners[inode].pid == pid} == {"renamed[x]"}
    for handed_out, as_it_was in answers:
        assert handed_out == as_it_was


@requires_root
def test_hinted_search_reads_the_listener_owner_first(
    ns: str, holder: Holder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sockets appearing at an unchanged fd count, at no freed socket fd, are searched for
    first in the process owning the listener they were accepted on, not in the process
    whose sockets changed last."""
    monkeypatch.setattr(owners_module, "SEARCH_BUDGET", 1)  # one process per poll
    other = Holder(ns)
    try:
        source = NetlinkSource(ns)
        resolver = OwnerResolver()

        def poll() -> dict[int, int]:
            sockets = source.dump()
            owners, _ = resolver.resolve((r.inode for r in sockets), hints=sockets)
            return {inode: info.pid for inode, info in owners.items()}

        pid = holder.hello["pid"]
        poll()
        holder.ask(op="files")
        poll()
        other.ask(op="connect", name="b")  # the other holder's sockets changed last
        traded = holder.ask(op="trade", name="a")
        assert traded["fds"] == holder.ask(op="fds")["fds"]
        poll()  # the other holder is rescanned (its fd count changed); new ones wait
        # What the search reads (a rescan of a process whose fd count changed is not).
        scans: list[int] = []
        scan, search = resolver._scan, resolver._search
        monkeypatch.setattr(resolver, "_scan", lambda p, e: scans.append(p) or scan(p, e))
        monkeypatch.setattr(resolver, "_search", lambda *a: scans.clear() or search(*a))
        owners = poll()
        assert scans == [pid]
        assert owners[traded["client"]] == pid
        assert owners[traded["server"]] == pid
        source.close()
    finally:
        other.stop()


@requires_root
def test_prefetched_scan_resolves_like_a_plain_one(ns: str, holder: Holder) -> None:
    """A first scan made in a child process during the dump gives the same owners and
    cache: a socket made after that scan is still found (its holder's fd count changed)."""
    holder.ask(op="connect", name="a")
    prefetching = OwnerResolver()
    prefetching.prefetch()
    late = holder.ask(op="connect", name="b")  # most likely after the child's scan
    scanned_here: list[int] = []
    scan = prefetching._scan

    def counting_scan(pid: int, entry: object) -> frozenset[int]:
        scanned_here.append(pid)
        return scan(pid, entry)  # type: ignore[arg-type]

    prefetching._scan = counting_scan  # type: ignore[method-assign]
    rows = ss_sockets(ns)
    inodes = [inode for _, inode, _ in rows]
    assert late["client"] in inodes
    owners, note = prefetching.resolve(inodes)
    expected, expected_note = OwnerResolver().resolve(inodes)
    assert note == expected_note
    assert owners == expected
    assert owners[late["client"]].pid == holder.hello["pid"]
    assert prefetching._child is None
    # The child did the scan: here only processes that changed since (or were born) are.
    assert len(prefetching._pids) > 0
    assert len(scanned_here) < len(prefetching._pids) / 2
    # Later polls run on the adopted cache as on any other.
    pair = holder.ask(op="connect", name="c")
    owners, _ = prefetching.resolve([pair["client"], late["client"]])
    assert owners[pair["client"]].pid == owners[late["client"]].pid == holder.hello["pid"]


def test_close_reaps_a_prefetch_nobody_took() -> None:
    resolver = OwnerResolver()
    resolver.prefetch()
    assert resolver._child is not None
    child = resolver._child[0]
    resolver.close()
    assert resolver._child is None
    with pytest.raises(ChildProcessError):
        os.waitpid(child, os.WNOHANG)


def test_inode_zero_and_unknown_inodes_have_no_owner() -> None:
    owners, note = OwnerResolver().resolve([0, 2**40])
    assert owners == {}
    assert note is None


def test_shared_socket_owner_moves_to_the_next_lowest_pid() -> None:
    holders = _Holders()
    for pid in (30, 10, 20):
        holders.add(5, pid)
    holders.add(6, 20)
    assert holders.owner == {5: 10, 6: 20}
    holders.remove(5, 10)
    assert holders.owner[5] == 20
    holders.remove(5, 20)
    assert holders.owner[5] == 30
    assert holders.shared == {}
    holders.remove(5, 30)
    holders.remove(6, 99)  # not a holder: nothing changes
    assert holders.owner == {6: 20}


def fake_process(proc: Path, pid: int, start: int, sockets: list[int]) -> Path:
    """A /proc/PID with a stat file (start time) and fd links to `sockets`; returns fd/."""
    fd = proc / str(pid) / "fd"
    fd.mkdir(parents=True, exist_ok=True)
    fields = ["S", *["0"] * 18, str(start), "0", "0"]
    (proc / str(pid) / "stat").write_text(f"{pid} (a b) c) {' '.join(fields)}\n")
    for number, inode in enumerate(sockets):
        (fd / str(number)).symlink_to(f"socket:[{inode}]")
    return fd


# Above the kernel's pid_max: psutil never finds a real process by these numbers.
FAKE_PID = 4_194_400


def test_search_is_bounded_per_poll_and_gives_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A socket swapped in at an unchanged fd count is found within a few polls even when
    each poll may read only a few links; an inode nobody holds stops being searched."""
    monkeypatch.setattr(owners_module, "SEARCH_BUDGET", 10)
    proc = tmp_path / "proc"
    fds = [
        fake_process(proc, FAKE_PID + i, 1, [1000 + 10 * i + k for k in range(5)]) for i in range(8)
    ]
    resolver = OwnerResolver(str(proc))
    owner = resolver._holders.owner
    resolver.resolve([1000])
    assert len(owner) == 40
    # Process 3 closes socket 1032 and opens 9999 on the same fd number.
    (fds[3] / "2").unlink()
    (fds[3] / "2").symlink_to("socket:[9999]")
    polls = 0
    while owner.get(9999) is None:
        polls += 1
        assert polls <= 8, "never found"
        resolver.resolve([9999, 4242])
    assert owner[9999] == FAKE_PID + 3
    assert 1032 not in owner
    assert polls > 1  # the budget really split the search
    # 4242 is held by no process: once every process was read, it is not searched again.
    while 4242 not in resolver._unfindable:
        polls += 1
        assert polls <= 16
        resolver.resolve([4242])
    scans = []
    monkeypatch.setattr(resolver, "_scan", lambda pid, entry: scans.append(pid) or frozenset())
    resolver.resolve([4242])
    assert scans == []


def test_a_socket_missing_once_is_not_searched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sockets closed between the dump and the owner scan cost no search."""
    proc = tmp_path / "proc"
    fake_process(proc, FAKE_PID, 1, [1000])
    resolver = OwnerResolver(str(proc))
    resolver.resolve([1000])
    scans: list[int] = []
    scan = resolver._scan
    monkeypatch.setattr(resolver, "_scan", lambda pid, entry: scans.append(pid) or scan(pid, entry))
    resolver.resolve([1000, 5555])
    assert scans == []
    resolver.resolve([1000, 5555])
    assert scans == [FAKE_PID]


def test_prefetch_without_fork_scans_as_usual(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc = tmp_path / "proc"
    fake_process(proc, FAKE_PID, 1, [1000])

    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(owners_module.os, "fork", no_fork)
    resolver = OwnerResolver(str(proc))
    resolver.prefetch()
    assert resolver._child is None
    resolver.resolve([1000])
    assert resolver._holders.owner == {1000: FAKE_PID}


def test_pid_reuse_is_detected(tmp_path: Path) -> None:
    """A pid whose start time changed is a different process: its old sockets are dropped."""
    proc = tmp_path / "proc"
    fd = fake_process(proc, 4242, 100, [777])
    resolver = OwnerResolver(str(proc))
    owner = resolver._holders.owner
    resolver._refresh()
    assert owner.get(777) == 4242
    # Same pid, same number of fds, a new process: the old socket must not be reported.
    (fd / "0").unlink()
    (fd / "0").symlink_to("socket:[888]")
    fake_process(proc, 4242, 200, [])
    resolver._refresh()
    assert owner.get(777) is None
    assert owner.get(888) == 4242


NOT_ROOT = r"""
import json, os, socket, sys
sys.path.insert(0, sys.argv[1])
from tcpwatch.sources.owners import OwnerResolver
mine = socket.socket()
mine.bind(("127.0.0.1", 0))
mine.listen()
inodes = []
for line in open("/proc/net/tcp").read().splitlines()[1:]:
    inodes.append(int(line.split()[9]))
owners, note = OwnerResolver().resolve(inodes)
print(json.dumps({
    "pid": os.getpid(),
    "mine": os.fstat(mine.fileno()).st_ino,
    "owners": {str(i): p.pid for i, p in owners.items()},
    "inodes": inodes,
    "note": note,
}))
"""


@requires_root
def test_not_root_gives_note_not_crash(ns: str, holder: Holder) -> None:
    """As `nobody`, root's sockets have no known owner and the note says why."""
    holder.ask(op="connect", name="a")
    result = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            ns,
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            sys.executable,
            "-c",
            NOT_ROOT,
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    out = json.loads(result.stdout)
    assert out["note"] == NOTE_NOT_ROOT
    assert out["owners"] == {str(out["mine"]): out["pid"]}
    assert holder.hello["listener"] in out["inodes"]


def test_unreadable_proc_gives_a_note(tmp_path: Path) -> None:
    owners, note = OwnerResolver(str(tmp_path / "no-proc")).resolve([5])
    assert owners == {}
    assert note is not None
    assert note.startswith(f"owners unknown: cannot read {tmp_path / 'no-proc'}")

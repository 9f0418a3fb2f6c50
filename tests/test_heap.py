"""The allocator settings that keep long-running commands' memory flat (`tcpwatch.heap`)."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap

import pytest

from tcpwatch import heap
from tcpwatch.commands import watch
from tcpwatch.model import Snapshot, SourceKind

needs_malloc_trim = pytest.mark.skipif(
    not heap.trim_heap(), reason="no malloc_trim here (not glibc)"
)
needs_mallopt = pytest.mark.skipif(
    not heap.map_large_tables(), reason="no mallopt here (not glibc)"
)


def _rss_mib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmRSS"))


@needs_malloc_trim
def test_trimming_the_heap_gives_freed_memory_back() -> None:
    """Memory freed below a block still in use stays with the allocator until trimmed."""
    blocks = [bytes(1000) for _ in range(100_000)]
    pinned = bytes(1000)
    del blocks
    before = _rss_mib()
    assert heap.trim_heap()
    assert before - _rss_mib() >= 50, "about 100 MiB were freed"
    assert pinned


# Run in a fresh interpreter: whether glibc still follows its default depends on what the
# process did before. Prints how many MiB went back to the system when the tables were freed.
_FREE_LARGE_TABLES = textwrap.dedent(
    """
    import sys
    from tcpwatch.commands.watch import schedule

    def rss_mib():
        with open("/proc/self/status") as status:
            return next(int(l.split()[1]) // 1024 for l in status if l.startswith("VmRSS"))

    class NeverStopped:
        stopped = False

    if sys.argv[1] == "scheduled":
        # A source at its end: schedule() returns at once, after setting the allocator up.
        list(schedule(lambda: None, interval=1.0, count=None, duration=None,
                      stopper=NeverStopped()))
    freed = b"x" * (4 << 20)  # by default, freeing it raises the threshold to 4 MiB
    del freed
    tables, pinned = [], []
    for _ in range(100):
        tables.append(b"x" * (1 << 20))  # written: resident
        pinned.append(b"y" * (64 << 10))  # in use after each, as the poll's records are
    before = rss_mib()
    del tables
    print(before - rss_mib())
    """
)


def _freed_mib(mode: str) -> int:
    run = subprocess.run(
        [sys.executable, "-c", _FREE_LARGE_TABLES, mode],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(run.stdout)


@needs_mallopt
def test_large_tables_go_back_to_the_system_when_freed() -> None:
    """Left to itself, glibc serves blocks of this size from its heaps once one was freed,
    and keeps them there when freed below a block still in use; mapped, they leave at once."""
    assert heap.map_large_tables()
    freed = b"x" * (4 << 20)
    del freed
    tables, pinned = [], []
    for _ in range(100):
        tables.append(b"x" * (1 << 20))
        pinned.append(b"y" * (64 << 10))
    before = _rss_mib()
    del tables
    assert before - _rss_mib() >= 90, "100 MiB were freed"
    assert pinned


@needs_mallopt
def test_polling_on_a_schedule_maps_large_tables_on_their_own() -> None:
    """`watch` and `record` poll through `schedule`, which sets the allocator up as the
    monitor does: without it the freed tables stay with the process."""
    assert _freed_mib("default") < 20
    assert _freed_mib("scheduled") >= 90


def test_the_scheduled_collection_trims_the_heap_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each of `schedule`'s collections between polls is followed by a trim."""
    order: list[str] = []

    def collected(phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            order.append("collect")

    monkeypatch.setattr(watch, "_FULL_GC_EVERY_S", 0.0)  # after every poll
    monkeypatch.setattr(watch, "trim_heap", lambda: order.append("trim") or True)
    snapshot = Snapshot(
        taken_at=0.0,
        monotonic=0.0,
        host="h",
        netns=None,
        source=SourceKind.NETLINK,
        sockets=(),
        owners={},
    )

    class NeverStopped:
        stopped = False

    gc.callbacks.append(collected)
    try:
        polls = list(
            watch.schedule(
                lambda: snapshot,
                interval=1.0,
                count=3,
                duration=None,
                stopper=NeverStopped(),  # type: ignore[arg-type]
                paced=False,
            )
        )
    finally:
        gc.callbacks.remove(collected)
    assert len(polls) == 3
    # The last poll is followed by none: `count` ends the schedule there.
    assert order == ["collect", "trim", "collect", "trim"]

"""Benchmark: the interactive monitor at 50k connections (not a test; prints numbers).

Run from the repository root: `python -m tests.tui.bench_tui [CONNECTIONS] [SECONDS]`.
The app runs headless over the fake busy host (1 % churn per poll) at a 1 s interval with
the real Tracker. Reported: average CPU of the whole process (all threads) over the run,
the cost of each stage of one poll, and how long keys take from arrival to their effect
(cursor moved, new view swapped in, screen pushed; the repaint follows in the next frame).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable

import psutil
from textual import events

from tcpwatch.tracker import Tracker
from tcpwatch.tui.app import TcpwatchApp
from tcpwatch.tui.demo import BusyHost
from tcpwatch.tui.view import ViewModel


def stage_costs(clients: int, polls: int = 5) -> dict[str, float]:
    """Median milliseconds per poll of each stage, outside the UI."""
    host, tracker, model = BusyHost(clients=clients, churn=0.01), Tracker(), ViewModel()
    model.apply(tracker.update(host.poll()))
    times: dict[str, list[float]] = {"source": [], "tracker": [], "view": []}
    for _ in range(polls):
        t0 = time.perf_counter()
        snapshot = host.poll()
        t1 = time.perf_counter()
        delta = tracker.update(snapshot)
        t2 = time.perf_counter()
        model.apply(delta)
        t3 = time.perf_counter()
        times["source"].append(t1 - t0)
        times["tracker"].append(t2 - t1)
        times["view"].append(t3 - t2)
    return {k: statistics.median(v) * 1000 for k, v in times.items()}


async def _timed(app: TcpwatchApp, key: str, done: Callable[[], bool]) -> float:
    """Milliseconds from a key arriving (as the terminal driver posts it) to its effect."""
    character = {"question_mark": "?"}.get(key, key if len(key) == 1 else None)
    start = time.perf_counter()
    app.post_message(events.Key(key, character))
    while not done():
        await asyncio.sleep(0.001)
    return (time.perf_counter() - start) * 1000


async def run(clients: int, seconds: float) -> None:
    source = BusyHost(clients=clients, churn=0.01)
    app = TcpwatchApp(
        lambda: source, interval=1.0, filter_text="", export_dir=".", lang="en", replay=False
    )
    async with app.run_test(size=(160, 50)) as pilot:
        while app.polls < 2:
            await pilot.pause(0.05)
        process = psutil.Process()
        rss0 = process.memory_info().rss
        cpu0, wall0, polls0 = time.process_time(), time.perf_counter(), app.polls
        moves: list[float] = []
        table = app.table
        while time.perf_counter() - wall0 < seconds:
            before = table.cursor
            moves.append(await _timed(app, "down", lambda b=before: table.cursor != b))
            await pilot.pause(0.5)
        cpu = time.process_time() - cpu0
        rss1 = process.memory_info().rss
        wall = time.perf_counter() - wall0
        polls = app.polls - polls0
        seq = app.view.seq
        sort_ms = await _timed(app, "s", lambda: app.view.seq > seq)
        seq = app.view.seq
        filter_ms = await _timed(app, "c", lambda: app.view.seq > seq)
        help_ms = await _timed(app, "question_mark", lambda: app.screen.id != "_default")
    print(f"connections: {app.view.live}, polls: {polls} in {wall:.1f}s")
    print(f"average CPU (whole process, all threads): {100 * cpu / wall:.1f}% of one core")
    print(
        f"memory (RSS): {rss0 / 2**20:.0f} MiB after the first polls, "
        f"{rss1 / 2**20:.0f} MiB at the end"
    )
    print(
        f"cursor key to screen: median {statistics.median(moves):.1f} ms, "
        f"max {max(moves):.1f} ms over {len(moves)} presses"
    )
    print(f"sort key (50k re-keyed and re-sorted in a thread) to screen: {sort_ms:.0f} ms")
    print(f"toggle half-closed to screen: {filter_ms:.0f} ms; help screen: {help_ms:.0f} ms")


def main(argv: list[str]) -> int:
    clients = int(argv[0]) if argv else 50_000
    seconds = float(argv[1]) if len(argv) > 1 else 60.0
    costs = stage_costs(clients)
    print("per poll (median ms): " + ", ".join(f"{k} {v:.1f}" for k, v in costs.items()))
    asyncio.run(run(clients, seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

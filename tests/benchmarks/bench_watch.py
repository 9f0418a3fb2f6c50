"""`tcpwatch watch` at 50k connections over time: lines, CPU and memory, tree against tree.

Run as root from the repository (not collected by pytest):

    python tests/benchmarks/bench_watch.py --sockets 50000 --seconds 1800

It fills a private network namespace with N sockets (farm.py), keeps them churning
(--churn pairs closed and reconnected per second), and runs `tcpwatch watch --netns NS
--ndjson` at the default 1 s interval once per `--tree DIR` (a checkout of tcpwatch, run
with PYTHONPATH=DIR; default: this repository), all at the same time over the same
sockets, so two builds meet exactly the same churn. For each it reports the event lines
per second, the average CPU (% of one core) and RSS sampled every 10 s; the medians of each
sixth of the period show whether memory creeps (a full collection every minute makes RSS a
saw).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import farm
from bench_tui import cpu_seconds, rss_mib, sixths

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Watcher:
    """One `tcpwatch watch` process and what it printed."""

    tree: Path
    proc: subprocess.Popen[bytes]
    lines: int = 0
    rss: list[float] = field(default_factory=list)

    def count_lines(self) -> None:
        assert self.proc.stdout is not None
        for _ in self.proc.stdout:
            self.lines += 1


def start_watch(ns: farm.Namespace, tree: Path, interval: float) -> Watcher:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    argv = [sys.executable, "-m", "tcpwatch", "watch", "--netns", ns.name, "--ndjson"]
    proc = subprocess.Popen(
        [*argv, "--interval", str(interval)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=tree,
        env=env,
        preexec_fn=farm.die_with_parent,
    )
    watcher = Watcher(tree, proc)
    threading.Thread(target=watcher.count_lines, daemon=True).start()
    return watcher


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=50000)
    parser.add_argument("--seconds", type=float, default=600.0, help="measurement period")
    parser.add_argument("--churn", type=int, default=100, help="pairs replaced per second")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument(
        "--tree",
        type=Path,
        action="append",
        help="a tcpwatch checkout to run (repeat to compare; default: this repository)",
    )
    parser.add_argument("--holders", type=int, default=6)
    parser.add_argument("--background", type=int, default=300)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_watch: needs root (network namespaces)")
        return 2
    trees = [tree.resolve() for tree in args.tree or [REPO]]
    missing = [str(tree) for tree in trees if not (tree / "tcpwatch" / "__init__.py").exists()]
    if missing:
        print(f"bench_watch: not a tcpwatch checkout: {', '.join(missing)}")
        return 2
    farm.raise_signals_as_exit()
    try:
        return run(args, trees)
    except KeyboardInterrupt:
        print("\ninterrupted; namespace and processes cleaned up", file=sys.stderr)
        return 130


def run(args: argparse.Namespace, trees: list[Path]) -> int:
    print(f"# tcpwatch watch benchmark ({time.strftime('%Y-%m-%d %H:%M:%S %Z')})")
    ready = farm.churn_ready(args.sockets, holders=args.holders, background=args.background)
    with ready as (ns, sock_farm):
        watchers = [start_watch(ns, tree, args.interval) for tree in trees]
        try:
            measure(watchers, sock_farm, args)
        finally:
            for watcher in watchers:
                watcher.proc.terminate()
                watcher.proc.wait()
    return 0


def measure(watchers: list[Watcher], sock_farm: farm.SocketFarm, args: argparse.Namespace) -> None:
    warm_until = time.monotonic() + 10  # the first polls, the owner scan
    while time.monotonic() < warm_until:
        sock_farm.churn(args.churn)
        time.sleep(1)
    started = time.monotonic()
    cpu0 = [cpu_seconds(w.proc.pid) for w in watchers]
    lines0 = [w.lines for w in watchers]
    for watcher in watchers:
        watcher.rss.append(rss_mib(watcher.proc.pid))
    seconds = 0
    while time.monotonic() - started < args.seconds:
        sock_farm.churn(args.churn)
        time.sleep(1)
        seconds += 1
        if seconds % 10 == 0:
            for watcher in watchers:
                if watcher.proc.poll() is None:
                    watcher.rss.append(rss_mib(watcher.proc.pid))
    elapsed = time.monotonic() - started
    print(f"\nover {elapsed:.0f} s with {args.churn} pairs/s churn, {args.interval:g} s interval:")
    for watcher, cpu_start, lines_start in zip(watchers, cpu0, lines0, strict=True):
        if watcher.proc.poll() is not None:
            print(f"\n{watcher.tree}: exited early (status {watcher.proc.returncode})")
            continue
        cpu = (cpu_seconds(watcher.proc.pid) - cpu_start) / elapsed
        rss = watcher.rss
        step = max(1, len(rss) // 24)
        print(f"\n{watcher.tree}:")
        print(f"- {(watcher.lines - lines_start) / elapsed:.0f} event lines/s")
        print(f"- CPU average {cpu * 100:.1f} % of one core")
        print(
            f"- RSS: start {rss[0]:.0f} MiB, end {rss[-1]:.0f} MiB, peak {max(rss):.0f} MiB "
            f"(every {10 * step} s: {', '.join(f'{r:.0f}' for r in rss[::step])})"
        )
        print(
            "- RSS median of each sixth of the period: "
            + ", ".join(f"{statistics.median(part):.0f}" for part in sixths(rss))
            + " MiB"
        )


if __name__ == "__main__":
    sys.exit(main())

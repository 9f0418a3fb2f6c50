"""The interactive monitor at 50k connections: CPU, memory and key response time.

Run as root from the repository (not collected by pytest):

    python tests/benchmarks/bench_tui.py --sockets 50000 --seconds 60

It fills a private network namespace with N sockets (farm.py), starts `tcpwatch --netns
NS` in a pseudo-terminal (200×50) at the default 1 s interval, and keeps the sockets
churning (--churn pairs closed and reconnected per second, so connections are born,
change state, linger in TIME_WAIT and go). Then:

- CPU: the process's user + system time over --seconds, as % of one core (target ≤ 30 %),
  with no keys pressed; memory (RSS) sampled every few seconds (start, end, peak).
- Keys: each test presses a key at a random moment relative to the polls and times how
  long until the expected text appears on the terminal (target: every key ≤ 100 ms).

The screen is read from the terminal's output with escape sequences removed, so the test
only assumes visible texts (the PAUSED flag, the help screen's section titles, the
explanation's first section, "What it means": its screen opens with the whole page).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import random
import re
import statistics
import struct
import subprocess
import sys
import termios
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import farm

from tcpwatch.sources.netlink import ACCELERATED

REPO = Path(__file__).resolve().parents[2]
COLUMNS, ROWS = 200, 50
# Control sequences: CSI, OSC, DCS/PM/APC strings, and two-byte escapes.
_ESCAPES = re.compile(
    rb"\x1b\[[0-?]*[ -/]*[@-~]"
    rb"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    rb"|\x1b[P^_][^\x1b]*\x1b\\"
    rb"|\x1b[@-Z\\-_]"
)


class Screen:
    """Collects the terminal's output with arrival times, from a reader thread."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.chunks: list[tuple[float, bytes]] = []
        self.total = 0
        self.changed = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 1 << 16)
            except OSError:
                data = b""
            with self.changed:
                if not data:
                    self.closed = True
                    self.changed.notify_all()
                    return
                self.chunks.append((time.perf_counter(), data))
                self.total += len(data)
                self.changed.notify_all()

    def mark(self) -> int:
        with self.changed:
            return len(self.chunks)

    def wait_for(self, pattern: re.Pattern[str], since: int, timeout: float) -> float | None:
        """Arrival time of the chunk that completes `pattern` in the text after `since`."""
        deadline = time.perf_counter() + timeout
        raw = b""
        index = since
        while True:
            with self.changed:
                while index >= len(self.chunks) and not self.closed:
                    left = deadline - time.perf_counter()
                    if left <= 0:
                        return None
                    self.changed.wait(left)
                if index >= len(self.chunks):
                    return None
                arrived, data = self.chunks[index]
            index += 1
            raw += data
            text = _ESCAPES.sub(b"", raw).decode("utf-8", "replace")
            if pattern.search(text):
                return arrived


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class KeyTest:
    label: str
    key: bytes
    expect: str  # regex over the visible text that follows the key
    then: bytes = b""  # a key that returns to the main screen (not timed)
    then_expect: str = ""
    before: bytes = b""  # an untimed key that sets the test up
    before_expect: str = ""
    latencies: list[float] = field(default_factory=list)
    misses: int = 0


KEY_TESTS = [
    KeyTest("p (pause flag in the header)", b"p", r"PAUSED", b"p", r"resumed"),
    KeyTest("+ (interval, status line)", b"+", r"polling every 2s", b"-", r"polling every 1s"),
    # Back with escape, not q: q on the main screen would quit if the screen did not open.
    KeyTest("? (help screen)", b"?", r"Main screen", b"\x1b", r"live"),
    KeyTest("enter (the explanation page)", b"\r", r"What it means", b"\x1b", r"live"),
    KeyTest("S (reverse sort, table header)", b"S", r"State ▼", b"S", r"State ▲"),
    KeyTest("/ (filter bar opens)", b"/", r"filter, e\.g\.", b"\x1b", r"live"),
    KeyTest(
        "typing in the filter bar (echo)",
        b"port:2",
        r"port:2",
        b"\x15\r",
        r"filter \(none\)",
        before=b"/",
        before_expect=r"filter, e\.g\.",
    ),
]


CENSUS = Path(__file__).resolve().parent / "census"


def start_tui(
    ns: farm.Namespace, interval: float, census: Path | None = None, census_every: float = 0
) -> tuple[subprocess.Popen[bytes], int]:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLORTERM": "truecolor"}
    env.pop("TEXTUAL", None)
    if census is not None:  # census/sitecustomize.py logs the child's memory figures
        path = os.pathsep.join(p for p in (str(CENSUS), env.get("PYTHONPATH", "")) if p)
        env.update(
            PYTHONPATH=path, TCPWATCH_CENSUS=str(census_every), TCPWATCH_CENSUS_LOG=str(census)
        )
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcpwatch", "--netns", ns.name, "--interval", str(interval)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=REPO,
        env=env,
        start_new_session=True,
        preexec_fn=farm.die_with_parent,
    )
    os.close(slave)
    return proc, master


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=50000)
    parser.add_argument("--seconds", type=float, default=60.0, help="CPU measurement period")
    parser.add_argument("--churn", type=int, default=100, help="pairs replaced per second")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--keys", type=int, default=5, help="presses per key test")
    parser.add_argument(
        "--only", nargs="+", default=[], metavar="WORD", help="key tests whose label has a word"
    )
    parser.add_argument("--holders", type=int, default=6)
    parser.add_argument("--background", type=int, default=300)
    parser.add_argument(
        "--census",
        type=float,
        default=0,
        metavar="SECONDS",
        help="every SECONDS, log where the TUI's memory lies (glibc, pymalloc, live blocks)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the TUI with py-spy during the CPU period and list the hot functions",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_tui: needs root (network namespaces)")
        return 2
    farm.raise_signals_as_exit()
    try:
        return run(args)
    except KeyboardInterrupt:
        print("\ninterrupted; namespace and processes cleaned up", file=sys.stderr)
        return 130


def run(args: argparse.Namespace) -> int:
    print(f"# tcpwatch TUI benchmark ({time.strftime('%Y-%m-%d %H:%M:%S %Z')})")
    hit_path = "C extension" if ACCELERATED else "Python (the C extension was not built)"
    print(f"parser hit path: {hit_path}")
    ready = farm.churn_ready(args.sockets, holders=args.holders, background=args.background)
    with ready as (ns, sock_farm):
        print(f"for scale, one `ss -tanp` here: {ss_tanp_seconds(ns) * 1000:.0f} ms (median of 5)")
        census = (
            Path(f"/tmp/tcpwatch-bench-tui-census-{os.getpid()}.jsonl") if args.census else None
        )
        proc, master = start_tui(ns, args.interval, census, args.census)
        screen = Screen(master)
        try:
            started = time.perf_counter()
            first = screen.wait_for(re.compile(r"ESTABLISHED"), 0, 120)
            if first is None:
                tail = _ESCAPES.sub(b"", b"".join(d for _, d in screen.chunks[-20:]))
                print(f"the TUI showed no connections within 120 s; last output: {tail[-500:]!r}")
                return 1
            print(f"first screen with connections after {first - started:.2f} s")
            measure_cpu(proc.pid, screen, sock_farm, args)
            if census is not None:
                report_census(census)
            measure_keys(proc, screen, master, sock_farm, args)
            counts = sock_farm.count()
            print(f"sockets at the end: {sum(counts.values())} {dict(sorted(counts.items()))}")
        finally:
            with_deadline_quit(proc, master)
            os.close(master)
    return 0


def ss_tanp_seconds(ns: farm.Namespace) -> float:
    """One whole `ss -tanp` inside the namespace: the same work on any machine, so runs on
    machines of different speeds can be compared through it."""
    times = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run(
            ["ss", "-tanp"], check=True, stdout=subprocess.DEVNULL, preexec_fn=ns.preexec()
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure_cpu(
    pid: int, screen: Screen, sock_farm: farm.SocketFarm, args: argparse.Namespace
) -> None:
    warm_until = time.monotonic() + 5
    while time.monotonic() < warm_until:  # a few polls to settle caches; churn meanwhile
        sock_farm.churn(args.churn)
        time.sleep(1)
    spy = start_py_spy(pid, args.seconds) if args.profile else None
    cpu0, wall0, bytes0 = cpu_seconds(pid), time.monotonic(), screen.total
    rss = [rss_mib(pid)]
    per_second: list[float] = []
    last_cpu, last_wall = cpu0, wall0
    while time.monotonic() - wall0 < args.seconds:
        sock_farm.churn(args.churn)
        time.sleep(1)
        now_cpu, now_wall = cpu_seconds(pid), time.monotonic()
        per_second.append((now_cpu - last_cpu) / (now_wall - last_wall))
        last_cpu, last_wall = now_cpu, now_wall
        if len(per_second) % 5 == 0:
            rss.append(rss_mib(pid))
    cpu1, wall1 = cpu_seconds(pid), time.monotonic()
    rss.append(rss_mib(pid))
    average = (cpu1 - cpu0) / (wall1 - wall0)
    verdict = "MET" if average <= 0.30 else "NOT MET"
    print(f"\nCPU over {wall1 - wall0:.0f} s with {args.churn} pairs/s churn, no keys:")
    print(f"- average {average * 100:.1f} % of one core (target ≤ 30 %: {verdict})")
    print(
        f"- per second: median {statistics.median(per_second) * 100:.0f} %, "
        f"max {max(per_second) * 100:.0f} %"
    )
    print(
        "- average of each sixth of the period: "
        + ", ".join(f"{statistics.fmean(part) * 100:.1f} %" for part in sixths(per_second))
    )
    print(
        f"- RSS: start {rss[0]:.0f} MiB, end {rss[-1]:.0f} MiB, peak {max(rss):.0f} MiB "
        f"(every {5 * max(1, len(rss) // 24)} s: "
        f"{', '.join(f'{r:.0f}' for r in rss[:: max(1, len(rss) // 24)])})"
    )
    # A full collection every 2 minutes makes RSS a saw: the sixths' medians show a trend.
    print(
        "- RSS median of each sixth of the period: "
        + ", ".join(f"{statistics.median(part):.0f}" for part in sixths(rss))
        + " MiB"
    )
    print(f"- terminal output: {(screen.total - bytes0) / (wall1 - wall0) / 1024:.0f} KiB/s")
    if spy is not None:
        report_py_spy(*spy)


CENSUS_FIGURES = (
    ("rss_mib", "resident", "MiB"),
    ("glibc_heap_mib", "glibc heaps", "MiB"),
    ("glibc_heap_free_mib", "of which free", "MiB"),
    ("glibc_mapped_mib", "glibc mapped blocks", "MiB"),
    ("pymalloc_arenas_mib", "pymalloc arenas", "MiB"),
    ("pymalloc_used_mib", "of which in use", "MiB"),
    ("blocks", "Python's allocated blocks", "k"),
)


def report_census(path: Path) -> None:
    """Medians of each sixth of the census: which allocator holds what RSS gained."""
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    path.unlink()
    if not lines:
        print("census: no lines (was the period shorter than --census?)")
        return
    print(f"\nMemory census ({len(lines)} samples), median of each sixth:")
    for key, label, unit in CENSUS_FIGURES:
        scale = 1000 if unit == "k" else 1
        parts = sixths([line[key] / scale for line in lines])
        medians = ", ".join(f"{statistics.median(part):.1f}" for part in parts)
        print(f"- {label}: {medians} {unit}")
    last = lines[-1]
    print(
        f"- pymalloc arenas made / given back over the run: {last['pymalloc_arenas_made']} / "
        f"{last['pymalloc_arenas_freed']}"
    )


def sixths(samples: list[float]) -> list[list[float]]:
    """The samples in six equal consecutive parts (a remainder at the end is left out)."""
    size = max(1, len(samples) // 6)
    return [part for i in range(0, size * 6, size) if (part := samples[i : i + size])]


def start_py_spy(pid: int, seconds: float) -> tuple[subprocess.Popen[bytes], Path] | None:
    """py-spy sampling the TUI (all threads, idle excluded) for the CPU period."""
    exe = Path(sys.executable).with_name("py-spy")
    if not exe.exists():
        print("--profile: py-spy not found next to the interpreter (pip install py-spy)")
        return None
    out = Path(f"/tmp/tcpwatch-bench-tui-{os.getpid()}.txt")
    argv = [str(exe), "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "50"]
    argv += ["--nonblocking", "-f", "raw", "-o", str(out)]
    spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return spy, out


def report_py_spy(spy: subprocess.Popen[bytes], out: Path, top: int = 20) -> None:
    """Functions by share of samples: own time (leaf frames) and inclusive time."""
    try:
        spy.wait(timeout=30)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait()
    if not out.exists():
        print("py-spy wrote nothing")
        return
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [f.strip() for f in stack.split(";")]
        total += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
    out.unlink()
    if not total:
        print("py-spy took no samples")
        return
    for title, table in (("own time", own), ("inclusive", inclusive)):
        print(f"\npy-spy, {title} (% of {total} non-idle samples):")
        for frame, count in sorted(table.items(), key=lambda kv: -kv[1])[:top]:
            print(f"  {100 * count / total:5.1f} %  {frame}")


def measure_keys(
    proc: subprocess.Popen[bytes],
    screen: Screen,
    master: int,
    sock_farm: farm.SocketFarm,
    args: argparse.Namespace,
) -> None:
    rng = random.Random(1)
    tests = [t for t in KEY_TESTS if not args.only or any(w in t.label for w in args.only)]
    for test in tests:
        for _ in range(args.keys):
            if proc.poll() is not None:
                print(f"the TUI exited (status {proc.returncode}) during the key tests")
                break
            # A random moment relative to the 1 s polls, with churn still going.
            sock_farm.churn(args.churn // 2)
            if test.before:
                since = screen.mark()
                os.write(master, test.before)
                screen.wait_for(re.compile(test.before_expect), since, 5.0)
            time.sleep(rng.uniform(0.2, 1.2))
            since = screen.mark()
            sent = time.perf_counter()
            os.write(master, test.key)
            arrived = screen.wait_for(re.compile(test.expect), since, 5.0)
            if arrived is None:
                test.misses += 1
                dump = Path(f"/tmp/tcpwatch-bench-tui-miss-{os.getpid()}.txt")
                raw = b"".join(data for _, data in screen.chunks[since:])
                dump.write_bytes(_ESCAPES.sub(b"\n", raw)[-20000:])
                print(f"   {test.label}: {test.expect!r} not seen; what followed: {dump}")
            else:
                test.latencies.append(arrived - sent)
            if test.then:
                since = screen.mark()
                os.write(master, test.then)
                screen.wait_for(re.compile(test.then_expect), since, 5.0)
    print(f"\nKey response (time until the expected text is on the terminal; {args.keys} each):")
    worst = 0.0
    for test in tests:
        if test.latencies:
            med, top = statistics.median(test.latencies), max(test.latencies)
            worst = max(worst, top)
            miss = f", {test.misses} not seen within 5 s" if test.misses else ""
            print(f"- {test.label}: median {med * 1000:.0f} ms, max {top * 1000:.0f} ms{miss}")
        else:
            print(f"- {test.label}: never seen ({test.expect!r}); the screen may have changed")
    verdict = "MET" if worst <= 0.100 else "NOT MET"
    print(f"- worst {worst * 1000:.0f} ms (target ≤ 100 ms: {verdict})")


def with_deadline_quit(proc: subprocess.Popen[bytes], master: int) -> None:
    """q until it exits (a second screen may be open); kill it if it does not."""
    for _ in range(3):
        try:
            os.write(master, b"q")
            proc.wait(timeout=3)
            return
        except OSError:
            break
        except subprocess.TimeoutExpired:
            continue
    proc.kill()
    proc.wait()


if __name__ == "__main__":
    sys.exit(main())

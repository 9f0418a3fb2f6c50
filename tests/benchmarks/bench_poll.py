"""How fast tcpwatch reads N sockets, next to `ss` and psutil, measured in the same run.

Run as root from the repository (not collected by pytest):

    python tests/benchmarks/bench_poll.py --sockets 10000 50000 --repeat 7

For each size it fills a private network namespace with that many TCP sockets (see
farm.py: holder processes with listeners and established pairs over IPv4 and IPv6, 10 %
TIME_WAIT kept topped up, a few half-closed, queued and SYN_SENT sockets, plus a few
hundred socket-less background processes for the owner scan), then times the methods
below round-robin, one run each per round with the order rotated, and reports the median
and minimum of each. It prints a Markdown table for the README and checks the targets of
DESIGN.md. A single run at --once sockets (default 100000) shows that size works.

Methods (whole process = fork/exec to exit, output to /dev/null):
- `ss -tan`, `ss -tanp`: whole process, started inside the namespace.
- `tcpwatch snapshot --json`: whole process inside the namespace; and from outside with
  `--netns NAME`.
- `psutil.net_connections()`: whole process inside the namespace (python -c), and the
  call alone as timed by that process.
- steady-state poll: in this process, a `Poller` from `open_poller(netns=...)` and a
  `Tracker`, warmed up once; each round times poll + update, with the dump's receive and
  parse times, the owner resolution and the tracker update broken out. A second row
  times the same after --churn pairs were closed (RST) and reconnected, so the owner
  cache has new sockets to find in processes whose fd count did not change.
- one-shot poll in-process: `open_poller` + first poll (cold owner cache).
- kernel receive: the same sock_diag dump requests read into a buffer with no parsing:
  what the kernel itself costs.

Options: --repeat N, --once N (0: skip), --churn N, --holders N, --background N,
--only WORD... (methods whose names contain a word), --profile (cProfile of the
steady-state poll at the largest size), --json FILE (raw samples), --hold SECONDS (only
build the sockets and keep them, to profile by hand in the printed namespace).

The owner scans (`ss -p`, psutil, tcpwatch) read every process's fds on the whole host, so
other busy processes change their cost: run on a quiet machine, and compare rows of one run.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import math
import os
import pstats
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import farm

from tcpwatch.sources.netlink import ACCELERATED

REPO = Path(__file__).resolve().parents[2]

SS_TAN = "ss -tan"
SS_TANP = "ss -tanp"
SNAPSHOT = "tcpwatch snapshot --json"
SNAPSHOT_OUTSIDE = "tcpwatch snapshot --json --netns NS"
PSUTIL = "psutil.net_connections() (process)"
PSUTIL_CALL = "psutil.net_connections() (call only)"
POLL = "tcpwatch steady poll + diff (in-process)"
POLL_RECV = "  of which: dump, kernel receive"
POLL_PARSE = "  of which: dump, parse"
POLL_OWNERS = "  of which: owners"
POLL_TRACKER = "  of which: tracker update"
POLL_CHURN = "tcpwatch steady poll + diff, {churn} pairs replaced before it"
POLL_CHURN_OWNERS = "  of which: owners (new sockets to find)"
ONESHOT = "tcpwatch open_poller + first poll (in-process, cold)"
KERNEL = "kernel receive only (raw sock_diag dump)"
PARSE_CAPTURED = "parse only: DumpParser.feed on a captured dump"

PSUTIL_SCRIPT = """
import json, time
t0 = time.perf_counter()
import psutil
t1 = time.perf_counter()
conns = psutil.net_connections("tcp")
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "call": t2 - t1, "count": len(conns)}))
"""


@dataclass
class Samples:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    error: str | None = None

    def add(self, wall: float, cpu: float | None = None) -> None:
        self.wall.append(wall)
        if cpu is not None:
            self.cpu.append(cpu)

    def median(self, cpu: bool = False) -> float | None:
        values = self.cpu if cpu else self.wall
        return statistics.median(values) if values else None

    def min(self, cpu: bool = False) -> float | None:
        values = self.cpu if cpu else self.wall
        return min(values) if values else None


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_process(
    argv: list[str], preexec: Callable[[], None] | None, capture: bool = False
) -> tuple[float, float, str]:
    """Wall and CPU seconds of one whole process; its stdout if `capture`."""
    cpu0 = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(
        argv,
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=preexec,
        cwd=REPO,
        text=True,
    )
    wall = time.perf_counter() - start
    cpu = _children_cpu() - cpu0
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit {done.returncode}"]
        raise RuntimeError(f"{' '.join(argv[:4])}: exit {done.returncode}: {lines[-1]}")
    return wall, cpu, done.stdout or ""


class _TimedOwners:
    """Wraps the poller's OwnerResolver to time its answer (told every socket, or only
    the changes) without changing it."""

    def __init__(self, inner: object) -> None:
        self._inner = inner
        self.seconds = 0.0

    def _timed(self, name: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        try:
            return getattr(self._inner, name)(*args, **kwargs)
        finally:
            self.seconds = time.perf_counter() - start

    def resolve(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self._timed("resolve", *args, **kwargs)

    def resolve_changes(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self._timed("resolve_changes", *args, **kwargs)

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


class Tcpwatch:
    """tcpwatch's in-process pieces, imported as they are present in the tree."""

    def __init__(self, ns_name: str) -> None:
        self.ns_name = ns_name
        self.poller = None
        self.tracker = None
        self.owners: _TimedOwners | None = None
        self.missing: list[str] = []
        self.parsed = 0
        try:
            from tcpwatch.sources.netlink import DumpParser

            self.parser = DumpParser()
        except ImportError as error:
            self.parser = None
            self.missing.append(f"netlink parser: {error}")
        try:
            from tcpwatch.sources.poller import open_poller

            self.open_poller = open_poller
        except ImportError as error:
            self.open_poller = None
            self.missing.append(f"poller: {error}")
        try:
            from tcpwatch.tracker import Tracker

            self.tracker_class = Tracker
        except ImportError as error:
            self.tracker_class = None
            self.missing.append(f"tracker: {error}")

    def start(self) -> None:
        """A fresh poller and tracker, warmed up with one poll (owner cache filled)."""
        self.close()
        if self.open_poller is None:
            return
        self.poller = self.open_poller(netns=self.ns_name)
        owners = getattr(self.poller, "_owners", None)
        if owners is not None:
            self.owners = _TimedOwners(owners)
            self.poller._owners = self.owners  # type: ignore[attr-defined]
        self.tracker = self.tracker_class() if self.tracker_class else None
        snapshot = self.poller.poll()
        if self.tracker is not None:
            self.tracker.update(snapshot)

    def source(self) -> object | None:
        return getattr(self.poller, "_source", None)

    def steady(self) -> dict[str, float]:
        """One steady-state poll + diff, with the parts broken out."""
        assert self.poller is not None
        start = time.perf_counter()
        cpu0 = time.process_time()
        snapshot = self.poller.poll()
        polled = time.perf_counter()
        if self.tracker is not None:
            self.tracker.update(snapshot)
        end = time.perf_counter()
        parts = {"total": end - start, "cpu": time.process_time() - cpu0}
        source = self.source()
        if source is not None and hasattr(source, "recv_seconds"):
            parts["recv"] = source.recv_seconds  # type: ignore[attr-defined]
            parts["parse"] = source.parse_seconds  # type: ignore[attr-defined]
        if self.owners is not None:
            parts["owners"] = self.owners.seconds
        if self.tracker is not None:
            parts["tracker"] = end - polled
        parts["sockets"] = len(snapshot.sockets)
        return parts

    def parse(self, chunks: list[bytes]) -> int:
        """Parse a captured dump with a long-lived parser (warm caches), as a poll would."""
        assert self.parser is not None
        records: list[object] = []
        self.parser.start_poll(self.parsed)
        for chunk in chunks:
            self.parser.feed(chunk, records)
        self.parsed = len(records)
        return self.parsed

    def oneshot(self) -> float:
        assert self.open_poller is not None
        start = time.perf_counter()
        poller = self.open_poller(netns=self.ns_name)
        try:
            poller.poll()
        finally:
            poller.close()
        return time.perf_counter() - start

    def close(self) -> None:
        if self.poller is not None:
            self.poller.close()
            self.poller = None


def host_fds() -> tuple[int, int]:
    """(processes, open fds) on the whole host: what every owner scan has to read."""
    processes = fds = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fds += os.stat(f"/proc/{name}/fd").st_size
            except OSError:
                continue
            processes += 1
    return processes, fds


def check_snapshot_json(ns: farm.Namespace, expected: int) -> str:
    """Run the one-shot JSON once, untimed, and say whether it saw the sockets."""
    try:
        _, _, out = run_process(
            [sys.executable, "-m", "tcpwatch", "snapshot", "--json"], ns.preexec(), capture=True
        )
        doc = json.loads(out)
        total = doc["summary"]["total"]
        with_owner = sum(1 for c in doc["connections"] if c.get("process"))
    except (RuntimeError, ValueError, KeyError, TypeError) as error:
        return f"snapshot --json check failed: {error}"
    return (
        f"snapshot --json saw {total} sockets (namespace holds ~{expected}), "
        f"{with_owner} with an owner"
    )


@dataclass
class Bench:
    ns: farm.Namespace
    sock_farm: farm.SocketFarm
    only: list[str]
    churn: int = 0
    results: dict[int, dict[str, Samples]] = field(default_factory=dict)

    @property
    def poll_churn(self) -> str:
        return POLL_CHURN.format(churn=self.churn)

    def wanted(self, name: str) -> bool:
        return not self.only or any(part in name for part in self.only)

    def methods(self, tw: Tcpwatch, diag: farm.RawDiag) -> list[tuple[str, Callable[[], dict]]]:
        pre = self.ns.preexec()
        python = sys.executable

        def whole(argv: list[str], preexec: Callable[[], None] | None) -> Callable[[], dict]:
            def run() -> dict:
                wall, cpu, _ = run_process(argv, preexec)
                return {"wall": wall, "cpu": cpu}

            return run

        def psutil_run() -> dict:
            wall, cpu, out = run_process([python, "-c", PSUTIL_SCRIPT], pre, capture=True)
            data = json.loads(out)
            return {"wall": wall, "cpu": cpu, "call": data["call"], "count": data["count"]}

        def kernel() -> dict:
            seconds, _size = diag.receive()
            return {"wall": seconds}

        def steady() -> dict:
            # Untimed first: catch up with whatever changed since this poller's last poll
            # (the churn row's sockets: a budgeted owner search may need a few polls to
            # find them all), so the timed poll sees only the TIME_WAIT top-up.
            for _ in range(3):
                tw.steady()
            parts = tw.steady()
            return {"wall": parts.pop("total"), **parts}

        def oneshot() -> dict:
            return {"wall": tw.oneshot()}

        def steady_churn() -> dict:
            tw.steady()  # untimed: caught up, then exactly --churn pairs replaced
            self.sock_farm.churn(self.churn, abort=True)
            parts = tw.steady()
            return {
                "wall": parts.pop("total"),
                "cpu": parts["cpu"],
                "owners_churn": parts["owners"],
            }

        chunks = diag.capture()

        def parse_captured() -> dict:
            gc.collect()  # this process's garbage is not the parser's cost
            start = time.perf_counter()
            cpu0 = time.process_time()
            count = tw.parse(chunks)
            return {
                "wall": time.perf_counter() - start,
                "cpu": time.process_time() - cpu0,
                "count": count,
            }

        table: list[tuple[str, Callable[[], dict]]] = [
            (SS_TAN, whole(["ss", "-tan"], pre)),
            (SS_TANP, whole(["ss", "-tanp"], pre)),
            (SNAPSHOT, whole([python, "-m", "tcpwatch", "snapshot", "--json"], pre)),
            (
                SNAPSHOT_OUTSIDE,
                whole(
                    [python, "-m", "tcpwatch", "snapshot", "--json", "--netns", self.ns.name], None
                ),
            ),
            (PSUTIL, psutil_run),
            (KERNEL, kernel),
        ]
        if tw.poller is not None:
            table.append((POLL, steady))
            if self.churn:
                table.append((self.poll_churn, steady_churn))
            table.append((ONESHOT, oneshot))
        if tw.parser is not None:
            table.append((PARSE_CAPTURED, parse_captured))
        return [(name, fn) for name, fn in table if self.wanted(name)]

    def measure(self, size: int, repeat: int, profile: bool) -> dict[str, Samples]:
        comp = self.sock_farm.grow_to(size)
        counts = self.sock_farm.count()
        total = sum(counts.values())
        print(f"\n## {size} sockets: namespace holds {total}: {dict(sorted(counts.items()))}")
        print(f"   composition target: {comp}")
        processes, fds = host_fds()
        print(f"   host: {processes} processes with {fds} open fds (what owner scans read)")
        print(f"   {check_snapshot_json(self.ns, total)}")
        tw = Tcpwatch(self.ns.name)
        for note in tw.missing:
            print(f"   not measured: {note}")
        samples: dict[str, Samples] = {}
        try:
            tw.start()
            diag = farm.RawDiag(self.ns.path, getattr(tw.source(), "_ext", 2))
            try:
                methods = self.methods(tw, diag)
                for name, _ in methods:
                    samples[name] = Samples()
                for part in (POLL_RECV, POLL_PARSE, POLL_OWNERS, POLL_TRACKER, PSUTIL_CALL):
                    samples[part] = Samples()
                samples[POLL_CHURN_OWNERS] = Samples()
                for round_ in range(repeat):
                    shift = round_ % len(methods)
                    for name, fn in methods[shift:] + methods[:shift]:
                        if samples[name].error:
                            continue
                        self.sock_farm.top_up()
                        try:
                            data = fn()
                        except Exception as error:  # report and carry on with the rest
                            samples[name].error = str(error)
                            print(f"   {name}: FAILED: {error}")
                            continue
                        samples[name].add(data["wall"], data.get("cpu"))
                        if "call" in data:
                            samples[PSUTIL_CALL].add(data["call"])
                        if "owners_churn" in data:
                            samples[POLL_CHURN_OWNERS].add(data["owners_churn"])
                        for key, part in (
                            ("recv", POLL_RECV),
                            ("parse", POLL_PARSE),
                            ("owners", POLL_OWNERS),
                            ("tracker", POLL_TRACKER),
                        ):
                            if key in data:
                                samples[part].add(data[key])
                    print(f"   round {round_ + 1}/{repeat} done", flush=True)
                if profile and tw.poller is not None:
                    self.profile(tw)
            finally:
                diag.close()
        finally:
            tw.close()
        samples = {name: s for name, s in samples.items() if s.wall or s.error}
        self.results[size] = samples
        return samples

    def profile(self, tw: Tcpwatch) -> None:
        self.sock_farm.top_up()
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(3):
            tw.steady()
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        print("\n### cProfile of 3 steady-state polls (by own time)\n")
        print(out.getvalue())
        self.sock_farm.top_up()
        stats = Path(f"/tmp/tcpwatch-bench-snapshot-{os.getpid()}.prof")
        argv = [sys.executable, "-m", "cProfile", "-o", str(stats)]
        argv += ["-m", "tcpwatch", "snapshot", "--json"]
        try:
            run_process(argv, self.ns.preexec())
            out = io.StringIO()
            pstats.Stats(str(stats), stream=out).sort_stats("cumulative").print_stats(30)
            print("\n### cProfile of `tcpwatch snapshot --json` (cumulative)\n")
            print(out.getvalue())
        except RuntimeError as error:
            print(f"\ncProfile of snapshot --json failed: {error}")
        finally:
            stats.unlink(missing_ok=True)

    def once(self, size: int) -> dict[str, float | str]:
        """One run of each method at `size`: it must work; slower is acceptable."""
        self.sock_farm.grow_to(size)
        total = sum(self.sock_farm.count().values())
        print(f"\n## once at {size} sockets (namespace holds {total})")
        print(f"   {check_snapshot_json(self.ns, total)}")
        tw = Tcpwatch(self.ns.name)
        out: dict[str, float | str] = {}
        try:
            start = time.perf_counter()
            tw.start()
            out["tcpwatch open_poller + warm-up poll"] = time.perf_counter() - start
            diag = farm.RawDiag(self.ns.path, getattr(tw.source(), "_ext", 2))
            try:
                for name, fn in self.methods(tw, diag):
                    self.sock_farm.top_up()
                    try:
                        out[name] = fn()["wall"]
                    except Exception as error:
                        out[name] = f"FAILED: {error}"
            finally:
                diag.close()
        finally:
            tw.close()
        return out


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"


def row_order(name: str) -> int:
    """Whole processes first, then tcpwatch in-process with its parts under it."""
    order = [SS_TAN, SS_TANP, SNAPSHOT, SNAPSHOT_OUTSIDE, PSUTIL, PSUTIL_CALL, POLL]
    order += [POLL_RECV, POLL_PARSE, POLL_OWNERS, POLL_TRACKER, "churn", POLL_CHURN_OWNERS]
    order += [ONESHOT, KERNEL, PARSE_CAPTURED]
    if name.startswith(POLL_CHURN.split("{")[0]):
        return order.index("churn")
    return order.index(name) if name in order else len(order)


def markdown(
    results: dict[int, dict[str, Samples]], cpu: bool = False, with_min: bool = True
) -> str:
    """Rows: methods; columns: sizes; cells: median (min) wall time, or CPU time."""
    sizes = sorted(results)
    names: list[str] = []
    for size in sizes:
        for name in results[size]:
            if name not in names:
                names.append(name)
    names.sort(key=row_order)
    head = "| method | " + " | ".join(f"{size // 1000}k sockets" for size in sizes) + " |"
    rule = "|---|" + "---:|" * len(sizes)
    rows = [head, rule]
    for name in names:
        cells = []
        for size in sizes:
            s = results[size].get(name)
            if s is None:
                cells.append("–")
            elif s.error and not s.wall:
                cells.append("failed")
            elif cpu and not s.cpu:
                cells.append("–")
            elif with_min:
                cells.append(f"{fmt(s.median(cpu))} (min {fmt(s.min(cpu))})")
            else:
                cells.append(fmt(s.median(cpu)))
        label = name.replace("  of which: ", "&nbsp;&nbsp;↳ ")
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def targets(size: int, samples: dict[str, Samples]) -> list[str]:
    """The design's targets, on median wall time (and CPU time where both sides have it)."""
    lines = [f"Targets at {size // 1000}k sockets (medians):"]

    def check(label: str, name: str, limit_name: str, factor: float, how: str) -> None:
        value, limit = samples.get(name), samples.get(limit_name)
        if value is None or limit is None or value.median() is None or limit.median() is None:
            lines.append(f"- {label}: not measured")
            return
        verdicts = []
        for cpu in (False, True):
            v, l_ = value.median(cpu), limit.median(cpu)
            if v is None or l_ is None:
                continue
            bound = l_ * factor
            verdict = "MET" if v <= bound else "NOT MET"
            kind = "CPU" if cpu else "wall"
            verdicts.append(
                f"{kind} {fmt(v)} vs {how} {fmt(bound)}: {verdict} ({v / bound:.2f}× the limit)"
            )
        lines.append(f"- {label}: " + "; ".join(verdicts))

    check("one-shot `tcpwatch snapshot --json` ≤ `ss -tanp`", SNAPSHOT, SS_TANP, 1, "ss -tanp")
    check("same, from outside with `--netns`", SNAPSHOT_OUTSIDE, SS_TANP, 1, "ss -tanp")
    check("steady-state poll + diff ≤ ½ `ss -tanp`", POLL, SS_TANP, 0.5, "½ ss -tanp")
    check("parse ≤ 2× kernel receive (the source's own split)", POLL_PARSE, POLL_RECV, 2, "2× recv")
    check("parse ≤ 2× kernel receive (raw dump, nothing parsed)", POLL_PARSE, KERNEL, 2, "2× raw")
    check("captured-dump parse ≤ 2× raw kernel receive", PARSE_CAPTURED, KERNEL, 2, "2× raw")
    return lines


def holders_needed(largest: int, wanted: int) -> int:
    """Enough holder processes that none exceeds the RLIMIT_NOFILE hard limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    per_holder = max(1000, int(hard * 0.8))
    return max(wanted, math.ceil(largest / per_holder))


def hold(sock_farm: farm.SocketFarm, size: int, seconds: float) -> None:
    """Keep `size` sockets (TIME_WAIT topped up) for `seconds`, e.g. to profile by hand."""
    sock_farm.grow_to(size)
    print(f"holding {sum(sock_farm.count().values())} sockets for {seconds:.0f} s", flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock_farm.top_up()
        time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, nargs="+", default=[10000, 50000])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--once", type=int, default=100000, help="one run at this size (0: skip)")
    parser.add_argument("--holders", type=int, default=6)
    parser.add_argument("--background", type=int, default=300)
    parser.add_argument(
        "--churn",
        type=int,
        default=100,
        help="pairs replaced before each timed churn poll (0: no churn row)",
    )
    parser.add_argument("--only", nargs="*", default=[], help="substrings of method names")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--json", type=Path, help="write raw results here")
    parser.add_argument(
        "--hold",
        type=float,
        metavar="SECONDS",
        help="only build the largest --sockets size and keep it that long (for profiling)",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_poll: needs root (network namespaces, sock_diag of every socket)")
        return 2
    farm.raise_signals_as_exit()
    sizes = sorted(args.sockets)
    holders = holders_needed(max([*sizes, args.once]), args.holders)
    print(f"# tcpwatch poll benchmark ({time.strftime('%Y-%m-%d %H:%M:%S %Z')})")
    hit_path = "C extension" if ACCELERATED else "Python (the C extension was not built)"
    print(f"parser hit path: {hit_path}")
    print(f"kernel {os.uname().release}, {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    print(
        f"{holders} holder processes, {args.background} background processes, "
        f"{args.repeat} interleaved rounds per size"
    )
    gc.collect()
    bench: Bench | None = None
    status = 0
    try:
        with (
            farm.Namespace() as ns,
            farm.SocketFarm(ns, holders=holders, background=args.background) as sock_farm,
        ):
            print(f"namespace {ns.name}", flush=True)
            if args.hold:
                hold(sock_farm, sizes[-1], args.hold)
                return 0
            bench = Bench(ns, sock_farm, args.only, args.churn)
            for size in sizes:
                bench.measure(size, args.repeat, args.profile and size == sizes[-1])
            report(bench, sizes, args.json)
            if args.once:
                report_once(bench, args.once)
    except KeyboardInterrupt:
        print("\ninterrupted; namespace and processes cleaned up", file=sys.stderr)
        status = 130
    if status and bench is not None and bench.results:
        report(bench, sorted(bench.results), args.json)
    return status


def report(bench: Bench, sizes: list[int], json_path: Path | None) -> None:
    """The tables, the target checks and any failures; the raw samples to `json_path`."""
    print("\n## For the README: median wall time of interleaved runs\n")
    print(markdown(bench.results, with_min=False))
    print("\n## Wall time (median, and minimum)\n")
    print(markdown(bench.results))
    print("\n## CPU time, user + system (median, and minimum; – where not measured)\n")
    print(markdown(bench.results, cpu=True))
    for size in sizes:
        print()
        print("\n".join(targets(size, bench.results[size])))
    for size in sizes:
        for name, s in bench.results[size].items():
            if s.error:
                print(f"\nnote: {name} at {size}: {s.error}")
    if json_path:
        raw = {
            str(size): {
                name: {"wall": s.wall, "cpu": s.cpu, "error": s.error} for name, s in res.items()
            }
            for size, res in bench.results.items()
        }
        json_path.write_text(json.dumps(raw, indent=1))
    sys.stdout.flush()


def report_once(bench: Bench, size: int) -> None:
    try:
        once = bench.once(size)
    except (RuntimeError, OSError) as error:
        print(f"\nOne run at {size // 1000}k sockets: FAILED to set up: {error}")
        return
    print(f"\nOne run at {size // 1000}k sockets:")
    for name, value in once.items():
        print(f"- {name}: {value if isinstance(value, str) else fmt(value)}")


if __name__ == "__main__":
    sys.exit(main())

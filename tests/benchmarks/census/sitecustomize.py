"""Memory census of a benchmarked tcpwatch process (`bench_tui.py --census S`).

The benchmark puts this folder first on the child's PYTHONPATH, so Python imports this file
at start-up. With TCPWATCH_CENSUS (seconds) and TCPWATCH_CENSUS_LOG (a path) set, a daemon
thread appends one JSON line every TCPWATCH_CENSUS seconds: the resident size and where it
lies, as the C allocator (glibc's mallinfo2) and Python's small-object allocator (pymalloc,
the report sys._debugmallocstats prints) count it, and how many blocks Python has
allocated. Those tell live objects that grow from an allocator whose holes do.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import sys
import tempfile
import threading
import time

MIB = 1 << 20


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _pymalloc() -> dict[str, float]:
    """pymalloc's arenas, the bytes in use in them, and how many it has made and given
    back: the interpreter's own report, written to a file of ours (not to fd 2, where the
    monitor paints the screen)."""
    libc = ctypes.CDLL(None)
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    report = ctypes.pythonapi._PyObject_DebugMallocStats  # holds the GIL while it walks
    report.argtypes = [ctypes.c_void_p]
    fd, path = tempfile.mkstemp()
    os.close(fd)
    out = libc.fopen(path.encode(), b"w")
    try:
        report(out)
    finally:
        libc.fclose(out)
    with open(path) as stats:
        text = stats.read()
    os.unlink(path)

    def number(label: str) -> int:
        match = re.search(re.escape(label) + r"\s*=\s*([\d,]+)", text)
        return int(match.group(1).replace(",", "")) if match else -1

    return {
        "pymalloc_arenas_mib": number("bytes/arena") / MIB,
        "pymalloc_used_mib": number("# bytes in allocated blocks") / MIB,
        "pymalloc_arenas_made": number("# arenas allocated total"),
        "pymalloc_arenas_freed": number("# arenas reclaimed"),
    }


def _census(every: float, log_path: str) -> None:
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _MallInfo2
    started = time.monotonic()
    with open(log_path, "a", buffering=1) as log:
        while True:
            time.sleep(every)
            info = libc.mallinfo2()
            line = {
                "t": round(time.monotonic() - started),
                "rss_mib": _rss_mib(),
                "glibc_heap_mib": info.arena / MIB,
                "glibc_heap_free_mib": info.fordblks / MIB,
                "glibc_mapped_mib": info.hblkhd / MIB,
                **_pymalloc(),
                "blocks": sys.getallocatedblocks(),
            }
            log.write(json.dumps(line) + "\n")


_every = os.environ.get("TCPWATCH_CENSUS")
_log = os.environ.get("TCPWATCH_CENSUS_LOG")
if _every and _log:
    threading.Thread(target=_census, args=(float(_every), _log), daemon=True).start()

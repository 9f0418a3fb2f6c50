"""How the long-running commands keep glibc's heap from creeping.

Every poll at 50k sockets allocates and frees tables and lists of 50k entries. Left to
itself, glibc serves them from its heaps after the first one is freed, and the holes they
leave there keep a monitor's resident size climbing over hours although what it holds
does not grow. The monitor, `watch` and `record` therefore map large tables on their own
and give free heap memory back after each scheduled collection. Elsewhere (musl, macOS)
both are no-ops that say so.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable


def _glibc(name: str) -> Callable[..., int] | None:
    try:
        return getattr(ctypes.CDLL(None), name)
    except (AttributeError, OSError):
        return None


_MALLOC_TRIM = _glibc("malloc_trim")
_MALLOPT = _glibc("mallopt")
_M_MMAP_THRESHOLD = -3
# Tables of 50k entries (the poll's dicts and lists, 0.4-5 MiB) are above this size.
MMAP_THRESHOLD_BYTES = 256 * 1024


def map_large_tables() -> bool:
    """Have glibc map every allocation above `MMAP_THRESHOLD_BYTES` on its own and unmap it
    when freed; False where it cannot.

    By default glibc raises this threshold each time such a block is freed, so after the
    first poll the big tables came from its heaps. Mapped, they go back to the system the
    moment a poll lets go of them.
    """
    return _MALLOPT is not None and _MALLOPT(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1


def trim_heap() -> bool:
    """Give the C allocator's free memory back to the system; False where it cannot.

    What smaller blocks free stays in glibc's heaps, fragmented, until trimmed. (ctypes
    lets go of the interpreter during the call: other threads run meanwhile.)
    """
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True

"""Textual's painted lines without reference cycles.

Textual (8.2.8) caches a line's cuts and crops on the line itself, and when the answer is
the line unchanged, as for every line of a widget that nothing overlaps, the cache holds
the line: a cycle, which only the cyclic collector frees. The monitor repaints its table
and header every second, so these lines piled up by the ten thousand between collections,
and a collection freeing them held the interpreter for 50-90 ms (a key pressed then waited
as long), or, left to the rare full collections, grew the heap by half a MiB a minute.

`install()` answers those cases without the cache: the same line object as before, so
what is painted does not change; reference counting frees the line as soon as it is
replaced.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.style import Style
from textual.strip import Strip

_cached_divide = Strip.divide
_cached_crop_extend = Strip.crop_extend


def _divide(self: Strip, cuts: Iterable[int]) -> Sequence[Strip]:
    length = self.cell_length
    within = [cut for cut in cuts if cut <= length]
    if within == [length]:  # one piece: the line itself
        return [self]
    return _cached_divide(self, within)


def _crop_extend(self: Strip, start: int, end: int, style: Style | None) -> Strip:
    if start == 0 and end == self.cell_length:  # neither cropped nor extended
        return self
    return _cached_crop_extend(self, start, end, style)


def install() -> None:
    """Make `Strip` answer the identity cases without caching itself (idempotent)."""
    Strip.divide = _divide  # type: ignore[method-assign]
    Strip.crop_extend = _crop_extend  # type: ignore[method-assign]

"""A long page painted to lines off the UI thread, and the widget that scrolls through it.

A drill-down page at 50k connections is a hundred and more lines of diagrams, wrapped
paragraphs and tables; laid out by a `Static`, it costs the UI thread 100 ms and more at
every poll. Painted in the thread that built it, the UI thread only crops the visible lines.
"""

from __future__ import annotations

import io

from rich.console import Console, RenderableType
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip


def paint(body: RenderableType, width: int) -> tuple[Strip, ...]:
    """`body` as lines `width` cells wide. Safe in any thread: the console is its own, and
    the renderables are only read."""
    console = Console(
        width=width,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        legacy_windows=False,
        markup=False,
        emoji=False,
        highlight=False,
    )
    return tuple(Strip(line, width) for line in console.render_lines(body, pad=True))


class PageView(ScrollView, can_focus=True):
    """Painted lines, scrolled with the keys and the mouse like any scrolling container."""

    GUTTER = 3  # cells beside the content: the padding (1 + 1) and the scrollbar (1)

    DEFAULT_CSS = """
    PageView {
        height: 1fr;
        padding: 0 1;
        overflow-x: hidden;
        overflow-y: auto;
        scrollbar-size-vertical: 1;
        scrollbar-gutter: stable;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lines: tuple[Strip, ...] = ()

    @property
    def text(self) -> str:
        """What the page says, as plain text (trailing blanks removed)."""
        return "\n".join(line.text.rstrip() for line in self.lines)

    def show(self, lines: tuple[Strip, ...]) -> None:
        self.lines = lines
        self.virtual_size = Size(max((line.cell_length for line in lines), default=0), len(lines))
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        index = self.scroll_offset.y + y
        if index >= len(self.lines):
            return Strip.blank(width, self.rich_style)
        return self.lines[index].crop_extend(0, width, self.rich_style).apply_style(self.rich_style)

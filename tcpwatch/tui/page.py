"""A long page painted to lines off the UI thread, and the widget that scrolls through it.

A drill-down page at 50k connections is a hundred and more lines of diagrams, wrapped
paragraphs and tables; laid out by a `Static`, it costs the UI thread 100 ms and more at
every poll. Painted in the thread that built it, the UI thread only crops the visible lines.
"""

from __future__ import annotations

import io

from rich.console import Console, RenderableType
from rich.style import Style
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
        # Lines as drawn, by (line, width), and the widget's style they were drawn in: it is
        # looked up through the ancestors' CSS, a fifth of a millisecond each time.
        self._drawn: dict[tuple[int, int], Strip] = {}
        self._style: Style | None = None

    @property
    def text(self) -> str:
        """What the page says, as plain text (trailing blanks removed)."""
        return "\n".join(line.text.rstrip() for line in self.lines)

    def show(self, lines: tuple[Strip, ...]) -> None:
        self.lines = lines
        self._drawn, self._style = {}, None
        self.virtual_size = Size(max((line.cell_length for line in lines), default=0), len(lines))
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._drawn, self._style = {}, None

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        index = self.scroll_offset.y + y
        key = (index, width)
        strip = self._drawn.get(key)
        if strip is None:
            if self._style is None:
                self._style = self.rich_style
            style = self._style
            if index < len(self.lines):
                strip = self.lines[index].crop_extend(0, width, style).apply_style(style)
            else:
                strip = Strip.blank(width, style)
            self._drawn[key] = strip
        return strip

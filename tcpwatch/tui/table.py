"""The connection table: a line-API widget that paints only the rows on screen.

A DataTable keeps a widget-side copy of every row; at 50k connections rebuilding or
patching it each poll costs more than the poll. Here the whole table is one immutable
`TableView` built in the polling thread; `render_line` formats the handful of visible rows
on demand, so the UI thread's work per poll is proportional to the screen, not the host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.events import Click, Resize
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tcpwatch.model import Connection, TimerName
from tcpwatch.tcp.states import TcpState
from tcpwatch.tcp.tags import Tag
from tcpwatch.textsafe import printable
from tcpwatch.tui.view import EMPTY_VIEW, GROUP_PREFIX, Column, Flash, TableView, ViewMode

STATE_STYLE: dict[TcpState, str] = {
    TcpState.LISTEN: "bold #5fafff",
    TcpState.SYN_SENT: "bold yellow",
    TcpState.SYN_RECV: "bold yellow",
    TcpState.ESTABLISHED: "green",
    TcpState.FIN_WAIT1: "magenta",
    TcpState.FIN_WAIT2: "magenta",
    TcpState.CLOSING: "magenta",
    TcpState.LAST_ACK: "magenta",
    TcpState.TIME_WAIT: "#8a8a8a",
    TcpState.CLOSE_WAIT: "bold #ff8700",
    TcpState.CLOSE: "red",
    TcpState.CLOSED: "bold red",
}
TAG_STYLE: dict[Tag, str] = {
    Tag.LISTENER: "#5fafff",
    Tag.HALF_OPEN: "bold yellow",
    Tag.HALF_CLOSED: "#ff8700",
    Tag.LINGERING: "#8a8a8a",
    Tag.ORPHAN: "bold red",
    Tag.UNACCEPTED: "#d787ff",
}
FLASH_STYLE: dict[Flash, Style] = {
    Flash.NEW: Style(bgcolor="#0f4a1a"),
    Flash.CHANGED: Style(bgcolor="#5c4300"),
    Flash.GONE: Style(bgcolor="#5a0f0f"),
}
CURSOR_STYLE = Style(bgcolor="#264f78", bold=True)
UNFOCUSED_CURSOR_STYLE = Style(bgcolor="#3a3a3a")
# Painted rows kept between two polls; a few screens' worth.
STRIP_CACHE_LIMIT = 1000
HEADING_STYLE = Style(color="#d7d7ff", bgcolor="#262640", bold=True)
TITLE_STYLE = Style(color="#ffffff", bgcolor="#303030", bold=True)
TIMER_ABBREV = {
    TimerName.RETRANSMIT: "rtx",
    TimerName.KEEPALIVE: "ka",
    TimerName.TIMEWAIT: "tw",
    TimerName.PERSIST: "zwp",
}


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    column: Column
    title: str
    minimum: int
    drop_order: int  # 0: never dropped; higher numbers go first on narrow screens
    right: bool = False


COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec(Column.STATE, "State", 11, 0),
    ColumnSpec(Column.LOCAL, "Local", 20, 0),
    ColumnSpec(Column.REMOTE, "Remote", 20, 0),
    ColumnSpec(Column.RECV_Q, "Recv-Q", 6, 0, right=True),
    ColumnSpec(Column.SEND_Q, "Send-Q", 6, 0, right=True),
    ColumnSpec(Column.TIMER, "Timer", 11, 4),
    ColumnSpec(Column.AGE, "In state", 8, 2),
    ColumnSpec(Column.PROCESS, "Process", 10, 1),
    ColumnSpec(Column.TAGS, "Tags", 11, 3),
)


# Who gets spare width first, and up to what: room for an owner in parentheses, then for
# three tags, then the rest of the timer and process text, then long (IPv6) addresses.
# Whatever is left after that goes to the last column.
_GROWTH: tuple[tuple[tuple[Column, ...], int], ...] = (
    ((Column.PROCESS,), 13),
    ((Column.TAGS,), 28),
    ((Column.TIMER,), 15),
    ((Column.PROCESS,), 26),
    ((Column.LOCAL, Column.REMOTE), 47),
)


def layout(width: int, mode: ViewMode) -> list[tuple[ColumnSpec, int]]:
    """Column widths for a screen `width` wide: drop the least useful columns, then share
    the spare width out (see `_GROWTH`); the last column takes what remains."""
    specs = list(COLUMNS)
    extra_state = 0 if mode is ViewMode.ALL else 2

    def need(items: list[ColumnSpec]) -> int:
        return sum(s.minimum for s in items) + len(items) - 1 + extra_state

    while need(specs) > width and any(s.drop_order for s in specs):
        specs.remove(max(specs, key=lambda s: s.drop_order))
    widths = {s.column: s.minimum for s in specs}
    widths[Column.STATE] += extra_state
    spare = width - need(specs)
    for columns, cap in _GROWTH:
        shown = [column for column in columns if column in widths]
        for n, column in enumerate(shown):
            grow = max(0, min(cap - widths[column], spare // (len(shown) - n)))
            widths[column] += grow
            spare -= grow
    widths[specs[-1].column] += max(0, spare)
    return [(s, widths[s.column]) for s in specs]


def fmt_duration(seconds: float) -> str:
    """Compact human duration: 850ms, 42s, 3m12s, 2h05m, 3d04h."""
    if seconds < 1:
        return f"{max(0, int(seconds * 1000))}ms"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def fmt_endpoint(address: str, port: int, *, listener_remote: bool = False) -> str:
    if listener_remote:
        return "*:*"
    host = "*" if address in ("0.0.0.0", "::") else address
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


def fmt_timer(conn: Connection, elapsed: float = 0.0) -> str:
    """The timer and its time left, `elapsed` seconds after the record was seen."""
    timer = conn.record.timer
    if timer is None:
        return ""
    name = TIMER_ABBREV[timer.name]
    if timer.name is TimerName.TIMEWAIT and conn.record.state is TcpState.TIME_WAIT:
        name = "2MSL"
    text = f"{name} {fmt_duration(max(0.0, timer.expires_ms / 1000 - elapsed))}"
    if timer.retrans:
        text += f" #{timer.retrans}"
    return text


def fmt_age(conn: Connection, now: float) -> str:
    if conn.gone_at is not None:
        return f"gone {int(now - conn.gone_at)}s"
    if conn.state_since is not None and now - conn.state_since < 1:
        return "<1s"
    if conn.state_since is None:  # it was in this state before tcpwatch first saw it
        seen = now - conn.first_seen
        return "new" if seen < 1 else fmt_duration(seen) + "+"
    return fmt_duration(now - conn.state_since)


def fmt_process(conn: Connection) -> str:
    """The owner; a socket nobody holds any more shows its former owner in parentheses."""
    process = conn.process
    if process is None:
        former = conn.former_process
        return "-" if former is None else f"({former.pid} {printable(former.name)})"
    return f"{process.pid} {printable(process.name)}"


def _fit(text: Text, width: int, right: bool) -> Text:
    text.truncate(width, overflow="ellipsis")
    if right:
        text.pad_left(width - text.cell_len)
    else:
        text.pad_right(width - text.cell_len)
    return text


def _endpoint_text(address: str, port: int, width: int, **kwargs: bool) -> Text:
    """An address squeezed from the middle, so that the port stays visible."""
    text = fmt_endpoint(printable(address), port, **kwargs)
    if len(text) > width >= 5:
        keep = width - 1
        text = text[: keep - keep // 2] + "…" + text[len(text) - keep // 2 :]
    return Text(text)


def cell_text(
    spec: ColumnSpec, width: int, conn: Connection, view: TableView, indent: bool
) -> Text:
    record = conn.record
    now = view.now
    column = spec.column
    if column is Column.STATE:
        prefix = "└ " if indent else ""
        text = Text(prefix + conn.state.value, STATE_STYLE[conn.state])
    elif column is Column.LOCAL:
        text = _endpoint_text(record.local.address, record.local.port, width)
    elif column is Column.REMOTE:
        text = _endpoint_text(
            record.remote.address,
            record.remote.port,
            width,
            listener_remote=record.state is TcpState.LISTEN,
        )
    elif column is Column.RECV_Q:
        text = Text(str(record.recv_q), "bold #ff8700" if record.recv_q else "")
    elif column is Column.SEND_Q:
        text = Text(str(record.send_q))
    elif column is Column.TIMER:
        gone = conn.gone_at is not None
        text = Text("" if gone else fmt_timer(conn, now - view.seen.get(conn.id, now)))
    elif column is Column.AGE:
        text = Text(fmt_age(conn, now))
    elif column is Column.PROCESS:
        text = Text(fmt_process(conn), "" if conn.process else "#8a8a8a")
    else:
        text = Text()
        for n, tag in enumerate(sorted(conn.tags, key=lambda t: t.value)):
            if n:
                text.append(" ")
            text.append(tag.value, TAG_STYLE.get(tag, ""))
    return _fit(text, width, spec.right)


def row_text(
    view: TableView, row_id: str, columns: list[tuple[ColumnSpec, int]], width: int
) -> Text:
    """One table row as styled text (never markup: system text stays literal)."""
    if row_id.startswith(GROUP_PREFIX):
        line = Text(" " + view.groups.get(row_id, ""), HEADING_STYLE)
        return _fit(line, width, False)
    conn = view.connections[row_id]
    flash = view.flash_of(row_id)
    line = Text(style=FLASH_STYLE[flash] if flash else "")
    indent = view.depth.get(row_id, 0) > 0
    for n, (spec, cell_width) in enumerate(columns):
        if n:
            line.append(" ")
        line.append_text(cell_text(spec, cell_width, conn, view, indent))
    return _fit(line, width, False)


def title_text(view: TableView, columns: list[tuple[ColumnSpec, int]], width: int) -> Text:
    settings = view.settings
    line = Text(style=TITLE_STYLE)
    for n, (spec, cell_width) in enumerate(columns):
        if n:
            line.append(" ")
        title = spec.title
        if spec.column is settings.sort:
            title += " ▼" if settings.descending else " ▲"
        line.append_text(_fit(Text(title), cell_width, spec.right))
    return _fit(line, width, False)


class ConnectionTable(ScrollView, can_focus=True):
    """Virtualised table over a `TableView`; the selected connection survives refreshes."""

    DEFAULT_CSS = """
    ConnectionTable {
        height: 1fr;
        overflow-x: hidden;
        overflow-y: auto;
        scrollbar-size-vertical: 1;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,g", "jump(0)", "Top", show=False),
        Binding("end,G", "jump(-1)", "Bottom", show=False),
    ]

    cursor: reactive[int] = reactive(0, always_update=True, repaint=True)

    class SortClicked(Message):
        """The user clicked a column title."""

        def __init__(self, column: Column) -> None:
            super().__init__()
            self.column = column

    class Opened(Message):
        """The user double-clicked a row (same as enter)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view: TableView = EMPTY_VIEW
        self.selected_id: str | None = None
        self._columns: list[tuple[ColumnSpec, int]] = layout(80, ViewMode.ALL)
        self._layout_key = (80, ViewMode.ALL)
        # Painted rows of this poll by (row id, cursor look, width): a row reads the same
        # until the next poll, so repaints in between (a screen closing, the filter bar
        # opening, the cursor moving, a new order) reuse them instead of rendering 50 rows.
        self._strips: dict[tuple[str, int, int], Strip] = {}

    # -- data -----------------------------------------------------------------------

    def show(self, view: TableView) -> None:
        """Swap in a new picture, keeping the selected connection under the cursor."""
        old, self.view = self.view, view
        # Rows of one poll read the same in any order (all connections, not grouped: no
        # headings, no indent), so a re-sorted or re-filtered view keeps what was painted.
        if not (
            view.snapshot is old.snapshot
            and view.settings.mode is ViewMode.ALL
            and old.settings.mode is ViewMode.ALL
        ):
            self._strips = {}
        self.virtual_size = Size(self.size.width, len(view.rows) + 1)
        index = None if self.selected_id is None else view.index_of(self.selected_id)
        if index is None:
            index = min(self.cursor, max(0, len(view.rows) - 1))
        self._move_to(index)
        self.refresh()

    def select(self, row_id: str) -> bool:
        """Put the cursor on a row by id; False when the view does not show it."""
        index = self.view.index_of(row_id)
        if index is None:
            return False
        self._move_to(index)
        self.refresh()
        return True

    @property
    def selected(self) -> Connection | None:
        """The connection under the cursor (None on a group heading or an empty table)."""
        rows = self.view.rows
        if not rows or self.cursor >= len(rows) or rows[self.cursor].startswith(GROUP_PREFIX):
            return None
        return self.view.connections.get(rows[self.cursor])

    # -- painting -------------------------------------------------------------------

    def on_resize(self, event: Resize) -> None:
        self.virtual_size = Size(event.size.width, len(self.view.rows) + 1)
        self._scroll_cursor_into_view()

    def _layout_for(self, width: int) -> list[tuple[ColumnSpec, int]]:
        """The columns for rows `width` cells wide, recomputed when the width (a vertical
        scrollbar comes and goes with the row count) or the view mode changed."""
        key = (width, self.view.settings.mode)
        if key != self._layout_key:
            self._columns = layout(width, key[1])
            self._layout_key = key
        return self._columns

    def render_line(self, y: int) -> Strip:
        # The rows' width: the widget's, less the vertical scrollbar when there is one.
        width = self.scrollable_content_region.width or self.size.width
        columns = self._layout_for(width)
        if y == 0:
            text = title_text(self.view, columns, width)
            return Strip(list(text.render(self.app.console)), width).apply_style(self.rich_style)
        index = self.scroll_offset.y + y - 1
        rows = self.view.rows
        if index >= len(rows):
            return Strip.blank(width, self.rich_style)
        look = 0 if index != self.cursor else 2 if self.has_focus else 1
        key = (rows[index], look, width)
        strip = self._strips.get(key)
        if strip is None:
            text = row_text(self.view, rows[index], columns, width)
            if look:
                text.stylize(CURSOR_STYLE if look == 2 else UNFOCUSED_CURSOR_STYLE)
            strip = Strip(list(text.render(self.app.console)), width).apply_style(self.rich_style)
            if len(self._strips) > STRIP_CACHE_LIMIT:  # scrolled through many rows
                self._strips.clear()
            self._strips[key] = strip
        return strip

    # -- moving ---------------------------------------------------------------------

    def _move_to(self, index: int) -> None:
        rows = self.view.rows
        index = max(0, min(index, len(rows) - 1)) if rows else 0
        self.cursor = index
        if rows:
            self.selected_id = rows[index]
        self._scroll_cursor_into_view()

    def _scroll_cursor_into_view(self) -> None:
        visible = max(1, self.size.height - 1)
        top = round(self.scroll_offset.y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + visible:
            self.scroll_to(y=self.cursor - visible + 1, animate=False, immediate=True)

    def action_cursor(self, step: int) -> None:
        self._move_to(self.cursor + step)

    def action_page(self, direction: int) -> None:
        self._move_to(self.cursor + direction * max(1, self.size.height - 2))

    def action_jump(self, where: int) -> None:
        self._move_to(len(self.view.rows) - 1 if where < 0 else 0)

    def on_click(self, event: Click) -> None:
        if event.y == 0:
            x = event.x
            for spec, cell_width in self._columns:
                if x < cell_width + 1:
                    self.post_message(self.SortClicked(spec.column))
                    return
                x -= cell_width + 1
            return
        index = round(self.scroll_offset.y) + event.y - 1
        if index < len(self.view.rows):
            self._move_to(index)
            if event.chain >= 2:
                self.post_message(self.Opened())

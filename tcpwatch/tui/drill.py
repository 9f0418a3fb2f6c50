"""The drill-down screen: one connection explained like a textbook page, live."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.strip import Strip

from tcpwatch.model import Connection, SocketRecord, TimerName
from tcpwatch.tcp.explain import explain
from tcpwatch.tcp.host import HostSettings
from tcpwatch.tcp.states import TcpState
from tcpwatch.tcp.tags import awaiting_accept
from tcpwatch.textsafe import printable
from tcpwatch.tui import diagrams
from tcpwatch.tui.keybar import KeyBar
from tcpwatch.tui.page import PageView, paint
from tcpwatch.tui.table import (
    STATE_STYLE,
    TAG_STYLE,
    fmt_age,
    fmt_duration,
    fmt_endpoint,
    fmt_process,
)
from tcpwatch.tui.view import TableView, find_peer, listener_members

SECTION = "bold #87d7ff"
# Up to this many connections the first page is built at once, in the UI thread; a bigger
# view's takes too long for a key (the peer search and the explanation look at them all)
# and is built in a worker before the screen opens.
SYNC_LIMIT = 5000
MIN_PAGE_WIDTH = 20
LABEL = "#8a8a8a"


def _endpoint(address: str, port: int) -> str:
    return fmt_endpoint(printable(address), port)


def _section(title: str) -> Text:
    return Text(f"\n{title}", SECTION)


def _kv(pairs: Iterable[tuple[str, str]]) -> Text:
    out = Text()
    for n, (key, value) in enumerate(pairs):
        if n:
            out.append("\n")
        out.append(f"  {key:<18}", LABEL)
        out.append(value)
    return out


def _timer_text(record: SocketRecord, elapsed: float, host: HostSettings) -> str:
    timer = record.timer
    if timer is None:
        return "none running"
    left = fmt_duration(max(0.0, timer.expires_ms / 1000 - elapsed))
    if timer.name is TimerName.TIMEWAIT and record.state is TcpState.TIME_WAIT:
        return f"2MSL: {left} left of 60s, then the socket is freed and the port reusable"
    if timer.name is TimerName.TIMEWAIT:
        return f"FIN_WAIT2 timeout: {left} left of tcp_fin_timeout={host.tcp_fin_timeout}s"
    if timer.name is TimerName.KEEPALIVE:
        return (
            f"keepalive: next probe in {left} (time {host.tcp_keepalive_time}s, "
            f"interval {host.tcp_keepalive_intvl}s, {host.tcp_keepalive_probes} probes)"
            + (f", {timer.retrans} unanswered" if timer.retrans else "")
        )
    if timer.name is TimerName.PERSIST:
        return f"zero-window probe in {left}, {timer.retrans} sent: the peer's window is 0"
    what = "SYN-ACK" if record.state is TcpState.SYN_RECV else "retransmission"
    return f"{what} timer: fires in {left}, {timer.retrans} retransmissions so far"


def _tcp_info_text(record: SocketRecord, now: float) -> Text:
    info = record.tcp_info_at(now)
    if info is None:
        return Text("  not available (TIME_WAIT, request socks and /proc carry none)", LABEL)
    pairs = [
        ("rtt", f"{info.rtt_us / 1000:.2f} ms ± {info.rttvar_us / 1000:.2f} ms"),
        ("cwnd", f"{info.snd_cwnd} segments of {info.snd_mss} bytes"),
        (
            "retransmits",
            f"{info.retransmits} now (backoff {info.backoff}, probes {info.probes}), "
            f"{info.total_retrans} in total",
        ),
        ("unacked", f"{info.unacked} segments"),
        ("last data recv", fmt_duration(info.last_data_recv_ms / 1000) + " ago"),
        ("last ACK recv", fmt_duration(info.last_ack_recv_ms / 1000) + " ago"),
    ]
    if info.bytes_acked is not None:
        pairs.append(("bytes acked", f"{info.bytes_acked:,}"))
    if info.bytes_received is not None:
        pairs.append(("bytes received", f"{info.bytes_received:,}"))
    return _kv(pairs)


def _owner_text(conn: Connection) -> Text:
    process = conn.process
    if process is None:
        if conn.gone_at is None and awaiting_accept(conn.record):
            text = Text(
                "  no process yet: it waits in the listener's accept queue until the "
                "application calls accept()",
                LABEL,
            )
        elif conn.record.inode == 0:
            text = Text(
                "  no process holds this socket (TIME_WAIT, a request sock, or an orphan "
                "the kernel finishes alone)",
                LABEL,
            )
        else:
            text = Text("  unknown: run as root to see the owners of every socket", LABEL)
        former = conn.former_process
        if former is not None:
            text.append(f"\n  was held by {former.pid} {printable(former.name)}", LABEL)
        return text
    uid = process.uid if process.uid is not None else conn.record.uid
    return _kv(
        [
            ("pid", str(process.pid)),
            ("name", printable(process.name)),
            ("user", printable(process.user or "?") + f" (uid {uid})"),
            ("cmdline", " ".join(printable(arg) for arg in process.cmdline)),
        ]
    )


def _side(conn: Connection, now: float) -> Text:
    out = Text()
    out.append(conn.state.value, STATE_STYLE[conn.state])
    out.append(f"  for {fmt_age(conn, now)}\n")
    record = conn.record
    out.append(f"{_endpoint(record.local.address, record.local.port)}\n")
    out.append(f"Recv-Q {record.recv_q}  Send-Q {record.send_q}\n")
    out.append(f"process {fmt_process(conn)}")
    return out


def drill_title(conn: Connection, record: SocketRecord, now: float) -> Text:
    """The first line: state, endpoints, id, time in state, tags."""
    title = Text()
    title.append(f" {conn.state.value} ", STATE_STYLE[conn.state] + " reverse")
    title.append("  ")
    title.append(_endpoint(record.local.address, record.local.port), "bold")
    if record.state is not TcpState.LISTEN:
        title.append(" ⇄ ")
        title.append(_endpoint(record.remote.address, record.remote.port), "bold")
    title.append(f"   id {conn.id}   in this state {fmt_age(conn, now)}", LABEL)
    for tag in sorted(conn.tags, key=lambda t: t.value):
        title.append("  ")
        title.append(f" {tag.value} ", TAG_STYLE.get(tag, "") + " reverse")
    return title


def drill_body(
    conn: Connection,
    view: TableView,
    *,
    others: Sequence[Connection],
    latest: SocketRecord | None,
    host: HostSettings,
    lang: str,
    width: int,
) -> RenderableType:
    """Everything the drill-down shows, as Rich renderables built from Text (never markup).

    `others`: the connections of `view` the explanation looks at (`ViewModel.nearby`, or
    all of them)."""
    now = view.now
    record = latest or conn.record
    elapsed = now - view.seen.get(conn.id, now) if latest is None else 0.0
    peer = find_peer(conn, others)
    parts: list[RenderableType] = [drill_title(conn, record, now)]

    explanation = explain(conn, host=host, peer=peer, lang=lang, now=now, others=others)
    parts.append(_section(printable(explanation.title)))
    parts.append(_kv_block("What it means", explanation.meaning))
    parts.append(_kv_block("How it got here", explanation.how_it_got_here))
    if explanation.who_closed_first:
        parts.append(_kv_block("Who closed first", explanation.who_closed_first))
    parts.append(_kv_block("What happens next", explanation.what_next))
    for diagnosis in explanation.diagnoses:
        block = Text()
        block.append(f"\n⚠ {printable(diagnosis.title)}\n", "bold #ff8700")
        block.append("  Probable cause: ", "bold")
        block.append(printable(diagnosis.cause) + "\n")
        block.append("  What to do: ", "bold")
        block.append(printable(diagnosis.fix))
        parts.append(block)
    if explanation.notes:
        notes = Text()
        for n, note in enumerate(explanation.notes):
            notes.append("\n" if n else "")
            notes.append("• ", "#87d7ff")
            notes.append(_lines(note))
        parts.append(_section("Notes"))
        parts.append(notes)

    if record.state is TcpState.LISTEN:
        parts.extend(_listener_parts(conn, record, others))

    states, inferred = explanation.path, explanation.inferred
    parts.append(_section("State machine (this connection's path)"))
    parts.append(diagrams.state_machine(states, inferred))
    parts.append(_section("Path, step by step"))
    parts.append(diagrams.path_text(states, inferred))
    if record.state is not TcpState.LISTEN:
        parts.append(_section("Ladder: segments between the two ends"))
        parts.append(
            diagrams.ladder(
                explanation.ladder,
                states[0] if states else None,
                _endpoint(record.local.address, record.local.port),
                _endpoint(record.remote.address, record.remote.port),
                width=min(width - 2, 90),
            )
        )

    parts.append(_section("History"))
    history = Text()
    for n, step in enumerate(conn.history):
        if n:
            history.append("\n")
        history.append(f"  {fmt_duration(max(0.0, now - step.at)):>7} ago  ", LABEL)
        history.append(step.from_state.value if step.from_state else "(new)")
        history.append(" → ")
        history.append(step.to_state.value, STATE_STYLE[step.to_state])
        if step.inferred:
            history.append("  inferred", "italic #d7af5f")
    if not conn.history:
        history.append("  nothing recorded yet", LABEL)
    parts.append(history)

    parts.append(_section("Timers and queues"))
    queue_note = (
        "Recv-Q = connections waiting for accept(), Send-Q = backlog"
        if record.state is TcpState.LISTEN
        else "Recv-Q = bytes received, not yet read by the application; "
        "Send-Q = bytes sent, not yet acknowledged"
    )
    parts.append(
        _kv(
            [
                ("timer", _timer_text(record, elapsed, host)),
                ("queues", f"Recv-Q {record.recv_q}, Send-Q {record.send_q}"),
                ("", queue_note),
            ]
        )
    )
    parts.append(_section("tcp_info"))
    parts.append(_tcp_info_text(record, now))
    parts.append(_section("Owner"))
    parts.append(_owner_text(conn))

    if peer is not None:
        parts.append(_section("Both ends are on this host"))
        table = Table(box=None, expand=False, padding=(0, 2), show_edge=False)
        table.add_column(Text("this end", "bold"))
        table.add_column(Text("other end", "bold"))
        table.add_row(_side(conn, now), _side(peer, now))
        parts.append(table)
    return Group(*parts)


def _lines(body: str) -> str:
    """Catalog text may hold line breaks; everything else unprintable is escaped."""
    return "\n".join(printable(line) for line in body.split("\n"))


def _kv_block(title: str, body: str) -> Text:
    out = Text()
    out.append(f"{title}: ", "bold")
    out.append(_lines(body))
    return out


def _listener_parts(
    conn: Connection, record: SocketRecord, others: Sequence[Connection]
) -> list[Text]:
    members, syn_recv = listener_members(conn, others)
    waiting: list[Connection] = []
    accepted: list[Connection] = []
    for member in members:
        if awaiting_accept(member.record):
            waiting.append(member)
        elif member.record.state is not TcpState.SYN_RECV:
            accepted.append(member)
    parts: list[Text] = []
    backlog = max(record.send_q, 1)
    filled = min(20, record.recv_q * 20 // backlog)
    bar = Text("  accept queue  ")
    bar.append("█" * filled, "#ff8700" if record.recv_q * 10 >= backlog * 8 else "green")
    bar.append("░" * (20 - filled), "#444444")
    bar.append(f"  {record.recv_q} of backlog {record.send_q} waiting for accept()")
    bar.append(f"\n  SYN_RECV       {syn_recv} handshakes in progress (request socks)")
    parts.append(_section("Queues"))
    parts.append(bar)
    if waiting:
        parts.append(_section(f"Waiting in the accept queue ({len(waiting)})"))
        parts.append(_member_lines(waiting))
    parts.append(_section(f"Accepted connections ({len(accepted)})"))
    parts.append(_member_lines(accepted))
    return parts


def _member_lines(members: Sequence[Connection], shown: int = 30) -> Text:
    """A listener's connections, one a line: state, the client, the process holding it."""
    lines = Text()
    for n, member in enumerate(members[:shown]):
        if n:
            lines.append("\n")
        lines.append(f"  {member.state.value:<12}", STATE_STYLE[member.state])
        lines.append(_endpoint(member.record.remote.address, member.record.remote.port))
        if member.process is not None:
            lines.append(f"  {member.process.pid} {printable(member.process.name)}", LABEL)
    if len(members) > shown:
        lines.append(f"\n  … and {len(members) - shown} more (view by listener: v)", LABEL)
    if not members:
        lines.append("  none right now", LABEL)
    return lines


@dataclass(frozen=True, slots=True)
class Followed:
    """One poll's drill-down page, built and painted off the UI thread."""

    conn: Connection
    view: TableView
    body: RenderableType
    lines: tuple[Strip, ...]
    width: int  # what `lines` were painted for


def build_at_once(view: TableView) -> bool:
    """Whether a first page is built in the UI thread (see SYNC_LIMIT)."""
    return len(view.connections) <= SYNC_LIMIT


def page_width(screen_width: int) -> int:
    """The content width of a drill-down page on a screen this wide."""
    return max(MIN_PAGE_WIDTH, (screen_width or 80) - PageView.GUTTER)


# The connections of a view that the explanation of one of them looks at.
Nearby = Callable[[Connection, TableView], Sequence[Connection]]


def build_page(
    conn: Connection,
    view: TableView,
    *,
    nearby: Nearby,
    latest: SocketRecord | None,
    host: HostSettings,
    lang: str,
    width: int,
) -> Followed:
    """The page of `conn` (its newest version in `view`) built and painted. Pure: called
    in the polling thread for each new poll and, over SYNC_LIMIT connections, in a worker
    for the first page; `nearby` finds the few connections the explanation looks at."""
    conn = view.connections.get(conn.id, conn)
    others = nearby(conn, view)
    body = drill_body(conn, view, others=others, latest=latest, host=host, lang=lang, width=width)
    return Followed(conn, view, body, paint(body, width), width)


class DrillScreen(Screen[None]):
    """One connection in depth; follows it live while the polls go on.

    It opens with its first page already built (see `TcpwatchApp.action_drill`): built
    while the screen mounts, the page and Textual's layout passes would share the
    interpreter, and the page would come tens of milliseconds later. The app keeps one
    screen for every drill-down (`open` shows another connection): its widgets are made and
    styled once, and no closed screen is left for the cyclic collector."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # Dismissed, not popped: a pop skips the app's callback, and the app would go on
        # building the page of a closed screen at every poll.
        Binding("escape,q,backspace,left", "dismiss", "Back"),
        Binding("question_mark", "app.help", "Help"),
    ]

    def __init__(self, page: Followed, *, nearby: Nearby, host: HostSettings, lang: str) -> None:
        super().__init__()
        self._page = page  # what is shown: the connection, its view, the page and its lines
        self._width = page.width  # what pages are painted for: the page's content width
        self._nearby = nearby
        self._host = host
        self._lang = lang

    @property
    def conn(self) -> Connection:
        return self._page.conn

    @property
    def view(self) -> TableView:
        return self._page.view

    def compose(self) -> ComposeResult:
        yield PageView(id="drill-body")
        yield KeyBar(self.BINDINGS)

    def on_mount(self) -> None:
        self._width = page_width(self.size.width)
        self._show(self._page)
        self.query_one(PageView).focus()

    def open(self, page: Followed) -> None:
        """Show another connection's first page, from the top (before the screen is shown
        again: the terminal may have been resized meanwhile)."""
        self._width = page_width(self.app.size.width)
        self._show(page)
        self.query_one(PageView).scroll_home(animate=False)

    def prepare(self, view: TableView, latest: SocketRecord | None) -> Followed:
        """The page for a new poll, built in the polling thread."""
        return build_page(
            self.conn,
            view,
            nearby=self._nearby,
            latest=latest,
            host=self._host,
            lang=self._lang,
            width=self._width,
        )

    def follow(self, page: Followed) -> None:
        """Show a prepared page: the connection's newest version (gone ones stay, in red).
        A page prepared for the drill-down this one replaced is ignored."""
        if page.conn.id == self.conn.id:
            self._show(page)

    def on_resize(self) -> None:
        width = page_width(self.size.width)
        if width != self._width:
            self._width = width
            self._paint_again()

    def _paint_again(self) -> None:
        page, width = self._page, self._width

        def painted() -> None:
            again = replace(page, lines=paint(page.body, width), width=width)
            self.app.call_from_thread(self._show_if_current, again)

        self.run_worker(painted, thread=True, exclusive=True, group="page")

    def _show_if_current(self, page: Followed) -> None:
        """Show a page from a worker unless a poll's page already replaced the view it shows."""
        if page.view is self.view and self.is_attached:
            self._show(page)

    def _show(self, page: Followed) -> None:
        self._page = page
        self.query_one(PageView).show(page.lines)
        if page.width != self._width:  # painted before the terminal was resized
            self._paint_again()

"""The interactive monitor: polls in a thread, paints immutable views, explains on demand.

Threading: one thread worker owns the source and the Tracker and runs the poll loop, so
polls never overlap and a slow poll never blocks a key. After each poll it also folds the
delta into the `ViewModel` (filter, sort, group: O(changes), not O(connections)) and posts
the finished `TableView` to the UI thread, which only swaps it in and repaints the visible
rows. Changing the filter, sort or view rebuilds the model in a second thread worker.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import partial
from typing import ClassVar, Protocol

from rich.text import Text
from textual import events, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Input, Static
from textual.worker import get_current_worker

from tcpwatch.errors import TcpwatchError
from tcpwatch.filters import FilterError, parse_filter
from tcpwatch.heap import trim_heap
from tcpwatch.model import Snapshot
from tcpwatch.tcp.host import HostSettings
from tcpwatch.tcp.tags import DEFAULT_THRESHOLDS, Tag
from tcpwatch.textsafe import printable
from tcpwatch.tracker import Tracker
from tcpwatch.tui import strips
from tcpwatch.tui.drill import DrillScreen, Followed, build_at_once, build_page, page_width
from tcpwatch.tui.export import export_view
from tcpwatch.tui.filterbar import FilterInput
from tcpwatch.tui.header import HeaderPanel, Status
from tcpwatch.tui.help import HelpScreen
from tcpwatch.tui.keybar import KeyBar
from tcpwatch.tui.table import TAG_STYLE, ConnectionTable
from tcpwatch.tui.view import Column, TableView, ViewMode, ViewModel, ViewSettings

MAIN_SCREEN_ACTIONS = frozenset(
    ("filter", "drill", "sort", "reverse", "view", "only", "clear", "finding")
)
MIN_INTERVAL = 0.1
MAX_INTERVAL = 60.0
INTERVAL_STEPS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
HELP_SCREEN = "help"
DRILL_SCREEN = "drill"
MESSAGE_SECONDS = 15.0  # how long a message stays on the status line (it goes at a poll)
# key, tag, what the key shows, and its short name on the status line
TOGGLES: tuple[tuple[str, Tag, str, str], ...] = (
    ("l", Tag.LISTENER, "listeners", "listen"),
    ("h", Tag.HALF_OPEN, "half-open", "half-open"),
    ("c", Tag.HALF_CLOSED, "half-closed", "half-closed"),
    ("w", Tag.LINGERING, "lingering", "linger"),
    ("o", Tag.ORPHAN, "orphans", "orphan"),
    ("a", Tag.UNACCEPTED, "connections waiting for accept()", "unaccepted"),
)


class PollSource(Protocol):
    """What the app polls: a live `Poller` or a `ReplaySource` (None: end of recording)."""

    def poll(self) -> Snapshot | None: ...


class Polled(Message):
    """A poll finished: the new table picture, and the open drill-down's new page."""

    def __init__(self, view: TableView, page: Followed | None) -> None:
        super().__init__()
        self.view = view
        self.page = page


class Rebuilt(Message):
    def __init__(self, view: TableView) -> None:
        super().__init__()
        self.view = view


class PollFailed(Message):
    def __init__(self, text: str, *, fatal: bool) -> None:
        super().__init__()
        self.text = text
        self.fatal = fatal


class RecordingEnded(Message):
    """A replay has no more polls."""


# The monitor turns automatic collection off (see `tcpwatch.commands.interactive`); the poll
# thread runs the cyclic collector instead, seldom, since each run holds the interpreter
# (keys wait): over the objects made since the last run this often (75-100 ms at 50k
# connections, most of it the current poll's tables of 50k entries, whatever the period),
# and over everything this often (about 450 ms; for the little garbage that lived long
# first: Textual's layouts after filter edits, a few KiB each). Each run then trims the heap.
YOUNG_COLLECTION_SECONDS = 30.0
FULL_COLLECTION_SECONDS = 3600.0
# A due collection waits for this long without a key, a click or a scroll: someone typing a
# filter or paging through an explanation is not the one to keep waiting. The full run holds
# the interpreter five times longer, so it waits for the user to have stepped away.
QUIET_SECONDS = {1: 2.0, 2: 30.0}
USER_INPUT = (events.Key, events.MouseDown, events.MouseScrollDown, events.MouseScrollUp)


def collection_due(
    now: float, *, young_at: float, full_at: float, last_input: float, young_s: float, full_s: float
) -> int | None:
    """Which collection the poll thread runs now (monotonic times): 2 (everything), 1 (the
    young generations) or None. One that is due waits for a quiet moment (its own length of
    one), but never longer than its own period again."""
    idle = now - last_input
    for generation, since, period in ((2, full_at, full_s), (1, young_at, young_s)):
        waited = now - since
        if waited >= period and (idle >= QUIET_SECONDS[generation] or waited >= 2 * period):
            return generation
    return None


class TcpwatchApp(App[int]):
    """`tcpwatch` and `tcpwatch replay FILE`."""

    TITLE = "tcpwatch"
    CSS = """
    #bottom { height: auto; }
    #filter-input { display: none; height: 3; border: tall #87d7ff; }
    #filter-input.editing { display: block; }
    #filter-error { color: #ff5f5f; height: auto; }
    #status { height: 1; background: #262626; padding: 0 1; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("slash", "filter", "Filter"),
        Binding("enter", "drill", "Explain"),
        Binding("s", "sort", "Sort"),
        Binding("S", "reverse", "Reverse sort", show=False),
        Binding("v", "view", "View"),
        Binding("p", "pause", "Pause"),
        Binding("n", "step", "Next poll (paused)", show=False),
        Binding("plus,equals_sign", "interval(1)", "Interval +", show=False),
        Binding("minus,underscore", "interval(-1)", "Interval -", show=False),
        Binding("e", "export", "Export"),
        Binding("f", "finding", "Filter to the next finding", show=False),
        *(
            Binding(key, f"only('{tag.value}')", f"Only {label} (toggle)", show=False)
            for key, tag, label, _short in TOGGLES
        ),
        Binding("escape", "clear", "Clear filter and toggles", show=False),
    ]

    def __init__(
        self,
        source_factory: Callable[[], PollSource],
        *,
        interval: float,
        filter_text: str,
        export_dir: str,
        lang: str,
        replay: bool,
        host_settings: HostSettings | None = None,
        clock: Callable[[], float] = time.time,
        start_paused: bool = False,
    ) -> None:
        strips.install()  # before anything is painted: see `tcpwatch.tui.strips`
        super().__init__()
        self._source_factory = source_factory
        self.interval = interval
        self.export_dir = export_dir
        self.lang = lang
        self.replay = replay
        self.host_settings = host_settings or HostSettings()
        self.clock = clock
        self.paused = start_paused
        self.finished = False
        self.failure: str | None = None
        self.polls = 0
        self.model = ViewModel(
            ViewSettings(filter=parse_filter(filter_text)), host=self.host_settings, lang=lang
        )
        self.view: TableView = self.model.view
        self._settings = self.model.settings
        self._wake = threading.Event()
        self._step = False
        self._stopping = False
        self.young_collection_seconds = YOUNG_COLLECTION_SECONDS
        self.full_collection_seconds = FULL_COLLECTION_SECONDS
        self._last_input = float("-inf")  # monotonic time of the last key, click or scroll
        self._drill: DrillScreen | None = None  # the open drill-down, followed by each poll
        self._drill_screen: DrillScreen | None = None  # made at the first, kept for the next
        self._finding_shown = ""  # title of the finding `f` filtered to last
        self._message = Text()
        self._message_until = 0.0  # monotonic time the message leaves the status line
        self._status_line = Text()
        # Kept, not queried: a poll may land while another screen is on top.
        self._header = HeaderPanel(id="header")
        self.table = ConnectionTable(id="table")
        self._filter_input = FilterInput(
            placeholder="filter, e.g. port:8080 state:close-wait", id="filter-input"
        )
        self._filter_error = Static(id="filter-error")
        self._status = Static(id="status")

    # -- layout ---------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield self._header
        yield self.table
        with Vertical(id="bottom"):
            yield self._filter_input
            yield self._filter_error
            yield self._status
        yield KeyBar(self.BINDINGS, self)

    def on_mount(self) -> None:
        self.table.focus()
        self._show_status()
        self._poll_loop()

    async def on_event(self, event: events.Event) -> None:
        # Read by the poll thread (a float, replaced whole): collections wait for a pause.
        if isinstance(event, USER_INPUT):
            self._last_input = time.monotonic()
        await super().on_event(event)

    def on_unmount(self) -> None:
        self._stopping = True
        self._wake.set()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Table actions only where the table is: not under the drill-down or the help."""
        if action in MAIN_SCREEN_ACTIONS:
            return not isinstance(self.screen, (DrillScreen, HelpScreen))
        return True

    # -- polling (thread) -------------------------------------------------------------

    @work(thread=True, exclusive=True, group="poll")
    def _poll_loop(self) -> None:
        worker = get_current_worker()
        tracker = Tracker()
        try:
            source = self._source_factory()
        except TcpwatchError as error:
            self.post_message(PollFailed(str(error), fatal=True))
            return
        young_at = full_at = time.monotonic()  # the collector's last runs
        try:
            while not (worker.is_cancelled or self._stopping):
                now = time.monotonic()
                due = collection_due(
                    now,
                    young_at=young_at,
                    full_at=full_at,
                    last_input=self._last_input,
                    young_s=self.young_collection_seconds,
                    full_s=self.full_collection_seconds,
                )
                if due is not None:
                    gc.collect(due)
                    trim_heap()
                    young_at = now
                    if due == 2:
                        full_at = now
                if self.paused and not self._step:
                    self._wake.wait(self.young_collection_seconds)
                    self._wake.clear()
                    continue
                self._step = False
                started = time.monotonic()
                try:
                    snapshot = source.poll()
                except TcpwatchError as error:
                    self.post_message(PollFailed(str(error), fatal=False))
                    snapshot = None
                    if not self._stopping:
                        self._wake.wait(self.interval)
                        self._wake.clear()
                    continue
                if snapshot is None:
                    self.post_message(RecordingEnded())
                    return
                view = self.model.apply(tracker.update(snapshot))
                drill = self._drill
                page = None
                if drill is not None:
                    page = drill.prepare(view, tracker.latest(drill.conn.id))
                self.post_message(Polled(view, page))
                self._wake.wait(max(0.0, self.interval - (time.monotonic() - started)))
                self._wake.clear()
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    @work(thread=True, exclusive=True, group="view")
    def _rebuild(self, settings: ViewSettings) -> None:
        self.post_message(Rebuilt(self.model.configure(settings)))

    def on_polled(self, message: Polled) -> None:
        if self._stopping:
            return
        self.polls += 1
        # A poll made before a settings change would undo what the user just saw change
        # (e.g. a reversed order): the rebuild with the new settings is on its way.
        if message.view.settings == self._settings:
            self._show_view(message.view)
        # The drill-down may have been closed while this poll was on its way: follow it
        # only while it is the screen on top (a covered one catches up at the next poll).
        if message.page is not None and self._drill is not None and self.screen is self._drill:
            self._drill.follow(message.page)

    def on_rebuilt(self, message: Rebuilt) -> None:
        # A rebuild for settings already replaced again (S pressed twice) is outdated.
        if self._stopping or message.view.settings != self._settings:
            return
        self._show_view(message.view)

    def on_poll_failed(self, message: PollFailed) -> None:
        if message.fatal:
            self.failure = message.text
            self.exit(1)
            return
        self._say(f"poll failed: {message.text}", error=True)

    def on_recording_ended(self, _message: RecordingEnded) -> None:
        if self._stopping:
            return
        self.finished = True
        self._say("end of the recording: the last poll stays on screen; q quits")
        self._show_view(self.view, force=True)

    def _show_view(self, view: TableView, *, force: bool = False) -> None:
        if view.seq < self.view.seq and not force:
            return
        self.view = view
        self.table.show(view)
        self._show_header()
        if self._message and time.monotonic() >= self._message_until:
            self._message = Text()
        self._show_status()

    def _show_header(self) -> None:
        status = Status(
            interval=self.interval, paused=self.paused, replay=self.replay, finished=self.finished
        )
        self._header.show(self.view, status)

    # -- the status line and the filter bar ---------------------------------------------

    def _say(self, text: str, *, error: bool = False) -> None:
        self._message = Text(printable(text), "bold #ff5f5f" if error else "bold #87d787")
        self._message_until = time.monotonic() + MESSAGE_SECONDS
        self._show_status()

    def _show_status(self) -> None:
        """What is shown and the last message, most important first: a narrow terminal cuts
        the key legend at the end, never the filter or the message."""
        settings = self._settings
        line = Text()
        line.append("filter ", "#8a8a8a")
        line.append(settings.filter.text or "(none)", "bold" if settings.filter.text else "")
        for _key, tag, _label, short in TOGGLES:
            if tag in settings.only:
                line.append(" ")
                line.append(f"+{short}", TAG_STYLE[tag] + " reverse")
        if self._message:
            line.append("  ")
            line.append_text(self._message)
        line.append(f"  sort {settings.sort.value}{' ▼' if settings.descending else ''}", "#8a8a8a")
        line.append("  only", "#8a8a8a")
        for key, tag, _label, short in TOGGLES:
            on = tag in settings.only
            line.append(f" {key}:{short}", TAG_STYLE[tag] + " reverse" if on else "#6c6c6c")
        # One line high whatever it says: no layout pass (which would repaint every widget),
        # and nothing at all when it says the same as before, as after most polls.
        if line != self._status_line:
            self._status_line = line
            self._status.update(line, layout=False)

    def _apply(self, settings: ViewSettings) -> None:
        self._settings = settings
        self._show_status()
        self._rebuild(settings)

    def action_filter(self) -> None:
        field = self._filter_input
        field.value = self._settings.filter.text
        field.add_class("editing")
        field.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            parsed = parse_filter(event.value)
        except FilterError as error:
            self._filter_error.update(
                Text(f"✗ {printable(str(error))} (the previous filter stays)")
            )
            return
        self._filter_error.update("")
        self._close_filter()
        self._apply(replace(self._settings, filter=parsed))

    def _close_filter(self) -> None:
        field = self._filter_input
        field.remove_class("editing")
        self.table.focus()

    def action_clear(self) -> None:
        field = self._filter_input
        if field.has_class("editing"):
            self._filter_error.update("")
            self._close_filter()
            return
        self._apply(replace(self._settings, filter=parse_filter(""), only=frozenset()))

    def action_only(self, value: str) -> None:
        tag = Tag(value)
        only = self._settings.only ^ {tag}
        self._apply(replace(self._settings, only=only))

    def action_finding(self) -> None:
        """Filter to what the next host-wide finding is about (after the one shown last)."""
        findings = self.view.findings
        if not findings:
            self._say(
                "no findings: nothing has looked wrong for long enough (a CLOSE_WAIT counts "
                f"as leaked after {DEFAULT_THRESHOLDS.lingering_s:g} s in that state)"
            )
            return
        titles = [finding.title for finding in findings]
        following = (
            titles.index(self._finding_shown) + 1 if self._finding_shown in titles else 0
        ) % len(findings)
        finding = findings[following]
        self._finding_shown = finding.title
        self._apply(replace(self._settings, filter=parse_filter(finding.shows), only=frozenset()))
        self._say(
            f"finding {following + 1} of {len(findings)}: {finding.title}; "
            "enter explains a connection, escape shows all"
        )

    # -- sorting and views --------------------------------------------------------------

    def action_sort(self) -> None:
        columns = list(Column)
        following = columns[(columns.index(self._settings.sort) + 1) % len(columns)]
        self._apply(replace(self._settings, sort=following, descending=False))

    def action_reverse(self) -> None:
        settings = replace(self._settings, descending=not self._settings.descending)
        view = self.view
        if view.settings == self._settings and view.settings.mode is ViewMode.ALL:
            # The rows reversed are the new order: shown at once, without waiting for the
            # rebuild (which reverses the model's order too, behind a poll in progress).
            self._show_view(replace(view, rows=view.rows[::-1], settings=settings), force=True)
        self._apply(settings)

    def on_connection_table_sort_clicked(self, message: ConnectionTable.SortClicked) -> None:
        if message.column is self._settings.sort:
            self.action_reverse()
        else:
            self._apply(replace(self._settings, sort=message.column, descending=False))

    def action_view(self) -> None:
        modes = list(ViewMode)
        following = modes[(modes.index(self._settings.mode) + 1) % len(modes)]
        self._apply(replace(self._settings, mode=following))

    # -- polling control ----------------------------------------------------------------

    def action_pause(self) -> None:
        self.paused = not self.paused
        self._wake.set()
        self._say("paused: n polls once, p resumes" if self.paused else "resumed")
        self._show_header()

    def action_step(self) -> None:
        if not self.paused:
            self._say("n polls once while paused (p pauses)")
            return
        self._step = True
        self._wake.set()

    def action_interval(self, direction: int) -> None:
        steps = INTERVAL_STEPS
        if direction > 0:
            bigger = [s for s in steps if s > self.interval + 1e-9]
            self.interval = bigger[0] if bigger else MAX_INTERVAL
        else:
            smaller = [s for s in steps if s < self.interval - 1e-9]
            self.interval = smaller[-1] if smaller else MIN_INTERVAL
        self._wake.set()
        self._say(f"polling every {self.interval:g}s")
        self._show_header()

    # -- drill-down, export, help ---------------------------------------------------------

    def action_drill(self) -> None:
        conn = self.table.selected
        if conn is None:
            self._say("select a connection first (a heading row has nothing to explain)")
            return
        view = self.view
        first_page = partial(
            build_page,
            conn,
            view,
            nearby=self.model.nearby,
            latest=None,
            host=self.host_settings,
            lang=self.lang,
            width=page_width(self.size.width),
        )
        if build_at_once(view):
            self._open_drill(first_page())
            return

        def build() -> None:
            page = first_page()
            if not get_current_worker().is_cancelled:  # enter pressed again meanwhile
                self.call_from_thread(self._open_drill, page)

        # Not `@work` on a method: its description is the repr of the arguments, and the
        # repr of a view of 50k connections takes seconds.
        self.run_worker(build, thread=True, exclusive=True, group="drill")

    def _open_drill(self, page: Followed) -> None:
        # Only over the table: not over the help or the filter bar opened while it was built.
        covered = self.screen is not self.screen_stack[0]
        if self._stopping or covered or self._filter_input.has_class("editing"):
            return
        screen = self._drill_screen
        if screen is None:
            screen = DrillScreen(
                page, nearby=self.model.nearby, host=self.host_settings, lang=self.lang
            )
            self.install_screen(screen, DRILL_SCREEN)
            self._drill_screen = screen
        else:
            screen.open(page)
        self._drill = screen
        self.push_screen(screen, callback=self._drill_closed)

    def _drill_closed(self, _result: None) -> None:
        self._drill = None

    def on_connection_table_opened(self, _message: ConnectionTable.Opened) -> None:
        self.action_drill()

    def action_export(self) -> None:
        try:
            path = export_view(self.view, self.export_dir, self.clock)
        except TcpwatchError as error:
            self._say(f"export failed: {error}", error=True)
            self.notify(printable(f"export failed: {error}"), severity="error", markup=False)
            return
        count = len(self.view.shown_connections())
        self._say(f"exported {count} connections to {path}")
        self.notify(f"exported {count} connections to {printable(path)}", markup=False)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
            return
        # Built once and kept installed: later openings only show it again.
        if not self.is_screen_installed(HELP_SCREEN):
            sections = [
                ("Main screen", [b for b in self.BINDINGS if isinstance(b, Binding)]),
                ("Table", list(ConnectionTable.BINDINGS)),
                ("Explanation screen", list(DrillScreen.BINDINGS)),
            ]
            self.install_screen(HelpScreen(sections), HELP_SCREEN)
        self.push_screen(HELP_SCREEN)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for title, help_text, action in (
            ("Explain the selected connection", "Drill down (enter)", self.action_drill),
            ("Filter…", "Open the filter bar (/)", self.action_filter),
            ("Clear filter and toggles", "Show everything (escape)", self.action_clear),
            ("Next finding", "Filter to what looks wrong (f)", self.action_finding),
            ("Next sort column", "Sort by the next column (s)", self.action_sort),
            ("Reverse sort order", "Ascending / descending (S)", self.action_reverse),
            ("Next view", "All / by listener / by process (v)", self.action_view),
            ("Pause or resume polling", "p", self.action_pause),
            ("Poll once", "While paused (n)", self.action_step),
            ("Longer interval", "+", lambda: self.action_interval(1)),
            ("Shorter interval", "-", lambda: self.action_interval(-1)),
            ("Export the view", "Snapshot document with histories (e)", self.action_export),
            ("Keys", "Every key (?)", self.action_help),
        ):
            yield SystemCommand(title, help_text, action)
        for key, tag, label, _short in TOGGLES:
            yield SystemCommand(
                f"Toggle: only {label}",
                f"Show connections tagged {tag.value} ({key})",
                lambda value=tag.value: self.action_only(value),
            )

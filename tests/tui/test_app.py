"""Pilot tests of the interactive monitor over the fake busy host and a real Tracker."""

from __future__ import annotations

import gc
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.strip import Strip
from textual.widgets import Input

from tcpwatch.model import Connection, Endpoint, Snapshot
from tcpwatch.recording import RecordingWriter, ReplaySource
from tcpwatch.tcp.states import TcpState
from tcpwatch.tcp.tags import Tag
from tcpwatch.tui import app as app_module
from tcpwatch.tui import drill as drill_module
from tcpwatch.tui.app import Polled, TcpwatchApp
from tcpwatch.tui.demo import HOSTILE_NAME, BusyHost
from tcpwatch.tui.drill import DrillScreen
from tcpwatch.tui.header import HeaderPanel
from tcpwatch.tui.help import HelpScreen
from tcpwatch.tui.keybar import KeyBar
from tcpwatch.tui.page import PageView
from tcpwatch.tui.table import CURSOR_STYLE, ConnectionTable, layout, row_text
from tcpwatch.tui.view import GROUP_PREFIX, Column, ViewMode

from .helpers import busy_app, collector_off, find, plain, settle, step, until


def _status(app: TcpwatchApp) -> str:
    return plain(app.query_one("#status").content)


def _rows(app: TcpwatchApp) -> list[Connection]:
    return [app.view.connections[r] for r in app.view.rows if not r.startswith(GROUP_PREFIX)]


async def _leak_page(pilot, app: TcpwatchApp) -> PageView:
    """After three polls, the drill-down of a CLOSE_WAIT leak, open; its page widget."""
    await step(pilot, 3)
    await _drill(pilot, app, find(app, lambda c: c.record.state is TcpState.CLOSE_WAIT))
    return app.screen.query_one(PageView)


async def _drill(pilot, app: TcpwatchApp, conn: Connection) -> str:
    assert app.table.select(conn.id)
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, DrillScreen), "the drill-down")
    await pilot.pause()
    screen = app.screen
    assert isinstance(screen, DrillScreen)
    return screen.query_one(PageView).text


async def test_main_screen_shows_the_busy_host() -> None:
    app = busy_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await step(pilot, 3)
        view = app.view
        assert view.state_counts["LISTEN"] == 7
        assert view.state_counts["CLOSE_WAIT"] >= 3
        assert view.tag_counts["half_closed"] >= 3
        header = plain(app.query_one(HeaderPanel).render())
        assert "host web-1" in header and "source netlink" in header and "PAUSED" in header
        assert "CLOSE_WAIT" in header and "half_open" in header
        assert sum(1 for r in view.rows if view.connections[r].gone_at is None) == view.live
        assert app.table.selected is not None


async def test_hostile_process_names_are_shown_literally() -> None:
    app = busy_app()
    async with app.run_test(size=(160, 40)) as pilot:
        await step(pilot)
        hostile = find(app, lambda c: c.process is not None and c.process.name == HOSTILE_NAME)
        columns = layout(160, ViewMode.ALL)
        line = row_text(app.view, hostile.id, columns, 160)
        assert "[bold]x\\x1b[2J" in line.plain
        assert "\x1b" not in line.plain
        text = await _drill(pilot, app, hostile)
        assert "[bold]x\\x1b[2J" in text
        assert "[red]evil \\x1b]0;pwned\\x07" in text
        assert "\x1b" not in text and "\x07" not in text


async def test_filter_bar_valid_then_invalid_keeps_the_previous_filter() -> None:
    app = busy_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await step(pilot)
        await pilot.press("slash", *"state:close-wait", "enter")
        await settle(
            pilot, app, lambda: app.view.settings.filter.text == "state:close-wait", "filter"
        )
        assert _rows(app) and all(c.record.state is TcpState.CLOSE_WAIT for c in _rows(app))
        assert "state:close-wait" in _status(app)
        await pilot.press("slash", "ctrl+a", "ctrl+k", *"bogus:1", "enter")
        await pilot.pause()
        error = plain(app.query_one("#filter-error").content)
        assert "bogus" in error and "previous filter stays" in error
        assert app.view.settings.filter.text == "state:close-wait"
        assert app.query_one("#filter-input").has_class("editing")
        await pilot.press("escape")
        assert not app.query_one("#filter-input").has_class("editing")
        await pilot.press("escape")  # clears the filter
        await settle(pilot, app, lambda: app.view.settings.filter.text == "", "cleared filter")
        assert len(_rows(app)) > 20


@pytest.mark.parametrize(
    ("keys", "typed"),
    [
        (("ctrl+u", *"port:80"), "port:80"),  # cleared, then typed
        (("end", "left", *"1"), "state:close-wai1t"),
        (("home", "ctrl+k", *"sport:9"), "sport:9"),
    ],
)
async def test_filter_bar_keys_arriving_together_take_effect_in_order(
    keys: tuple[str, ...], typed: str
) -> None:
    """Keys the terminal delivers at once (a fast typist while a poll repaints, a pasted
    line) edit the filter in the order they were typed: an editing key is not overtaken by
    the characters after it."""
    app = busy_app(filter_text="state:close-wait")
    async with app.run_test(size=(120, 40)) as pilot:
        await step(pilot)
        await pilot.press("slash")
        field = app.query_one("#filter-input", Input)
        await until(pilot, lambda: field.has_focus, "the filter bar")
        for key in keys:  # as the driver posts them: no waiting in between
            character = key if len(key) == 1 else None
            app.post_message(events.Key(key, character))
        await pilot.pause()
        assert field.value == typed


async def test_command_line_filter_is_applied_and_shown() -> None:
    app = busy_app(filter_text="port:8080")
    async with app.run_test(size=(120, 40)) as pilot:
        await step(pilot)
        assert "port:8080" in _status(app)
        rows = _rows(app)
        assert rows
        assert all(8080 in (c.record.local.port, c.record.remote.port) for c in rows)


async def test_quick_toggles() -> None:
    app = busy_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await step(pilot)
        await pilot.press("l")
        await settle(pilot, app, lambda: app.view.settings.only == {Tag.LISTENER}, "toggle")
        assert {c.record.state for c in _rows(app)} == {TcpState.LISTEN}
        await pilot.press("h")
        await settle(pilot, app, lambda: len(app.view.settings.only) == 2, "second toggle")
        states = {c.record.state for c in _rows(app)}
        assert TcpState.SYN_SENT in states and TcpState.LISTEN in states
        await pilot.press("l", "h")
        await settle(pilot, app, lambda: not app.view.settings.only, "toggles off")
        assert TcpState.ESTABLISHED in {c.record.state for c in _rows(app)}


async def test_sort_keeps_the_selected_connection() -> None:
    app = busy_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await step(pilot)
        await pilot.press("down", "down", "down", "down", "down")
        chosen = app.table.selected
        assert chosen is not None
        await pilot.press("s")
        await settle(pilot, app, lambda: app.view.settings.sort is Column.LOCAL, "sort")
        assert app.table.selected is not None and app.table.selected.id == chosen.id
        locals_ = [(c.record.local.address, c.record.local.port) for c in _rows(app)]
        assert locals_ != sorted(locals_, key=lambda a: a[1]) or len(set(locals_)) < 3
        await step(pilot, 2)
        assert app.table.selected is not None and app.table.selected.id == chosen.id
        await pilot.press("S")
        await settle(pilot, app, lambda: app.view.settings.descending, "reverse")
        assert app.table.selected.id == chosen.id
        # a click on the Recv-Q title sorts by it
        table = app.query_one(ConnectionTable)
        x = sum(width + 1 for _spec, width in table._columns[:3]) + 1
        await pilot.click(ConnectionTable, offset=(x, 0))
        await settle(pilot, app, lambda: app.view.settings.sort is Column.RECV_Q, "click sort")
        queues = [c.record.recv_q for c in _rows(app)]
        assert queues == sorted(queues)


async def test_reverse_shows_at_once_without_the_rebuild(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """S reverses the rows on screen in the key's own handler: no re-sort, no waiting
    for the model behind a poll; the rebuild that follows agrees."""
    app = busy_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await step(pilot)
        before = app.view.rows
        rebuilds: list[object] = []
        rebuild = app._rebuild
        monkeypatch.setattr(app, "_rebuild", lambda s: rebuilds.append(s))
        app.action_reverse()
        assert app.view.settings.descending and app.view.rows == before[::-1]
        assert "▼" in plain(app.table.render_line(0).text)
        rebuild(rebuilds[0])
        await settle(pilot, app, lambda: app.view.seq > 1, "the rebuild")
        assert app.view.rows == before[::-1]


async def test_drill_down_of_a_big_view_builds_in_a_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Over SYNC_LIMIT connections the first page is built in a worker thread, and the
    screen opens with the whole page; the table is not covered before."""
    monkeypatch.setattr(drill_module, "SYNC_LIMIT", 0)
    builders: list[threading.Thread] = []
    drill_body = drill_module.drill_body

    def recorded(*args: Any, **kwargs: Any) -> Any:
        builders.append(threading.current_thread())
        return drill_body(*args, **kwargs)

    monkeypatch.setattr(drill_module, "drill_body", recorded)
    app = busy_app(step=10.0)
    async with app.run_test(size=(120, 40)) as pilot:
        await step(pilot, 4)
        leak = find(app, lambda c: c.record.state is TcpState.CLOSE_WAIT)
        assert app.table.select(leak.id)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DrillScreen), "the drill-down")
        screen = app.screen
        assert isinstance(screen, DrillScreen)
        text = screen.query_one(PageView).text
        assert "in this state" in text and "What it means" in text
        assert builders and builders[0] is not threading.main_thread()


async def test_drill_down_built_in_a_thread_does_not_cover_the_help(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A page that is ready after the user opened the help (or the filter bar) is dropped:
    the drill-down opens only over the table it was asked from."""
    monkeypatch.setattr(drill_module, "SYNC_LIMIT", 0)
    app = busy_app(step=10.0)
    async with app.run_test(size=(120, 40)) as pilot:
        await step(pilot, 2)
        conn = app.table.selected
        assert conn is not None
        page = drill_module.build_page(
            conn,
            app.view,
            nearby=app.model.nearby,
            latest=None,
            host=app.host_settings,
            lang="en",
            width=100,
        )
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
        app._open_drill(page)
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen), "the table")
        await pilot.press("slash")
        app._open_drill(page)
        await pilot.pause()
        assert not isinstance(app.screen, DrillScreen)
        await pilot.press("escape")
        app._open_drill(page)
        await until(pilot, lambda: isinstance(app.screen, DrillScreen), "the drill-down")


async def test_a_closed_drill_down_is_no_longer_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """While the drill-down is open every poll builds its page; once it is closed (escape,
    q, left or a click on Back) no poll does."""
    built: list[str] = []
    build_page = drill_module.build_page

    def counted(conn: Connection, *args: Any, **kwargs: Any) -> Any:
        built.append(conn.id)
        return build_page(conn, *args, **kwargs)

    monkeypatch.setattr(drill_module, "build_page", counted)
    app = busy_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await step(pilot, 2)
        for close in ("escape", "q", "left", "click"):
            conn = app.table.selected
            assert conn is not None
            await _drill(pilot, app, conn)
            before = len(built)
            await step(pilot)
            assert built[before:] == [conn.id], close
            if close == "click":
                await pilot.click(KeyBar, offset=(2, 0))
            else:
                await pilot.press(close)
            await until(pilot, lambda: not isinstance(app.screen, DrillScreen), "the table")
            before = len(built)
            await step(pilot, 2)
            assert built[before:] == [], close


async def test_views_by_listener_and_by_process() -> None:
    app = busy_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await step(pilot, 4)
        await pilot.press("v")
        await settle(pilot, app, lambda: app.view.settings.mode is ViewMode.LISTENER, "view")
        view = app.view
        java = find(
            app, lambda c: c.record.state is TcpState.LISTEN and c.record.local.port == 8080
        )
        start = view.rows.index(java.id)
        members = []
        for row in view.rows[start + 1 :]:
            if view.depth.get(row, 0) == 0:
                break
            members.append(view.connections[row])
        assert any(m.record.state is TcpState.CLOSE_WAIT for m in members)
        assert all(m.record.local.port == 8080 for m in members)
        # nginx's 443: what waits in its accept queue is not counted as accepted.
        (heading,) = [
            row
            for row, text in view.groups.items()
            if text.startswith("*:443 nginx (pid 1201): accept queue 3 of backlog 511")
        ]
        start = view.rows.index(heading) + 2  # the heading, then the listener
        https = []
        for row in view.rows[start:]:
            if view.depth.get(row, 0) == 0:
                break
            https.append(view.connections[row])
        waiting = [c for c in https if Tag.UNACCEPTED in c.tags]
        syn_recv = [c for c in https if c.record.state is TcpState.SYN_RECV]
        assert len(waiting) == 3 and len(syn_recv) == 3
        accepted = len(https) - 3 - 3
        assert view.groups[heading].endswith(f", {accepted} accepted, 3 SYN_RECV")
        await pilot.press("v")
        await settle(pilot, app, lambda: app.view.settings.mode is ViewMode.PROCESS, "by process")
        headings = [app.view.groups[r] for r in app.view.rows if r.startswith(GROUP_PREFIX)]
        assert any(
            h.startswith("java (pid 4242, user app)") and "CLOSE_WAIT" in h for h in headings
        )
        assert any(h.startswith("no owner") for h in headings)


async def test_drill_down_listener() -> None:
    app = busy_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await step(pilot, 2)
        listener = find(
            app, lambda c: c.record.state is TcpState.LISTEN and c.record.local.port == 5432
        )
        text = await _drill(pilot, app, listener)
        assert "127.0.0.1" in text and "Accepted connections (6)" in text
        assert "0 of backlog 244" in text
        assert "handshakes in progress" in text
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, DrillScreen), "back to the table")


async def test_drill_down_of_an_accept_queue_and_of_a_connection_waiting_in_it() -> None:
    """nginx's 443 listener has three connections in its accept queue (its Recv-Q): the
    listener lists them apart from what it accepted, and each says why no process has it."""
    app = busy_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await step(pilot, 2)
        listener = find(
            app,
            lambda c: (
                c.record.state is TcpState.LISTEN and c.record.local == Endpoint("0.0.0.0", 443)
            ),
        )
        text = await _drill(pilot, app, listener)
        assert "3 of backlog 511 waiting for accept()" in text
        waiting = text.split("Waiting in the accept queue (3)", 1)[1].split("Accepted", 1)[0]
        assert waiting.count("198.51.100.23:5200") == 3 and "nginx" not in waiting
        assert "3 waiting in the accept queue for accept()" in text
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, DrillScreen), "back to the table")
        await pilot.press("a")
        await until(pilot, lambda: len(_rows(app)) == 3, "only the unaccepted")
        assert all(Tag.UNACCEPTED in c.tags and c.process is None for c in _rows(app))
        text = await _drill(pilot, app, _rows(app)[0])
        assert "unaccepted: the kernel completed the handshake" in text
        assert "no process yet: it waits in the listener's accept queue" in text


async def test_drill_down_close_wait_leak() -> None:
    app = busy_app(step=10.0)
    async with app.run_test(size=(120, 40)) as pilot:
        await step(pilot, 4)
        leak = min(  # the oldest: in CLOSE_WAIT since before the first poll
            (c for c in _rows(app) if c.record.state is TcpState.CLOSE_WAIT),
            key=lambda c: c.state_since or 0.0,
        )
        text = await _drill(pilot, app, leak)
        assert "CLOSE_WAIT leaked by java (pid 4242)" in text
        assert "[F.]" in text and "Ladder" in text
        assert "Both ends are on this host" in text and "FIN_WAIT2" in text
        assert "pid" in text and "-jar /srv/app/shop.jar" in text


async def test_the_header_names_what_looks_wrong_and_f_filters_to_each_finding() -> None:
    """The leak the demo's Java app has is in the header without any key; `f` filters the
    table to its connections, a second `f` to the next finding; escape shows all again."""
    app = busy_app(step=10.0)
    async with app.run_test(size=(160, 40)) as pilot:
        await step(pilot, 2)
        assert not app.view.findings  # no CLOSE_WAIT is past the 30 s threshold yet
        assert "f shows them" not in plain(app.query_one(HeaderPanel).render(), 160)
        await pilot.press("f")
        await until(pilot, lambda: "no findings" in _status(app), "the no-findings message")
        await step(pilot, 3)
        findings = app.view.findings
        assert [f.code for f in findings][:1] == ["close_wait_leak"]
        header = plain(app.query_one(HeaderPanel).render(), 160)
        leak = findings[0]
        assert re.search(r"⚠ \d+ CLOSE_WAIT leaked by java \(pid 4242\)", header), header
        assert "f shows them" in header
        await pilot.press("f")
        await settle(
            pilot,
            app,
            lambda: app.view.settings.filter.text == "pid:4242 state:close-wait",
            "the leak's connections",
        )
        shown = _rows(app)
        now = app.view.now
        old = [c for c in shown if now - (c.state_since or c.first_seen) >= 30]
        assert old and leak.title.startswith(f"{len(old)} CLOSE_WAIT")  # those past 30 s
        assert all(c.state is TcpState.CLOSE_WAIT and c.process.pid == 4242 for c in shown)
        assert f"finding 1 of {len(findings)}" in _status(app)
        if len(findings) > 1:
            await pilot.press("f")
            await settle(
                pilot,
                app,
                lambda: app.view.settings.filter.text == app.view.findings[1].shows,
                "the second finding's connections",
            )
        await pilot.press("escape")
        await settle(pilot, app, lambda: not app.view.settings.filter.text, "everything again")


async def test_drill_down_time_wait_counts_down() -> None:
    app = busy_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await step(pilot, 2)
        tw = find(app, lambda c: c.record.state is TcpState.TIME_WAIT)
        text = await _drill(pilot, app, tw)
        assert "TIME_WAIT" in text and "2MSL" in text
        first = [line for line in text.splitlines() if "2MSL:" in line]
        assert first
        await step(pilot)
        screen = app.screen
        assert isinstance(screen, DrillScreen)
        second = [line for line in screen.query_one(PageView).text.splitlines() if "2MSL:" in line]
        assert second and second != first


async def test_drill_down_syn_sent_and_dead_peer() -> None:
    app = busy_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await step(pilot, 4)
        syn_sent = find(app, lambda c: c.record.state is TcpState.SYN_SENT)
        text = await _drill(pilot, app, syn_sent)
        assert "[S]" in text and "192.0.2.10" in text and "gets no answer" in text
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, DrillScreen), "back")
        dead = find(app, lambda c: c.record.remote.address == "203.0.113.99")
        assert Tag.HALF_OPEN in dead.tags
        text = await _drill(pilot, app, dead)
        assert "stopped answering" in text
        assert "retransmits" in text and "unacked" in text


async def test_export_writes_the_filtered_view(tmp_path: Path) -> None:
    app = busy_app(filter_text="proc:java", export_dir=str(tmp_path))
    async with app.run_test(size=(120, 40)) as pilot:
        await step(pilot, 3)
        await pilot.press("c")
        await settle(pilot, app, lambda: app.view.settings.only == {Tag.HALF_CLOSED}, "toggle")
        await pilot.press("e")
        await until(pilot, lambda: "exported" in _status(app), "the export message")
        files = list(tmp_path.iterdir())
        assert len(files) == 1
        assert re.fullmatch(r"tcpwatch-\d{8}-\d{6}\.json", files[0].name)
        assert str(files[0]) in _status(app)
        document = json.loads(files[0].read_text())
        assert document["schema"] == "tcpwatch.snapshot/1"
        assert document["filter"] == "proc:java tag:half_closed"
        conns = document["connections"]
        assert conns and all(c["process"]["name"] == "java" for c in conns)
        assert all(c["state"] == "CLOSE_WAIT" for c in conns)
        assert all(c["history"] for c in conns)
        assert document["summary"]["total"] == len(conns)


@pytest.mark.parametrize("where", ["file", "/proc"])
async def test_export_to_an_unwritable_place_is_a_message(tmp_path: Path, where: str) -> None:
    target = tmp_path / "not-a-dir"
    target.write_text("")
    app = busy_app(export_dir=str(target) if where == "file" else where)
    async with app.run_test(size=(120, 40)) as pilot:
        await step(pilot)
        await pilot.press("e")
        await until(pilot, lambda: "export failed" in _status(app), "the failure message")
        assert app.is_running


async def test_pause_stops_polling_and_interval_keys() -> None:
    app = busy_app(interval=0.1, start_paused=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.polls >= 3, "three polls")
        await pilot.press("p")
        assert app.paused
        await pilot.pause(0.3)  # a poll already running may still land
        frozen = app.polls
        await pilot.pause(0.5)  # five intervals: none may poll
        assert app.polls == frozen
        assert "PAUSED" in plain(app.query_one(HeaderPanel).render())
        await step(pilot)
        assert app.polls == frozen + 1
        await pilot.press("plus")
        assert app.interval == 0.2
        await pilot.press("minus", "minus")
        assert app.interval == 0.1
        await pilot.press("p")
        await until(pilot, lambda: app.polls >= frozen + 3, "polling again")


async def test_a_message_shows_on_a_narrow_terminal_and_leaves_after_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At 80 columns the status line's key legend does not fit: it is what gets cut, after
    the filter, the active toggles and the message."""
    app = busy_app(filter_text="port:8080")
    async with app.run_test(size=(80, 24)) as pilot:
        await step(pilot)
        await pilot.press("c")
        await settle(pilot, app, lambda: app.view.settings.only == {Tag.HALF_CLOSED}, "toggle")
        await pilot.press("p")  # resumes: "resumed"
        await until(pilot, lambda: "resumed" in _status(app), "the message")
        status = app.query_one("#status")
        width = status.content_size.width
        first_line = plain(status.content, width=10_000).splitlines()[0][:width]
        assert "port:8080" in first_line and "+half-closed" in first_line
        assert "resumed" in first_line, first_line
        monkeypatch.setattr(app_module, "MESSAGE_SECONDS", 0.0)
        await pilot.press("p")
        await until(pilot, lambda: "paused" in _status(app), "the message")
        await step(pilot)
        assert "paused" not in _status(app)  # gone at the next poll once its time is up


async def test_help_lists_every_key_and_palette_offers_every_action() -> None:
    app = busy_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await step(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen")
        app.action_step()  # a poll landing under the help screen updates the table behind it
        await until(pilot, lambda: app.polls == 2, "a poll under the help screen")
        assert app.table.view is app.view
        text = plain(app.screen.query_one("Static").content)
        for binding in TcpwatchApp.BINDINGS:
            assert binding.description in text
        for key in ("/", "?", "+", "-", "enter", "escape", "pageup"):
            assert key in text
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen), "help closed")
        first = app.screen_stack
        # Kept from the first opening: the same screen comes back, and goes again with q.
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help, again")
        assert "escape, q or ? closes" in plain(app.screen.query_one("Static").content)
        await pilot.press("q")
        await until(pilot, lambda: app.screen_stack == first, "help closed again")
        assert app.is_running
        titles = " ".join(c.title for c in app.get_system_commands(app.screen))
        for words in ("Explain", "Filter", "Export", "Pause", "sort", "view", "only orphans"):
            assert words in titles


async def test_small_terminal_shows_table_and_drill_down() -> None:
    app = busy_app()
    async with app.run_test(size=(80, 24)) as pilot:
        scroll = await _leak_page(pilot, app)
        table = app.query_one(ConnectionTable)
        assert table.size.height >= 12
        assert [spec.column for spec, _ in table._columns][:5] == list(Column)[:5]
        assert scroll.size.height >= 18
        await pilot.press("pagedown")
        await until(pilot, lambda: scroll.scroll_y > 0, "scrolling the drill-down")


async def test_the_drill_down_page_is_painted_again_for_a_new_width() -> None:
    app = busy_app()
    async with app.run_test(size=(120, 40)) as pilot:
        page = await _leak_page(pilot, app)
        assert {line.cell_length for line in page.lines} == {120 - PageView.GUTTER}
        words = page.text.split()
        await pilot.resize_terminal(80, 24)
        await until(
            pilot,
            lambda: {line.cell_length for line in page.lines} == {80 - PageView.GUTTER},
            "the page painted for 80 columns",
        )
        # The same page, wrapped anew: no line is cut off at the old width.
        assert page.text.split() == words
        await step(pilot)
        assert {line.cell_length for line in page.lines} == {80 - PageView.GUTTER}


async def test_the_next_drill_down_shows_its_own_page_from_the_top() -> None:
    """One screen serves every drill-down: opened again for another connection (after the
    terminal was resized behind the table), it shows that connection's page, at the new
    width, from its first line."""
    app = busy_app()
    async with app.run_test(size=(120, 40)) as pilot:
        page = await _leak_page(pilot, app)
        first = app.screen
        leak = first.conn
        await pilot.press("end")
        await until(pilot, lambda: page.scroll_y > 0, "the end of the page")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, DrillScreen), "the table")
        await pilot.resize_terminal(100, 30)
        await pilot.pause()
        listener = find(app, lambda c: c.record.state is TcpState.LISTEN)
        text = await _drill(pilot, app, listener)
        assert app.screen is first and first.conn.id == listener.id != leak.id
        assert "Accepted connections" in text and "CLOSE_WAIT leaked" not in text
        assert page.scroll_y == 0
        assert {line.cell_length for line in page.lines} == {100 - PageView.GUTTER}


async def test_the_drill_down_page_follows_a_change_of_theme() -> None:
    app = busy_app()
    async with app.run_test(size=(120, 40)) as pilot:
        page = await _leak_page(pilot, app)

        def background() -> object:
            return list(page.render_line(5))[-1].style.bgcolor  # type: ignore[union-attr]

        dark = background()
        app.theme = "textual-light"
        await until(pilot, lambda: background() != dark, "the page drawn in the new theme")


class _SlowSource:
    """Blocks inside poll() until released: the UI must stay responsive meanwhile."""

    def __init__(self) -> None:
        self.inner = BusyHost()
        self.entered = threading.Event()
        self.release = threading.Event()

    def poll(self) -> Snapshot:
        self.entered.set()
        self.release.wait(10)
        return self.inner.poll()


async def test_a_slow_poll_never_blocks_keys() -> None:
    source = _SlowSource()
    app = TcpwatchApp(
        lambda: source, interval=1.0, filter_text="", export_dir=".", lang="en", replay=False
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, source.entered.is_set, "the poll to start")
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help during a poll")
        source.release.set()
        await until(pilot, lambda: app.polls >= 1, "the poll to finish")


async def test_replay_runs_to_the_end_with_pause_and_step(tmp_path: Path) -> None:
    path = tmp_path / "busy.rec"
    writer = RecordingWriter(path)
    host = BusyHost()
    for _ in range(5):
        writer.write(host.poll())
    writer.close()
    source = ReplaySource(path)
    app = TcpwatchApp(
        lambda: source,
        interval=0.1,
        filter_text="",
        export_dir=str(tmp_path),
        lang="en",
        replay=True,
        start_paused=True,
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await step(pilot, 2)
        assert app.polls == 2 and not app.finished
        assert "(n: next poll)" in plain(app.query_one(HeaderPanel).render())
        await pilot.press("p")
        await until(pilot, lambda: app.finished, "the end of the recording")
        assert app.polls == 5
        assert "END OF RECORDING" in plain(app.query_one(HeaderPanel).render())
        assert app.view.state_counts["CLOSE_WAIT"] >= 3


def test_not_a_terminal_is_a_one_line_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tcpwatch"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "snapshot" in lines[0] and "watch" in lines[0]
    assert result.stdout == ""


async def test_poll_arriving_after_the_drill_down_closed_is_ignored() -> None:
    """A page prepared while the drill-down was open may arrive after escape closed it:
    showing it on the detached screen used to crash the app."""
    app = busy_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await step(pilot, 2)
        await _drill(pilot, app, find(app, lambda c: c.record.state is TcpState.CLOSE_WAIT))
        drill = app.screen
        assert isinstance(drill, DrillScreen)
        page = drill.prepare(app.view, None)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, DrillScreen), "the table")
        app._drill = drill  # the close callback has not run yet when the poll lands
        app.post_message(Polled(app.view, page))
        await step(pilot)
        assert not isinstance(app.screen, DrillScreen)


@pytest.mark.parametrize("width", [80, 100, 120, 140, 170, 250])
def test_layout_fills_the_width_and_the_last_column_takes_the_rest(width: int) -> None:
    columns = layout(width, ViewMode.ALL)
    assert sum(cell for _, cell in columns) + len(columns) - 1 == width
    assert [spec.column for spec, _ in columns][:5] == list(Column)[:5]
    widths = {spec.column: cell for spec, cell in columns}
    if width >= 140:  # room for three tags: "half_closed lingering orphan"
        assert widths[Column.TAGS] >= len("half_closed lingering orphan")
    if width >= 250:
        assert widths[Column.TAGS] > 28


async def test_a_socket_nobody_holds_shows_its_former_owner_dimmed() -> None:
    """nginx's upstream connections end in TIME_WAIT (inode 0): no process holds them, as
    `ss` shows, but the table and the drill-down say whose they were."""
    app = busy_app()
    async with app.run_test(size=(140, 40)) as pilot:
        await step(pilot, 3)
        tw = find(
            app, lambda c: c.record.state is TcpState.TIME_WAIT and c.former_process is not None
        )
        assert tw.process is None and tw.former_process.name == "nginx"
        columns = layout(140, ViewMode.ALL)
        line = row_text(app.view, tw.id, columns, 140)
        assert "(1201 nginx)" in line.plain
        owner = next(s for s in line.spans if "(1201 nginx)" in line.plain[s.start : s.end])
        assert "#8a8a8a" in str(owner.style)
        text = await _drill(pilot, app, tw)
        assert "no process holds this socket" in text and "was held by 1201 nginx" in text


async def test_painted_rows_follow_every_poll_and_the_cursor() -> None:
    """Painted rows are kept until the next poll (repaints in between reuse them): the
    table still paints the current view's rows, and the cursor on the row it is on."""
    app = busy_app()
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.table

        def painted() -> list[str]:
            return [table.render_line(y).text for y in range(1, table.size.height)]

        def expected() -> list[str]:
            width = table.scrollable_content_region.width
            columns = table._layout_for(width)
            top = round(table.scroll_offset.y)
            rows = app.view.rows[top : top + table.size.height - 1]
            return [row_text(app.view, row, columns, width).plain for row in rows]

        def cursor_lines() -> list[int]:
            return [
                y
                for y in range(1, table.size.height)
                if any(
                    s.style and s.style.bgcolor == CURSOR_STYLE.bgcolor
                    for s in table.render_line(y)
                )
            ]

        for polls in range(1, 5):
            await step(pilot)
            assert painted() == expected(), f"after poll {polls}"
            await pilot.press("down")
            assert painted() == expected()
            assert cursor_lines() == [table.cursor - round(table.scroll_offset.y) + 1]
            seq = app.view.seq
            await pilot.press("S" if polls % 2 else "v")  # a new order; a grouped view
            await settle(pilot, app, lambda seq=seq: app.view.seq > seq, "the rebuild")
            assert painted() == expected(), f"after {'S' if polls % 2 else 'v'}"


async def test_the_key_bar_shows_each_screen_s_keys_and_a_click_runs_one() -> None:
    app = busy_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await step(pilot)
        bar = app.screen.query_one(KeyBar)
        text = plain(bar.render())
        for label in ("Quit", "Help", "Filter", "Explain", "Sort", "View", "Pause", "Export"):
            assert label in text
        assert "Reverse sort" not in text  # shown in the help, not on the bar
        (start, _end, _action) = next(s for s in bar._spans if s[2] == "pause")
        await pilot.click(KeyBar, offset=(start + 1, 0))
        await until(pilot, lambda: not app.paused, "resumed by a click")
        (start, _end, _action) = next(s for s in bar._spans if s[2] == "help")
        await pilot.click(KeyBar, offset=(start + 1, 0))
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help by a click")
        await pilot.press("escape")
        await pilot.press("p")
        conn = find(app, lambda c: c.state is TcpState.CLOSE_WAIT)
        await _drill(pilot, app, conn)
        drill_bar = app.screen.query_one(KeyBar)
        assert "Back" in plain(drill_bar.render())
        (start, _end, _action) = drill_bar._spans[0]
        await pilot.click(KeyBar, offset=(start + 1, 0))
        await until(pilot, lambda: not isinstance(app.screen, DrillScreen), "back by a click")


async def test_polls_and_repaints_leave_no_cyclic_garbage() -> None:
    """Textual's painted lines held themselves (see `tcpwatch.tui.strips`): every repaint
    left cyclic garbage, hundreds of objects a poll, for the collector to free in long
    pauses: about 5000 objects in ten polls here. Now the layouts' closures are left (under
    500), and no line."""
    app = busy_app(clients=120)
    with collector_off():
        try:
            async with app.run_test(size=(120, 40)) as pilot:
                await step(pilot, 3)
                gc.collect()
                gc.set_debug(gc.DEBUG_SAVEALL)  # keep what a collection finds, to look at it
                await step(pilot, 10)
                gc.collect()
                garbage = list(gc.garbage)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
    assert not [o for o in garbage if isinstance(o, Strip)]
    assert len(garbage) < 1000, f"{len(garbage)} unreachable objects after 10 polls"


async def test_the_poll_thread_runs_the_collector_on_its_schedule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With automatic collection off, as in the monitor, the poll thread collects: the young
    generations often, everything rarely, trimming the heap after each; both periods shortened
    here, one after the other."""
    runs: list[int] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and threading.current_thread() is not threading.main_thread():
            runs.append(info["generation"])

    trims: list[bool] = []
    monkeypatch.setattr(app_module, "trim_heap", lambda: trims.append(True) or True)
    app = busy_app()
    gc.callbacks.append(seen)
    with collector_off():
        try:
            async with app.run_test(size=(120, 40)) as pilot:
                app.young_collection_seconds = app.full_collection_seconds = 3600.0
                await step(pilot, 3)
                assert runs == [] and trims == []
                app.young_collection_seconds = 0.0  # before every poll
                await step(pilot, 3)
                assert len(runs) >= 3 and set(runs) == {1} and len(trims) == len(runs)
                trims.clear()
                app.full_collection_seconds = 0.0
                runs.clear()
                await step(pilot, 3)
                assert len(runs) >= 3 and set(runs) == {2} and len(trims) == len(runs)
        finally:
            gc.callbacks.remove(seen)


@pytest.mark.parametrize(
    ("young_waited", "full_waited", "since_input", "due"),
    [
        (10.0, 10.0, 60.0, None),  # nothing due
        (30.0, 10.0, 60.0, 1),  # young due, quiet
        (30.0, 10.0, 0.5, None),  # young due, someone typing: it waits
        (59.0, 10.0, 0.5, None),
        (60.0, 10.0, 0.5, 1),  # waited a whole period more: runs anyway
        (30.0, 3600.0, 60.0, 2),  # everything due: the full run (it covers the young)
        (30.0, 3600.0, 0.5, None),
        (30.0, 3600.0, 10.0, 1),  # quiet enough for the young run, not for the full one
        (30.0, 3600.0, 30.0, 2),
        (60.0, 3600.0, 0.5, 1),  # the young one may not wait longer; the full one may
        (60.0, 7200.0, 0.5, 2),
    ],
)
def test_a_due_collection_waits_for_a_quiet_moment(
    young_waited: float, full_waited: float, since_input: float, due: int | None
) -> None:
    now = 10_000.0
    assert (
        app_module.collection_due(
            now,
            young_at=now - young_waited,
            full_at=now - full_waited,
            last_input=now - since_input,
            young_s=30.0,
            full_s=3600.0,
        )
        == due
    )


async def test_keys_clicks_and_scrolls_hold_the_collector_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The poll thread decides with the time of the user's last input."""
    asked: list[float] = []
    decide = app_module.collection_due

    def recorded(now: float, **times: float) -> int | None:
        asked.append(times["last_input"])
        return decide(now, **times)

    async def poll_untouched() -> None:  # a poll that no key asked for
        polls = app.polls
        app.action_step()
        await until(pilot, lambda: app.polls > polls, "a poll")

    monkeypatch.setattr(app_module, "collection_due", recorded)
    app = busy_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await poll_untouched()
        await poll_untouched()
        assert asked[-1] == float("-inf")  # nothing pressed yet
        # As a terminal sends them: through the app (the pilot's mouse skips that path).
        where = dict(widget=None, x=5, y=8, delta_x=0, delta_y=0, shift=False, meta=False)
        for event in (
            lambda: events.Key("down", None),
            lambda: events.MouseDown(button=1, ctrl=False, **where),
            lambda: events.MouseScrollDown(button=0, ctrl=False, **where),
            lambda: events.MouseScrollUp(button=0, ctrl=False, **where),
        ):
            before = time.monotonic()
            app.post_message(event())
            await pilot.pause()
            await poll_untouched()
            assert asked[-1] >= before

"""SVG snapshots of the main screen, a drill-down and the help screen.

Time is frozen: the fake busy host runs on its own clock (10 s a poll where the header's
findings line should show), and everything on screen is measured against the last poll's
time, never the wall clock. Update after an intended
change with `pytest tests/tui/test_snapshots.py --snapshot-update`, and look at the diff.
"""

from __future__ import annotations

from textual.pilot import Pilot

from tcpwatch.tcp.states import TcpState
from tcpwatch.tui.app import TcpwatchApp
from tcpwatch.tui.drill import DrillScreen

from .helpers import busy_app, step, until


async def _four_polls(pilot: Pilot) -> None:
    await step(pilot, 4)


async def _drill_into_leak(pilot: Pilot) -> None:
    await step(pilot, 4)
    app = pilot.app
    assert isinstance(app, TcpwatchApp)
    leak = min(
        (
            c
            for c in app.view.connections.values()
            if c.record.state is TcpState.CLOSE_WAIT and c.gone_at is None
        ),
        key=lambda c: (c.state_since or 0.0, c.id),
    )
    assert app.table.select(leak.id)
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, DrillScreen), "the drill-down")
    await pilot.pause()


def test_main_screen(snap_compare) -> None:
    assert snap_compare(busy_app(step=10.0), terminal_size=(120, 36), run_before=_four_polls)


def test_main_screen_80x24(snap_compare) -> None:
    assert snap_compare(busy_app(step=10.0), terminal_size=(80, 24), run_before=_four_polls)


def test_drill_down_close_wait_leak(snap_compare) -> None:
    assert snap_compare(busy_app(step=10.0), terminal_size=(110, 60), run_before=_drill_into_leak)


def test_help_screen(snap_compare) -> None:
    async def open_help(pilot: Pilot) -> None:
        await step(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(busy_app(), terminal_size=(100, 40), run_before=open_help)

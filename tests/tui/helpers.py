"""Shared helpers for the UI tests: an app over the fake busy host, and waiting on it."""

from __future__ import annotations

import gc
import io
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console, RenderableType
from textual.pilot import Pilot

from tcpwatch.model import Connection
from tcpwatch.tui.app import TcpwatchApp
from tcpwatch.tui.demo import DEMO_EPOCH, BusyHost

DEADLINE = 10.0


def busy_app(
    *,
    filter_text: str = "",
    export_dir: str = ".",
    clients: int = 24,
    interval: float = 1.0,
    start_paused: bool = True,
    step: float = 1.0,
) -> TcpwatchApp:
    """The app over a fresh fake busy host, paused: each `n` is exactly one poll, `step`
    seconds of fake time later."""
    source = BusyHost(clients=clients, step=step)
    return TcpwatchApp(
        lambda: source,
        interval=interval,
        filter_text=filter_text,
        export_dir=export_dir,
        lang="en",
        replay=False,
        clock=lambda: DEMO_EPOCH + 3600,
        start_paused=start_paused,
    )


async def until(pilot: Pilot, condition: Callable[[], bool], what: str) -> None:
    """Let the app run until `condition` holds; fail after a deadline."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.01)


async def step(pilot: Pilot, polls: int = 1) -> None:
    """Poll `polls` times (the app must be paused) and wait until each view is shown."""
    app = pilot.app
    assert isinstance(app, TcpwatchApp)
    for _ in range(polls):
        before = app.polls
        await pilot.press("n")
        await until(pilot, lambda before=before: app.polls > before, "a poll")
    await pilot.pause()


async def settle(pilot: Pilot, app: TcpwatchApp, check: Callable[[], bool], what: str) -> None:
    """Wait for a rebuilt view (after a key changed filter, sort or view) that passes `check`."""
    await until(pilot, check, what)
    await pilot.pause()


def find(app: TcpwatchApp, predicate: Callable[[Connection], bool]) -> Connection:
    for conn in app.view.connections.values():
        if conn.gone_at is None and predicate(conn):
            return conn
    raise AssertionError("no such connection in the view")


def plain(renderable: RenderableType, width: int = 120) -> str:
    """What a renderable shows on a terminal, as plain text."""
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


@contextmanager
def collector_off() -> Iterator[None]:
    """Automatic cyclic collection off meanwhile, as in the monitor; restored after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()

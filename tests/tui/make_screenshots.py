"""Regenerate screenshots/: SVGs straight from the app, PNGs converted from them.

Run from the repository root: `python -m tests.tui.make_screenshots [OUTDIR]`.
The app runs headless over the fake busy host (`tcpwatch.tui.demo.BusyHost`) with the real
Tracker, so the pictures are the same on every run. PNGs need `rsvg-convert` (Debian:
`apt-get install librsvg2-bin fonts-firacode`; Fira Code is the font the SVGs ask for).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from textual.pilot import Pilot

from tcpwatch.model import Connection
from tcpwatch.tcp.states import TcpState
from tcpwatch.tui.app import TcpwatchApp
from tcpwatch.tui.demo import DEMO_EPOCH, BusyHost
from tcpwatch.tui.drill import DrillScreen
from tcpwatch.tui.view import Column

OUT = Path(__file__).resolve().parents[2] / "screenshots"
Scene = Callable[[Pilot, TcpwatchApp], Awaitable[None]]


async def _until(pilot: Pilot, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("screenshot scene timed out")
        await pilot.pause(0.01)


async def _polls(pilot: Pilot, app: TcpwatchApp, count: int) -> None:
    for _ in range(count):
        before = app.polls
        await pilot.press("n")
        await _until(pilot, lambda before=before: app.polls > before)
    await pilot.pause()


def _oldest(app: TcpwatchApp, state: TcpState) -> Connection:
    return min(
        (c for c in app.view.connections.values() if c.state is state),
        key=lambda c: (c.state_since or 0.0, c.id),
    )


async def _drill(pilot: Pilot, app: TcpwatchApp, conn: Connection) -> None:
    app.table.select(conn.id)
    await pilot.press("enter")
    await _until(pilot, lambda: isinstance(app.screen, DrillScreen))
    await pilot.pause()


async def main_view(pilot: Pilot, app: TcpwatchApp) -> None:
    """Sorted by tags: the connections worth a look come first."""
    await _polls(pilot, app, 40)
    while app.view.settings.sort is not Column.TAGS:
        sort = app.view.settings.sort
        await pilot.press("s")
        await _until(pilot, lambda sort=sort: app.view.settings.sort is not sort)
    await pilot.press("home")
    await pilot.pause()


async def by_listener(pilot: Pilot, app: TcpwatchApp) -> None:
    await _polls(pilot, app, 40)
    await pilot.press("v")
    await _until(pilot, lambda: app.view.settings.mode.name == "LISTENER")
    await pilot.pause()


async def close_wait_leak(pilot: Pilot, app: TcpwatchApp) -> None:
    await _polls(pilot, app, 40)
    await _drill(pilot, app, _oldest(app, TcpState.CLOSE_WAIT))


async def time_wait(pilot: Pilot, app: TcpwatchApp) -> None:
    await _polls(pilot, app, 40)
    recent = max(
        (c for c in app.view.connections.values() if c.state is TcpState.TIME_WAIT),
        key=lambda c: (c.state_since or 0.0, c.id),
    )
    await _drill(pilot, app, recent)


SCENES: tuple[tuple[str, Scene, tuple[int, int], int], ...] = (
    ("main-busy-host", main_view, (140, 42), 160),
    ("grouped-by-listener", by_listener, (140, 42), 12),
    ("drill-close-wait-leak", close_wait_leak, (120, 112), 24),
    ("drill-time-wait", time_wait, (120, 90), 24),
)


async def shoot(name: str, scene: Scene, size: tuple[int, int], clients: int, out: Path) -> Path:
    source = BusyHost(clients=clients)
    app = TcpwatchApp(
        lambda: source,
        interval=1.0,
        filter_text="",
        export_dir=".",
        lang="en",
        replay=False,
        clock=lambda: DEMO_EPOCH,
        start_paused=True,
    )
    async with app.run_test(size=size) as pilot:
        await scene(pilot, app)
        app.save_screenshot(f"{name}.svg", str(out))
    return out / f"{name}.svg"


def to_png(svg: Path) -> Path:
    """rsvg-convert drops leading spaces of text unless told to keep them."""
    png = svg.with_suffix(".png")
    with tempfile.NamedTemporaryFile("w", suffix=".svg", encoding="utf-8") as fixed:
        fixed.write(
            svg.read_text(encoding="utf-8").replace("<svg ", '<svg xml:space="preserve" ', 1)
        )
        fixed.flush()
        subprocess.run(["rsvg-convert", fixed.name, "-o", str(png)], check=True)
    return png


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else OUT
    out.mkdir(parents=True, exist_ok=True)
    if shutil.which("rsvg-convert") is None:
        print(
            "make_screenshots: rsvg-convert not found (apt-get install librsvg2-bin)",
            file=sys.stderr,
        )
        return 1
    for name, scene, size, clients in SCENES:
        svg = asyncio.run(shoot(name, scene, size, clients, out))
        print(svg, to_png(svg))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

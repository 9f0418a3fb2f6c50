"""The monitor over the real kernel: sockets in every state in a private namespace."""

from __future__ import annotations

from collections import Counter

from tcpwatch.sources.poller import open_poller
from tcpwatch.tcp.states import TcpState
from tcpwatch.tui.app import TcpwatchApp
from tcpwatch.tui.drill import DrillScreen
from tcpwatch.tui.page import PageView
from tests.netns import (
    ZOO_SCENARIO,
    add_silent_route,
    private_netns,
    requires_root,
    run_scenario,
    ss,
    wait_for_zoo,
)

from .helpers import find, step, until


@requires_root
async def test_table_and_drill_down_match_the_kernel() -> None:
    with private_netns() as ns:
        add_silent_route(ns)
        with run_scenario(ns, ZOO_SCENARIO) as scenario:
            scenario.expect("ready")
            wait_for_zoo(ns)
            poller = open_poller(netns=ns)
            app = TcpwatchApp(
                lambda: poller,
                interval=1.0,
                filter_text="",
                export_dir=".",
                lang="en",
                replay=False,
                start_paused=True,
            )
            async with app.run_test(size=(120, 40)) as pilot:
                await step(pilot)
                expected = Counter(row.state for row in ss(ns))
                shown = Counter(
                    app.view.connections[r].state.value
                    for r in app.view.rows
                    if app.view.connections[r].gone_at is None
                )
                assert shown == expected
                listener = find(
                    app,
                    lambda c: c.record.state is TcpState.LISTEN and c.record.local.port == 7002,
                )
                app.table.select(listener.id)
                await pilot.press("enter")
                await until(pilot, lambda: isinstance(app.screen, DrillScreen), "drill-down")
                await pilot.pause()
                text = app.screen.query_one(PageView).text
                assert "127.0.0.1" in text and "Accepted connections" in text
                await pilot.press("escape")
                close_wait = find(app, lambda c: c.record.state is TcpState.CLOSE_WAIT)
                await until(pilot, lambda: not isinstance(app.screen, DrillScreen), "back")
                app.table.select(close_wait.id)
                await pilot.press("enter")
                await until(pilot, lambda: isinstance(app.screen, DrillScreen), "drill-down")
                await pilot.pause()
                text = app.screen.query_one(PageView).text
                assert "Both ends are on this host" in text and "FIN_WAIT2" in text
            scenario.send("done")

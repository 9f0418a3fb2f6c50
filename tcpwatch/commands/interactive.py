"""`tcpwatch` (no subcommand) and `tcpwatch replay FILE`: the interactive monitor.

Everything that can fail with a plain message (no terminal, a bad filter, a source that
cannot open, an unreadable recording) fails here, before Textual is even imported.
A replay shows one recorded poll per interval (1 s; `+` and `-` change it); `p` pauses
and `n` then steps one poll at a time.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys

from tcpwatch.cli import filter_text
from tcpwatch.errors import TcpwatchError, UsageError
from tcpwatch.filters import parse_filter

GIL_SWITCH_SECONDS = 0.001


def run(options: argparse.Namespace, *, replay: bool) -> int:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError(
            "the interactive monitor needs a terminal; in pipes and scripts use "
            "`tcpwatch snapshot` (one poll) or `tcpwatch watch` (a stream of events)"
        )
    text = filter_text(options)
    parse_filter(text)  # a bad term is a usage error, reported before the screen opens
    export_dir = options.export_dir
    if not os.path.isdir(export_dir):
        raise UsageError(f"--export-dir {export_dir}: not a directory")
    if replay:
        from tcpwatch.recording import ReplaySource

        source = ReplaySource(options.file)
        host = None
    else:
        from tcpwatch.sources.poller import open_poller
        from tcpwatch.sources.sysctl import read_host_settings

        source = open_poller(source=options.source, netns=options.netns)
        host = read_host_settings(options.netns)

    from tcpwatch.heap import map_large_tables
    from tcpwatch.tcp.explain import pick_language
    from tcpwatch.tui.app import TcpwatchApp

    app = TcpwatchApp(
        lambda: source,
        interval=getattr(options, "interval", 1.0),
        filter_text=text,
        export_dir=export_dir,
        lang=options.lang or pick_language(os.environ),
        replay=replay,
        host_settings=host,
    )
    # The poll thread is CPU-bound Python; at the default 5 ms switch interval every hand-over
    # of the GIL to the UI thread waits up to 5 ms, and answering a key takes dozens of them.
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    # Automatic collection runs when allocations outnumber deallocations by a threshold; each
    # poll replaces old records by new ones one for one, so it came rarely and then had to
    # look at every object made since: 75-290 ms holding the GIL at 50k sockets, and a key
    # pressed meanwhile waited as long. The records hold no cycles (reference counting frees
    # them) and Textual's painted lines no longer do (`tcpwatch.tui.strips`), so the poll
    # thread runs the collector on a schedule instead (see `YOUNG_COLLECTION_SECONDS`).
    gc.disable()
    map_large_tables()
    app.run()
    if app.failure is not None:
        raise TcpwatchError(app.failure)
    return 0

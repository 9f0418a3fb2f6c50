"""`tcpwatch record FILE`: write polls to a recording for `watch --replay` and `replay`.

Polls follow the same schedule as `watch` (`--interval`, `--count`, `--duration`, Ctrl-C
stops cleanly). With a filter, each poll keeps only the sockets whose connection matches
it at that poll (tags and owners included), so a socket that stops matching disappears
from the recording as if gone. Every poll is on disk before the next one starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from tcpwatch.cli import filter_text
from tcpwatch.commands.watch import Stopper, open_source, schedule
from tcpwatch.filters import parse_filter
from tcpwatch.recording import RecordingWriter
from tcpwatch.textsafe import printable
from tcpwatch.tracker import Tracker


def run(options: argparse.Namespace) -> int:
    flt = parse_filter(filter_text(options))
    source = open_source(options)
    stopper = Stopper()
    tracker = Tracker() if flt.text else None
    notes: set[str] = set()
    polls = 0
    try:
        writer = RecordingWriter(options.file)
        try:
            for snapshot in schedule(
                source.poll,
                interval=options.interval,
                count=options.count,
                duration=options.duration,
                stopper=stopper,
            ):
                for note in (snapshot.notice, snapshot.owners_note):
                    if note and note not in notes:
                        notes.add(note)
                        print(f"tcpwatch: {printable(note)}", file=sys.stderr, flush=True)
                if tracker is not None:
                    tracker.update(snapshot)
                    kept = tuple(record for conn, record in tracker.live() if flt.matches(conn))
                    snapshot = dataclasses.replace(snapshot, sockets=kept)
                writer.write(snapshot)
                polls += 1
        finally:
            writer.close()
    finally:
        stopper.restore()
        source.close()
    print(f"tcpwatch: recorded {polls} polls to {printable(options.file)}", file=sys.stderr)
    return 0

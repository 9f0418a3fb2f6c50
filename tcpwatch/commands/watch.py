"""`tcpwatch watch`: poll repeatedly and print one line per event.

Polls run on a fixed schedule (start + n * interval, so they do not drift); a poll that
overruns its slot skips the slots it missed instead of polling twice in a row. `--replay
FILE` reads the polls of a recording instead of the kernel, as fast as they can be
processed (the recorded times are kept in the events, and `--duration` counts recorded
time), so a recording of an hour replays in seconds. Ctrl-C stops cleanly (exit 0) after
the line being written. With the netlink source, the kernel's destroy notifications
(best effort) report connections that live and end between two polls.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Protocol, TextIO

from tcpwatch.cli import filter_text
from tcpwatch.filters import Filter, parse_filter
from tcpwatch.heap import map_large_tables, trim_heap
from tcpwatch.model import Event, Snapshot, SourceKind
from tcpwatch.outputs.events import event_json, human_line
from tcpwatch.sources.base import SourceError
from tcpwatch.textsafe import printable
from tcpwatch.tracker import Tracker

if TYPE_CHECKING:
    from tcpwatch.sources.destroy import DestroyListener

# Automatic garbage collection would walk every poll's 50k fresh records, and now and
# then every tracked connection, in the middle of a poll. Records and connections hold no
# reference cycles (reference counting frees them), so while polling the collector is off
# and a full collection runs between polls on this schedule instead, followed by giving
# the allocator's free memory back (see `tcpwatch.heap`).
_FULL_GC_EVERY_S = 60.0


class _Interrupted(Exception):
    """Ctrl-C arrived while waiting for the next poll."""


class Stopper:
    """Turns SIGINT into a flag; while waiting between polls it also ends the wait."""

    def __init__(self) -> None:
        self.stopped = False
        self._waiting = False
        self._previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, _signum: int, _frame: FrameType | None) -> None:
        self.stopped = True
        if self._waiting:
            raise _Interrupted

    def sleep(self, seconds: float) -> None:
        if self.stopped or seconds <= 0:
            return
        self._waiting = True
        try:
            time.sleep(seconds)
        except _Interrupted:
            pass
        finally:
            self._waiting = False

    def restore(self) -> None:
        signal.signal(signal.SIGINT, self._previous)


def schedule(
    poll: Callable[[], Snapshot | None],
    *,
    interval: float,
    count: int | None,
    duration: float | None,
    stopper: Stopper,
    paced: bool = True,
) -> Iterator[Snapshot]:
    """Yield polls at start + n * interval until `count` polls, `duration` seconds, the
    source's end (None) or Ctrl-C. Unpaced (a replay): back to back, `duration` measured
    in recorded time."""
    start = time.monotonic()
    first_recorded: float | None = None
    last_gc = start
    done = 0
    map_large_tables()
    gc.disable()
    try:
        while not stopper.stopped:
            snapshot = poll()
            if snapshot is None:
                return
            if first_recorded is None:
                first_recorded = snapshot.monotonic
            if (
                not paced
                and duration is not None
                and snapshot.monotonic - first_recorded > duration
            ):
                return
            yield snapshot
            done += 1
            if count is not None and done >= count:
                return
            now = time.monotonic()
            if now - last_gc >= _FULL_GC_EVERY_S:
                gc.collect()
                trim_heap()
                last_gc = now
            if not paced:
                continue
            slot = max(done, math.floor((now - start) / interval) + 1)
            due = start + slot * interval
            if duration is not None and due - start > duration + 1e-6:
                return
            stopper.sleep(due - time.monotonic())
    finally:
        gc.enable()


def _matches(flt: Filter, event: Event) -> bool:
    """An event is shown when its connection matches before or after the change."""
    conn = event.connection
    if flt.matches(conn):
        return True
    if event.from_state is None:
        return False
    record = dataclasses.replace(conn.record, state=event.from_state)
    return flt.matches(dataclasses.replace(conn, record=record, gone_at=None))


def _write(out: TextIO, text: str) -> None:
    out.write(text)
    out.flush()


class PollSource(Protocol):
    """What the command polls: a live Poller or a ReplaySource."""

    def poll(self) -> Snapshot | None: ...

    def close(self) -> None: ...


def open_source(options: argparse.Namespace) -> PollSource:
    """The kernel through a Poller, or a recording with --replay."""
    if getattr(options, "replay", None):
        from tcpwatch.recording import ReplaySource

        return ReplaySource(options.replay)
    from tcpwatch.sources.poller import open_poller

    return open_poller(options.source, options.netns)


def _open_destroy(netns: str | None) -> DestroyListener | None:
    """Destroy notifications catch connections that end between polls; best effort."""
    from tcpwatch.sources.destroy import DestroyListener

    try:
        return DestroyListener(netns)
    except SourceError:
        return None


def run(options: argparse.Namespace) -> int:
    flt = parse_filter(filter_text(options))
    out = sys.stdout
    color = (
        not options.ndjson
        and out.isatty()
        and "NO_COLOR" not in os.environ
        and os.environ.get("TERM") != "dumb"
    )
    source = open_source(options)
    destroy: DestroyListener | None = None
    destroy_tried = False
    stopper = Stopper()
    notes: set[str] = set()
    tracker = Tracker()
    try:
        for snapshot in schedule(
            source.poll,
            interval=options.interval,
            count=options.count,
            duration=options.duration,
            stopper=stopper,
            paced=not options.replay,
        ):
            for note in (snapshot.notice, snapshot.owners_note):
                if note and note not in notes:
                    notes.add(note)
                    print(f"tcpwatch: {printable(note)}", file=sys.stderr, flush=True)
            if destroy is not None:
                try:
                    tracker.note_destroyed(destroy.drain())
                except SourceError:
                    destroy.close()  # best effort: polling alone still works
                    destroy = None
            elif not destroy_tried and snapshot.source is SourceKind.NETLINK:
                # From the first poll on: what ends before the next poll is reported.
                destroy_tried = True
                destroy = _open_destroy(options.netns)
            delta = tracker.update(snapshot)
            for event in delta.events:
                if _matches(flt, event):
                    if options.ndjson:
                        _write(out, json.dumps(event_json(event)) + "\n")
                    else:
                        _write(out, human_line(event, color=color) + "\n")
    except BrokenPipeError:
        # The reader (e.g. `head`) has gone; keep the interpreter from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        stopper.restore()
        if destroy is not None:
            destroy.close()
        source.close()
    return 0

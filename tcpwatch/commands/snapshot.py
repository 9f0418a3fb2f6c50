"""`tcpwatch snapshot`: one poll, filtered, as a table or the JSON document."""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from typing import TYPE_CHECKING

from tcpwatch.cli import filter_text
from tcpwatch.errors import TcpwatchError
from tcpwatch.outputs.jsondoc import (
    first_view_json_text,
    snapshot_document,
    snapshot_json_text,
    write_first_view_json,
)
from tcpwatch.sources.poller import open_poller
from tcpwatch.tracker import first_view

if TYPE_CHECKING:
    from tcpwatch.filters import Filter
    from tcpwatch.model import Snapshot


def run(options: argparse.Namespace) -> int:
    # The filter language, the table and the text escaping load only when used: a
    # one-shot `snapshot --json` is over in well under a second, imports included.
    flt = None
    terms = filter_text(options)
    if terms:
        from tcpwatch.filters import parse_filter

        flt = parse_filter(terms)
    # One short run that builds ~10 objects per socket and frees nothing until it exits:
    # the cyclic collector would only rescan them (a third of the time at 50k sockets).
    gc.disable()
    try:
        poller = open_poller(options.source, options.netns, once=True)
        try:
            snapshot = poller.poll()
        finally:
            poller.close()
    except OSError as error:
        raise TcpwatchError(f"cannot read the sockets: {error.strerror or error}") from error
    for note in (snapshot.notice, snapshot.owners_note):
        if note:
            from tcpwatch.textsafe import printable

            print(f"tcpwatch: {printable(note)}", file=sys.stderr)
    fd = _direct_json_fd(flt, options.json)
    try:
        if fd is not None:
            sys.stdout.flush()
            write_first_view_json(snapshot, fd)
        else:
            for part in _output(snapshot, flt, options.json):
                sys.stdout.write(part)
            sys.stdout.flush()
    except BrokenPipeError:
        # The reader (e.g. `head`) has gone; keep the interpreter from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError as error:
        raise TcpwatchError(f"cannot write the output: {error.strerror or error}") from error
    return 0


def _direct_json_fd(flt: Filter | None, as_json: bool) -> int | None:
    """The file descriptor to write the whole unfiltered JSON document to, for programs
    (not a terminal): straight from the records, without Connection objects, in the
    kernel's order (as `ss` prints it; a program does not read the order)."""
    if not as_json or (flt is not None and flt.text) or sys.stdout.isatty():
        return None
    try:
        return sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by a stream without one
        return None


def _output(snapshot: Snapshot, flt: Filter | None, as_json: bool) -> tuple[str, ...]:
    """The table, or the JSON document: indented for a person at a terminal, one compact
    line written directly for programs (several times faster). In parts, so that a
    document of tens of MB is not copied once more to end it with a newline.

    Nothing here shows a history: the connections as a first tracker update sees them,
    without inferring how each began.
    """
    text = flt.text if flt is not None else ""
    if as_json and not text and not sys.stdout.isatty():
        return first_view_json_text(snapshot), "\n"  # no Connection objects at all
    connections = list(first_view(snapshot).values())
    if flt is not None and text:
        connections = [conn for conn in connections if flt.matches(conn)]
    if not as_json:
        from tcpwatch.outputs.table import render_table

        return (render_table(connections, owners_incomplete=snapshot.owners_note is not None),)
    if sys.stdout.isatty():
        from tcpwatch.outputs.table import sort_key

        connections.sort(key=sort_key)
        document = snapshot_document(snapshot, connections, text, with_history=False)
        return json.dumps(document, indent=2), "\n"
    return snapshot_json_text(snapshot, connections, text, with_history=False), "\n"

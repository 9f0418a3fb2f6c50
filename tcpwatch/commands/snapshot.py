"""`tcpwatch snapshot`: one poll, filtered, as a table or the JSON document."""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys

from tcpwatch.cli import filter_text
from tcpwatch.errors import TcpwatchError
from tcpwatch.filters import parse_filter
from tcpwatch.outputs.jsondoc import snapshot_document, snapshot_json_text
from tcpwatch.outputs.table import render_table, sort_key
from tcpwatch.sources.poller import open_poller
from tcpwatch.textsafe import printable
from tcpwatch.tracker import first_view


def run(options: argparse.Namespace) -> int:
    flt = parse_filter(filter_text(options))
    # One short run that builds ~10 objects per socket and frees nothing until it exits:
    # the cyclic collector would only rescan them (a third of the time at 50k sockets).
    gc.disable()
    try:
        poller = open_poller(options.source, options.netns, prefetch_owners=True)
        try:
            snapshot = poller.poll()
        finally:
            poller.close()
    except OSError as error:
        raise TcpwatchError(f"cannot read the sockets: {error.strerror or error}") from error
    # Nothing here shows a history: the connections as a first tracker update sees them,
    # without inferring how each began.
    connections = list(first_view(snapshot).values())
    if flt.text:
        connections = [conn for conn in connections if flt.matches(conn)]
    connections.sort(key=sort_key)
    for note in (snapshot.notice, snapshot.owners_note):
        if note:
            print(f"tcpwatch: {printable(note)}", file=sys.stderr)
    if options.json:
        if sys.stdout.isatty():
            document = snapshot_document(snapshot, connections, flt.text, with_history=False)
            text = json.dumps(document, indent=2) + "\n"
        else:  # for programs: one compact line, written directly (several times faster)
            text = snapshot_json_text(snapshot, connections, flt.text, with_history=False) + "\n"
    else:
        text = render_table(connections, owners_incomplete=snapshot.owners_note is not None)
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader (e.g. `head`) has gone; keep the interpreter from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError as error:
        raise TcpwatchError(f"cannot write the output: {error.strerror or error}") from error
    return 0

"""The event stream: `tcpwatch.event/1` JSON objects and human-readable event lines.

Field names are a public contract (DESIGN.md): add fields freely, never rename one
without bumping the schema version. Besides `new`, `transition` and `gone`, a connection
that lived and ended between two polls (known only from the kernel's destroy
notification) gets a single `gone` event whose `from` is null and whose `path` is its
whole, inferred, life: the concatenation rule holds for it too.
"""

from __future__ import annotations

import time
from typing import Any

from tcpwatch.model import Event
from tcpwatch.outputs.jsondoc import endpoint_json, iso, process_json
from tcpwatch.outputs.table import endpoint_text
from tcpwatch.tcp.states import TcpState
from tcpwatch.textsafe import printable

SCHEMA = "tcpwatch.event/1"

S = TcpState
# Colour by state family: opening, open, closing, waiting out, ended.
_GREEN, _PLAIN, _YELLOW, _BLUE, _RED = "32", "", "33", "34", "31"
_COLOUR: dict[TcpState, str] = {
    S.SYN_SENT: _GREEN,
    S.SYN_RECV: _GREEN,
    S.LISTEN: _GREEN,
    S.ESTABLISHED: _PLAIN,
    S.FIN_WAIT1: _YELLOW,
    S.FIN_WAIT2: _YELLOW,
    S.CLOSE_WAIT: _YELLOW,
    S.LAST_ACK: _YELLOW,
    S.CLOSING: _YELLOW,
    S.TIME_WAIT: _BLUE,
    S.CLOSE: _RED,
    S.CLOSED: _RED,
}


def event_json(event: Event) -> dict[str, Any]:
    """One event as the `tcpwatch.event/1` contract spells it."""
    record = event.connection.record
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "at": iso(event.at),
        "kind": event.kind.value,
        "id": event.connection.id,
        "family": record.family.value,
        "local": endpoint_json(record.local),
        "remote": endpoint_json(record.remote),
        "from": None if event.from_state is None else event.from_state.value,
        "to": event.to_state.value,
        "path": [state.value for state in event.path],
        "inferred": event.inferred,
        "process": process_json(event.connection.process),
    }
    former = event.connection.former_process
    if former is not None:  # the last owner of a socket nobody holds now (TIME_WAIT)
        document["former_process"] = process_json(former)
    document["reason"] = event.reason
    return document


def path_text(event: Event, *, color: bool) -> str:
    """`SYN_SENT > ESTABLISHED` with states nobody saw in parentheses: `(SYN_SENT)`.

    Observed: the event's `from` (seen at the previous poll), its `to`, and CLOSED (the
    socket's absence was seen); every state in between was inferred.
    """
    last = len(event.path) - 1
    parts = []
    for index, state in enumerate(event.path):
        text = state.value
        observed = index == last or (index == 0 and event.from_state is not None)
        if not observed:
            text = f"({text})"
        if color and _COLOUR[state]:
            text = f"\x1b[{_COLOUR[state]}m{text}\x1b[0m"
        parts.append(text)
    return " > ".join(parts)


def human_line(event: Event, *, color: bool) -> str:
    """One event for a person: time, connection, path (inferred states in parentheses),
    process, reason. Text from the system goes through `printable`."""
    conn = event.connection
    record = conn.record
    clock = time.strftime("%H:%M:%S", time.localtime(event.at))
    millis = int(event.at * 1000) % 1000
    local = endpoint_text(record.local, record.family)
    remote = endpoint_text(record.remote, record.family)
    if conn.process is not None:
        process = f"{printable(conn.process.name)}/{conn.process.pid}"
    elif conn.former_process is not None:  # nobody holds it now; whose it was
        process = f"({printable(conn.former_process.name)}/{conn.former_process.pid})"
    else:
        process = "-"
    return (
        f"{clock}.{millis:03d} {event.kind.value:<10} {local} -> {remote} "
        f"{path_text(event, color=color)}  [{process}] {event.reason}"
    )

"""`e` in the UI: the filtered view, with histories, as a snapshot document on disk."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from tcpwatch.errors import TcpwatchError
from tcpwatch.outputs.jsondoc import snapshot_document, write_json_atomic
from tcpwatch.tui.view import TableView, ViewSettings


def effective_filter(settings: ViewSettings) -> str:
    """The filter-language text that selects what the view shows (quick toggles included)."""
    terms = [settings.filter.text] if settings.filter.text else []
    if settings.only:
        terms.append("tag:" + ",".join(sorted(tag.value for tag in settings.only)))
    return " ".join(terms)


def export_path(directory: str, when: float) -> str:
    """`tcpwatch-YYYYmmdd-HHMMSS.json` in `directory`; a suffix if that second is taken."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    path = os.path.join(directory, f"tcpwatch-{stamp}.json")
    n = 1
    while os.path.exists(path):
        n += 1
        path = os.path.join(directory, f"tcpwatch-{stamp}-{n}.json")
    return path


def export_view(view: TableView, directory: str, clock: Callable[[], float] = time.time) -> str:
    """Write the view's live connections atomically; return the path.

    TcpwatchError (one line) when there is nothing to export or the file cannot be written.
    """
    if view.snapshot is None:
        raise TcpwatchError("nothing to export yet: no poll has completed")
    if not os.path.isdir(directory):
        raise TcpwatchError(f"cannot export: {directory} is not a directory")
    document = snapshot_document(
        view.snapshot,
        view.shown_connections(),
        effective_filter(view.settings),
        with_history=True,
    )
    path = export_path(directory, clock())
    write_json_atomic(path, document)
    return path

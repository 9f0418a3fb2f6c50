"""The tracker: consecutive snapshots become connections with a history, and events.

`first_view` (one snapshot, no history) is importable without the tracker's path
inference, which a one-shot `snapshot` does not run: the rest loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tcpwatch.tracker.view import first_view

if TYPE_CHECKING:
    from tcpwatch.tracker.tracker import Tracker, TrackerSettings

__all__ = ["Tracker", "TrackerSettings", "first_view"]


def __getattr__(name: str) -> Any:
    if name in ("Tracker", "TrackerSettings"):
        from tcpwatch.tracker import tracker

        return getattr(tracker, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

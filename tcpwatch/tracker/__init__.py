"""The tracker: consecutive snapshots become connections with a history, and events."""

from __future__ import annotations

from tcpwatch.tracker.tracker import Tracker, TrackerSettings

__all__ = ["Tracker", "TrackerSettings"]

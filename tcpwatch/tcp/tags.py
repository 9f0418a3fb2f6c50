"""Highlight tags. Classification rules live beside them as pure functions."""

from __future__ import annotations

import enum


class Tag(enum.Enum):
    """What makes a connection worth a look. Values are the JSON contract's names."""

    LISTENER = "listener"
    HALF_OPEN = "half_open"
    HALF_CLOSED = "half_closed"
    LINGERING = "lingering"
    ORPHAN = "orphan"

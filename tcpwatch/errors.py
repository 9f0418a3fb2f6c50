"""The two kinds of failure the CLI reports: bad usage (exit 2) and runtime failure (exit 1)."""

from __future__ import annotations


class UsageError(Exception):
    """Bad usage or a bad filter: one line for stderr naming the offending term; exit 2."""


class TcpwatchError(Exception):
    """A runtime failure with a clear one-line message for the user; exit 1."""

"""The table's model over a churning host: following the tracker's own list of changes
gives the same view as comparing every connection, and as sorting from scratch."""

from __future__ import annotations

import dataclasses

from tcpwatch.tracker import Tracker, TrackerSettings
from tcpwatch.tui.demo import BusyHost
from tcpwatch.tui.view import Column, ViewMode, ViewModel, ViewSettings


def test_following_the_tracker_s_changes_equals_comparing_every_connection() -> None:
    source = BusyHost(clients=200, churn=0.2)
    tracker = Tracker(TrackerSettings(retention_s=3.0))  # gone ones are dropped soon
    for settings in (
        ViewSettings(),
        ViewSettings(mode=ViewMode.LISTENER),
        ViewSettings(mode=ViewMode.PROCESS, descending=True),
        ViewSettings(sort=Column.RECV_Q, descending=True),
        ViewSettings(sort=Column.REMOTE),
    ):
        following, comparing = ViewModel(settings), ViewModel(settings)
        replaced = dropped = 0
        for _ in range(25):
            delta = tracker.update(source.poll())
            replaced += len(delta.replaced)
            dropped += len(delta.dropped)
            a = following.apply(delta)
            b = comparing.apply(dataclasses.replace(delta, poll=0))  # never consecutive
            assert a.rows == b.rows
            assert (a.state_counts, a.tag_counts, a.live) == (b.state_counts, b.tag_counts, b.live)
            assert a.flash == b.flash and a.groups == b.groups
            # Kept in order poll after poll, the rows are those a model sorting from scratch
            # shows (the default order does not depend on when a row was first seen).
            assert a.rows == ViewModel(settings).apply(delta).rows
        assert replaced and dropped  # both lists were exercised


def test_reversing_and_reversing_back_keeps_following_the_changes() -> None:
    source = BusyHost(clients=200, churn=0.2)
    tracker = Tracker(TrackerSettings(retention_s=3.0))
    ascending = ViewSettings(sort=Column.LOCAL)
    descending = dataclasses.replace(ascending, descending=True)
    model = ViewModel(ascending)
    for poll in range(12):
        delta = tracker.update(source.poll())
        settings = descending if poll % 3 == 1 else ascending
        model.configure(settings)
        rows = model.apply(delta).rows
        assert rows == ViewModel(settings).apply(delta).rows
        in_order = ViewModel(ascending).apply(delta).rows
        assert rows == (in_order[::-1] if settings.descending else in_order)


def test_a_view_handed_out_does_not_change_with_later_polls() -> None:
    source = BusyHost(clients=200, churn=0.2)
    tracker, model = Tracker(), ViewModel()
    first = model.apply(tracker.update(source.poll()))
    kept = (first.rows, dict(first.seen), dict(first.flash), dict(first.state_counts))
    for _ in range(5):
        later = model.apply(tracker.update(source.poll()))
    assert dict(later.seen) != kept[1]  # the polls did change what a view shows
    assert (first.rows, dict(first.seen), dict(first.flash), dict(first.state_counts)) == kept

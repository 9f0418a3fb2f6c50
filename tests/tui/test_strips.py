"""Painted lines answer their identity cases without holding themselves."""

from __future__ import annotations

import gc

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from tcpwatch.tui import strips

from .helpers import collector_off


def _line() -> Strip:
    return Strip([Segment("LISTEN ", Style(bold=True)), Segment("0.0.0.0:22")])


def test_a_line_cut_or_cropped_to_itself_is_itself_and_not_a_cycle() -> None:
    strips.install()
    with collector_off():
        gc.collect()
        for _ in range(100):
            line = _line()
            assert line.divide([line.cell_length]) == [line]
            assert line.divide([line.cell_length, line.cell_length + 5]) == [line]
            assert line.crop_extend(0, line.cell_length, None) is line
        del line
        assert gc.collect() == 0


def test_other_cuts_and_crops_are_as_textual_makes_them() -> None:
    strips.install()
    line = _line()
    pieces = line.divide([3, 7, line.cell_length])
    assert [piece.text for piece in pieces] == ["LIS", "TEN ", "0.0.0.0:22"]
    assert [piece.cell_length for piece in pieces] == [3, 4, 10]
    extended = line.crop_extend(2, 20, Style(italic=True))
    assert extended.text == "STEN 0.0.0.0:22" + " " * 3
    assert extended.cell_length == 18
    assert line.crop_extend(2, 20, Style(italic=True)) is extended  # still cached

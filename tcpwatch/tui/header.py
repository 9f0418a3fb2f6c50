"""The header: where we are looking, how, and how many of what, with recent history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.text import Text
from textual.widget import Widget

from tcpwatch.tcp.explain import Severity
from tcpwatch.tcp.states import LIFECYCLE_ORDER, TcpState
from tcpwatch.tcp.tags import Tag
from tcpwatch.textsafe import printable
from tcpwatch.tui.table import STATE_STYLE, TAG_STYLE
from tcpwatch.tui.view import EMPTY_VIEW, TableView

BLOCKS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 8
FINDINGS_SHOWN = 3  # on the findings line; `f` steps through all of them
FINDING_STYLE = {
    Severity.PROBLEM: "bold #ff5f5f",
    Severity.WARNING: "bold #d7af00",
    Severity.INFO: "#87afd7",
}


def sparkline(values: Sequence[int], width: int = SPARK_WIDTH) -> str:
    """`values` (oldest first) squeezed into `width` block characters, each the max of its
    share, scaled between the min and max: the shape of the last minutes at a glance."""
    if not values:
        return ""
    if len(values) > width:
        size = len(values) / width
        tail = [max(values[int(i * size) : int((i + 1) * size)]) for i in range(width)]
    else:
        tail = list(values)
    low, high = min(tail), max(tail)
    if high == low:
        return BLOCKS[0 if high == 0 else 3] * len(tail)
    span = high - low
    return "".join(BLOCKS[(v - low) * (len(BLOCKS) - 1) // span] for v in tail)


def compact(n: int) -> str:
    if n < 10_000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k" if n < 100_000 else f"{n // 1000}k"
    return f"{n / 1_000_000:.1f}M"


@dataclass(frozen=True, slots=True)
class Status:
    """What the header shows besides the counts; set by the app."""

    interval: float
    paused: bool
    replay: bool
    finished: bool = False  # a replay reached the end of its recording


class HeaderPanel(Widget):
    """Host, namespace, source, interval, pause; counts per state and tag with sparklines."""

    DEFAULT_CSS = """
    HeaderPanel {
        height: auto;
        max-height: 7;
        background: #1c1c2a;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view: TableView = EMPTY_VIEW
        self.status = Status(interval=1.0, paused=False, replay=False)
        self._lines = 0  # lines of the last text shown
        self._text = self._compose_text()  # built once per change, painted as often as needed

    def show(self, view: TableView, status: Status) -> None:
        self.view = view
        self.status = status
        self._text = self._compose_text()
        # Only a change in the number of lines moves the table: redraw in place otherwise.
        width = max(1, self.content_size.width or 80)
        lines = sum(1 + cell_len(line) // width for line in self._text.plain.split("\n"))
        self.refresh(layout=lines != self._lines)
        self._lines = lines

    def render(self) -> Text:
        return self._text

    def _compose_text(self) -> Text:
        view, status = self.view, self.status
        snapshot = view.snapshot
        text = Text()
        text.append("tcpwatch", "bold #87d7ff")
        if snapshot is not None:
            text.append("  host ", "#8a8a8a")
            text.append(printable(snapshot.host), "bold")
            text.append("  netns ", "#8a8a8a")
            text.append(printable(snapshot.netns) if snapshot.netns else "-", "bold")
            text.append("  source ", "#8a8a8a")
            text.append(snapshot.source.value, "bold")
        text.append("  every ", "#8a8a8a")
        text.append(f"{status.interval:g}s", "bold")
        if status.finished:
            text.append("  ■ END OF RECORDING", "bold black on #d7af00")
        elif status.paused:
            text.append("  ❚❚ PAUSED", "bold black on #d7af00")
            if status.replay:
                text.append(" (n: next poll)", "#d7af00")
        else:
            text.append("  ● live" if not status.replay else "  ▶ replay", "bold green")
        text.append(f"  {compact(view.live)} conns", "bold")
        text.append(f" {compact(len(view.rows))} rows", "#8a8a8a")
        text.append(f" · {view.settings.mode.value}", "#8a8a8a")
        text.append("\n")
        self._counts(text, view)
        if snapshot is not None:
            for note in (snapshot.notice, snapshot.owners_note):
                if note:
                    text.append("\n⚠ ", "bold yellow")
                    text.append(printable(note), "yellow")
        self._findings(text, view)
        return text

    def _findings(self, text: Text, view: TableView) -> None:
        """What looks wrong host-wide, worst first: the way in for "why 40k TIME_WAIT?"."""
        if not view.findings:
            return
        text.append("\n")
        for n, finding in enumerate(view.findings[:FINDINGS_SHOWN]):
            if n:
                text.append("  ")
            text.append(f"⚠ {printable(finding.title)}", FINDING_STYLE[finding.severity])
        more = len(view.findings) - FINDINGS_SHOWN
        if more > 0:
            text.append(f"  +{more} more", "#8a8a8a")
        text.append("   f shows them", "#8a8a8a")

    def _counts(self, text: Text, view: TableView) -> None:
        states = sorted(view.state_counts, key=lambda s: LIFECYCLE_ORDER[TcpState(s)])
        history = view.history
        for n, name in enumerate(states):
            if n:
                text.append("  ")
            text.append(name, STATE_STYLE[TcpState(name)])
            text.append(f" {compact(view.state_counts[name])} ")
            text.append(sparkline([h.get(name, 0) for h in history]), "#5f87af")
        if view.tag_counts:
            text.append("\n")
            for n, tag in enumerate(t for t in Tag if t.value in view.tag_counts):
                if n:
                    text.append("  ")
                text.append(tag.value, TAG_STYLE.get(tag, ""))
                text.append(f" {compact(view.tag_counts[tag.value])} ")
                text.append(sparkline([h.get(tag.value, 0) for h in history]), "#5f87af")

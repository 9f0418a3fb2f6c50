"""`?`: every key, generated from the bindings so the list can never fall behind."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

FILTER_HELP = (
    "Filter language (/): whitespace-separated terms, all must match; a term is "
    "[!]key:value[,value...]. Keys: port sport/lport dport/rport pid proc (glob) state "
    "addr src dst (IP or CIDR) uid user tag. A bare number means port:N, a bare state name "
    "state:NAME. Examples: 8080   state:close-wait   proc:java !state:listen   "
    "dst:10.0.0.0/8 tag:half_open"
)
LEGEND = (
    ("new row", "on #0f4a1a"),
    ("changed row", "on #5c4300"),
    ("gone row (stays a few seconds)", "on #5a0f0f"),
)


def _key_names(binding: Binding) -> str:
    names = []
    for key in binding.key.split(","):
        key = key.strip()
        names.append(
            {
                "question_mark": "?",
                "slash": "/",
                "plus": "+",
                "minus": "-",
                "equals_sign": "=",
                "underscore": "_",
                "ctrl+p": "ctrl+p",
            }.get(key, key)
        )
    return ", ".join(names)


def help_text(sections: Iterable[tuple[str, Iterable[Binding]]]) -> Text:
    out = Text()
    out.append("tcpwatch keys\n", "bold #87d7ff")
    for title, bindings in sections:
        out.append(f"\n{title}\n", "bold")
        for binding in bindings:
            out.append(f"  {_key_names(binding):<28}", "bold #d7af00")
            out.append(f"{binding.description}\n")
    out.append("\nRow colours\n", "bold")
    for label, style in LEGEND:
        out.append("  ")
        out.append(f" {label} ", style)
        out.append("\n")
    out.append(f"\n{FILTER_HELP}\n", "#afafaf")
    out.append("\nMouse: click a row to select it, double-click to open it, click a column ")
    out.append("title to sort by it, wheel to scroll. ctrl+p opens the command palette.\n")
    out.append("\nescape, q or ? closes this help.", "#8a8a8a")
    return out


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; background: #121212; }
    HelpScreen > VerticalScroll {
        width: 90%;
        max-width: 100;
        height: 90%;
        border: round #87d7ff;
        background: #1c1c1c;
        padding: 0 1;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "app.pop_screen", "Close help")
    ]

    def __init__(self, sections: list[tuple[str, list[Binding]]]) -> None:
        super().__init__()
        self._sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(help_text(self._sections))

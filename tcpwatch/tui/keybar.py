"""A screen's keys on one line, drawn once, clickable.

Textual's Footer rebuilds its widgets whenever the focus or the screen changes (opening
the filter bar, the help or an explanation, and closing them): at 50k connections that was
a good part of those keys' 100 ms. The keys of a screen do not change, so this bar renders
them once and maps a click back to its key's action.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.dom import DOMNode
from textual.events import Click
from textual.widget import Widget

KEY_STYLE = "bold #1c1c1c on #87d7ff"
DESCRIPTION_STYLE = "#d0d0d0"


class KeyBar(Widget):
    """The shown bindings of `bindings` (a BINDINGS list), whose actions run on `namespace`
    (the app for the main screen's keys, a screen for its own)."""

    DEFAULT_CSS = """
    KeyBar { height: 1; background: #262626; }
    """

    def __init__(self, bindings: Iterable[BindingType], namespace: DOMNode | None = None) -> None:
        super().__init__()
        self._bindings = [b for b in bindings if isinstance(b, Binding) and b.show]
        self._namespace = namespace
        self._text = Text()
        self._spans: list[tuple[int, int, str]] = []  # cells [start, end) -> action

    def on_mount(self) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        for binding in self._bindings:
            start = text.cell_len
            first_key = replace(binding, key=binding.key.split(",")[0].strip())
            text.append(f" {self.app.get_key_display(first_key)} ", KEY_STYLE)
            text.append(f" {binding.description} ", DESCRIPTION_STYLE)
            self._spans.append((start, text.cell_len, binding.action))
        self._text = text
        self.refresh()

    def render(self) -> Text:
        return self._text

    async def on_click(self, event: Click) -> None:
        for start, end, action in self._spans:
            if start <= event.x < end:
                event.stop()
                await self.app.run_action(action, self._namespace or self.screen)
                return

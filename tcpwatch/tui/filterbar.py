"""The filter bar's text field: its editing keys take effect in the order they were typed."""

from __future__ import annotations

from textual import events
from textual.binding import Binding
from textual.widgets import Input


def _editing_keys() -> dict[str, str]:
    """Input's own key bindings (left, home, ctrl+u, enter, ...): key -> action."""
    keys: dict[str, str] = {}
    for binding in Input.BINDINGS:
        if isinstance(binding, Binding):
            for key in binding.key.split(","):
                keys[key.strip()] = binding.action
    return keys


class FilterInput(Input):
    """An Input that runs its editing keys as they arrive.

    Textual runs a widget's key bindings only once the key has bubbled up to the app, but
    inserts a printable key in the widget at once; keys delivered together (a fast typist
    while a poll repaints 50k rows, a terminal sending a burst) were applied out of order:
    ctrl+u then "port:80" cleared the text just typed, left then "x" typed at the end.
    """

    _EDITING_KEYS = _editing_keys()

    async def _on_key(self, event: events.Key) -> None:
        action = None
        if not event.is_printable:  # the key by any of its names (ctrl+h is backspace)
            action = next(filter(None, map(self._EDITING_KEYS.get, event.aliases)), None)
        if action is None:
            await super()._on_key(event)
            return
        event.stop()
        event.prevent_default()
        self._restart_blink()
        await self.run_action(action)

"""Show text that comes from the system (process names, cmdlines) literally.

A process chooses its own name and arguments, so they may hold escape sequences, bidi
overrides or line breaks meant to fool a terminal or a reader. Everything that is not a
plain visible character is rendered as a backslash escape instead.
"""

from __future__ import annotations

import re
import unicodedata

# Characters a terminal would act on or that hide or reorder text: C0 controls, DEL, C1
# controls, format characters (bidi overrides and isolates, zero-width characters, BOM,
# tag characters), line and paragraph separators, lone surrogates (undecodable bytes kept
# by surrogateescape), and the backslash itself so that an escape is never ambiguous.
_UNSAFE = re.compile(
    "[\\\\\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u180e\u200b-\u200f"
    "\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff\U000e0001\U000e0020-\U000e007f]"
)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if char == "\\":
        return "\\\\"
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not valid UTF-8
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str) -> str:
    """`text` with every control, format or separator character shown as a visible escape.

    `"[bold]x\\x1b[2J"` becomes the eleven visible characters `[bold]x\\x1b[2J`; a
    backslash becomes `\\\\` so the result reads back unambiguously.
    """
    if text.isascii() and text.isprintable() and "\\" not in text:
        return text
    return _UNSAFE.sub(_escape, text)


def cell_width(text: str) -> int:
    """Terminal cells `text` occupies (wide East Asian characters take two, combining marks none).

    Meant for text already passed through `printable`, which has no control characters left.
    """
    if text.isascii():
        return len(text)
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width

"""System text is shown literally: no control character ever reaches the terminal."""

from __future__ import annotations

import unicodedata

import pytest

from tcpwatch.textsafe import cell_width, printable


def test_plain_text_is_unchanged() -> None:
    for text in ("nginx", "java -jar app.jar", "[bold]x[/bold]", "进程名", "café", ""):
        assert printable(text) == text


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("[bold]x\x1b[2J", "[bold]x\\x1b[2J"),
        ("a\nb", "a\\x0ab"),
        ("a\tb\r", "a\\x09b\\x0d"),
        ("\x00\x07\x08", "\\x00\\x07\\x08"),
        ("del\x7f", "del\\x7f"),
        ("c1\x9b31m", "c1\\x9b31m"),  # 8-bit CSI
        ("evil\u202etxt.exe", "evil\\u202etxt.exe"),  # right-to-left override
        ("\u2066iso\u2069", "\\u2066iso\\u2069"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("line\u2028sep", "line\\u2028sep"),
        ("bom\ufeff", "bom\\ufeff"),
        ("tag\U000e0041", "tag\\U000e0041"),
        ("bad\udcffbyte", "bad\\xffbyte"),  # an undecodable byte kept by surrogateescape
        ("back\\slash", "back\\\\slash"),
        ("\\x1b", "\\\\x1b"),  # a literal backslash-x never looks like an escape
    ],
)
def test_unsafe_characters_are_escaped(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_no_control_or_format_character_survives() -> None:
    everything = "".join(chr(c) for c in range(0x3000) if not 0xD800 <= c <= 0xDFFF)
    shown = printable(everything + "\udc80")
    for char in shown:
        assert unicodedata.category(char) not in ("Cc", "Cs", "Zl", "Zp"), hex(ord(char))
    for char in "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u061c":
        assert char not in shown
    shown.encode("utf-8")  # printable on any UTF-8 terminal


def test_cell_width() -> None:
    assert cell_width("nginx/17") == 8
    assert cell_width("进程") == 4
    assert cell_width("e\u0301") == 1

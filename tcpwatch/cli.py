"""Command line: parse options, wire a source, the tracker and an output."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from tcpwatch import __version__
from tcpwatch.errors import TcpwatchError, UsageError

SUBCOMMANDS = ("snapshot", "watch", "record", "replay")


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2, never a usage dump."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "filters", nargs="*", metavar="FILTER", help="filter terms, e.g. port:8080 state:close-wait"
    )
    parser.add_argument(
        "--interval",
        type=_positive_float,
        default=1.0,
        metavar="S",
        help="seconds between polls (default 1.0)",
    )
    parser.add_argument("--netns", metavar="NAME|PATH|PID", help="watch another network namespace")
    parser.add_argument(
        "--port", action="append", default=[], metavar="N", help="same as the term port:N"
    )
    parser.add_argument(
        "--pid", action="append", default=[], metavar="N", help="same as the term pid:N"
    )
    parser.add_argument(
        "--state", action="append", default=[], metavar="S", help="same as the term state:S"
    )
    parser.add_argument(
        "--proc", action="append", default=[], metavar="NAME", help="same as the term proc:NAME"
    )
    parser.add_argument(
        "--source",
        choices=("auto", "netlink", "proc"),
        default="auto",
        help="socket source (default: netlink, /proc if it is unavailable)",
    )
    parser.add_argument(
        "--lang",
        choices=("en", "zh"),
        default=None,
        help="language of explanations (default: from the locale)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of runtime failures")


def build_parser(command: str | None) -> argparse.ArgumentParser:
    """The parser of one subcommand (None: the interactive TUI)."""
    prog = "tcpwatch" if command is None else f"tcpwatch {command}"
    parser = _Parser(prog=prog, description=_DESCRIPTIONS[command])
    if command == "record":
        parser.add_argument("file", metavar="FILE", help="recording to write")
    if command == "replay":
        parser.add_argument("file", metavar="FILE", help="recording to replay")
        parser.add_argument("--lang", choices=("en", "zh"), default=None)
        parser.add_argument("--export-dir", default=".", metavar="DIR")
        parser.add_argument("--debug", action="store_true")
        return parser
    _add_common(parser)
    if command == "snapshot":
        parser.add_argument(
            "--json", action="store_true", help="print the tcpwatch.snapshot/1 JSON document"
        )
    if command in ("watch", "record"):
        parser.add_argument("--count", type=_positive_int, metavar="N", help="stop after N polls")
        parser.add_argument(
            "--duration", type=_positive_float, metavar="S", help="stop after S seconds"
        )
    if command == "watch":
        parser.add_argument(
            "--ndjson", action="store_true", help="print tcpwatch.event/1 JSON lines"
        )
        parser.add_argument(
            "--replay", metavar="FILE", help="read polls from a recording instead of the kernel"
        )
    if command is None:
        parser.add_argument("--version", action="version", version=f"tcpwatch {__version__}")
        parser.add_argument(
            "--export-dir", default=".", metavar="DIR", help="where `e` writes exports"
        )
    return parser


_DESCRIPTIONS: dict[str | None, str] = {
    None: "Interactive monitor of TCP connections. Subcommands: snapshot, watch, record, replay.",
    "snapshot": "One poll: a netstat-like table, or the JSON document with --json.",
    "watch": "Poll repeatedly and print one line per state transition.",
    "record": "Record polls to FILE for later replay.",
    "replay": "The interactive monitor over a recording.",
}


def filter_text(options: argparse.Namespace) -> str:
    """All filter terms, positional and shortcut options, as one filter-language string."""
    terms = list(getattr(options, "filters", []))
    for key in ("port", "pid", "state", "proc"):
        terms.extend(f"{key}:{value}" for value in getattr(options, key, []))
    return " ".join(terms)


def parse_args(argv: Sequence[str]) -> tuple[str | None, argparse.Namespace]:
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    rest = list(argv[1:] if command else argv)
    options = build_parser(command).parse_intermixed_args(rest)
    return command, options


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        command, options = parse_args(args)
    except UsageError as error:
        print(f"tcpwatch: {error}", file=sys.stderr)
        return 2
    try:
        return _dispatch(command, options)
    except UsageError as error:
        print(f"tcpwatch: {error}", file=sys.stderr)
        return 2
    except TcpwatchError as error:
        if options.debug:
            raise
        print(f"tcpwatch: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


def _dispatch(command: str | None, options: argparse.Namespace) -> int:
    if command == "snapshot":
        from tcpwatch.commands import snapshot

        return snapshot.run(options)
    if command == "watch":
        from tcpwatch.commands import watch

        return watch.run(options)
    if command == "record":
        from tcpwatch.commands import record

        return record.run(options)
    from tcpwatch.commands import interactive

    return interactive.run(options, replay=command == "replay")

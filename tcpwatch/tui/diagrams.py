"""Pictures for the drill-down: the state machine with a connection's path lit up, and a
ladder (sequence) diagram of the segments the two ends exchanged.

Both draw the path the explanation tells (`Explanation.path`, `.inferred`, `.ladder`), so
pictures and text agree: states a poll saw are "observed", the ones filled in between
sightings are "inferred", and the two always look different.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rich.style import Style
from rich.text import Text

from tcpwatch.tcp import fsm
from tcpwatch.tcp.states import TcpState

OBSERVED_STYLE = Style(color="black", bgcolor="#87d787", bold=True)
INFERRED_STYLE = Style(color="black", bgcolor="#d7af5f", italic=True)
CURRENT_STYLE = Style(color="white", bgcolor="#005fd7", bold=True, underline=True)
EDGE_STYLE = Style(color="#6c6c6c")

# RFC 793's figure 6 as Linux runs it; "recv X / send Y" as in fsm.Trigger.text.
MACHINE = (
    "                              CLOSED",
    "              listen() ↙                ↘ connect() / send [S]",
    "       LISTEN                                SYN_SENT",
    "  recv [S] / send [S.] ↓                         ↓ recv [S.] / send [.]",
    "       SYN_RECV ── recv [.] ──→ ESTABLISHED ←────┘",
    "             close() / send [F.] ↙          ↘ recv [F.] / send [.]",
    "       FIN_WAIT1                                 CLOSE_WAIT",
    "  recv [.] ↓       ↘ recv [F.] / send [.]             ↓ close() / send [F.]",
    "       FIN_WAIT2        CLOSING                  LAST_ACK",
    "  recv [F.] / send [.] ↓  ↓ recv [.]                  ↓ recv [.]",
    "       TIME_WAIT ←───────┘                       CLOSED",
    "          ↓ 2MSL (60 s on Linux)",
    "       CLOSED               any state ── recv [R] or abort ──→ CLOSED",
)
_NAME = re.compile(r"\b[A-Z][A-Z_0-9]+\b")


def _occurrences() -> dict[str, list[tuple[int, int, int]]]:
    found: dict[str, list[tuple[int, int, int]]] = {}
    for row, line in enumerate(MACHINE):
        for match in _NAME.finditer(line):
            found.setdefault(match.group(), []).append((row, match.start(), match.end()))
    return found


_WHERE = _occurrences()


def state_machine(states: Sequence[TcpState], inferred: Sequence[bool]) -> Text:
    """The machine with the path's states lit: observed, inferred, and the current one."""
    lines = [Text(line, EDGE_STYLE) for line in MACHINE]
    closed = _WHERE["CLOSED"]  # top (start), after LAST_ACK, after TIME_WAIT / reset
    last = len(states) - 1
    for index, state in enumerate(states):
        if state is TcpState.CLOSED:
            if index == 0:
                spot = closed[0]
            elif states[index - 1] is TcpState.LAST_ACK:
                spot = closed[1]
            else:
                spot = closed[2]
        elif state.value in _WHERE:
            spot = _WHERE[state.value][0]
        else:
            continue
        style = (
            CURRENT_STYLE
            if index == last
            else INFERRED_STYLE
            if inferred[index]
            else OBSERVED_STYLE
        )
        row, start, end = spot
        lines[row].stylize(style, start, end)
    for state in set(states):
        if state.value in _WHERE and state is not TcpState.CLOSED:
            row, start, end = _WHERE[state.value][0]
            lines[row].stylize(Style(bold=True), start, end)
    out = Text("\n").join(lines)
    out.append("\n\n")
    out.append(" observed ", OBSERVED_STYLE)
    out.append("  ")
    out.append(" inferred ", INFERRED_STYLE)
    out.append("  ")
    out.append(" now ", CURRENT_STYLE)
    return out


def path_text(states: Sequence[TcpState], inferred: Sequence[bool]) -> Text:
    """The path in one line per step: state, what drove the step, observed or inferred."""
    out = Text()
    for index, state in enumerate(states):
        if index:
            edge = fsm.edge(states[index - 1], state)
            out.append("\n   ↓ ", EDGE_STYLE)
            out.append(edge.trigger.text if edge is not None else "?", "#afafaf")
            out.append("\n")
        style = INFERRED_STYLE if inferred[index] else OBSERVED_STYLE
        out.append(f" {state.value} ", style)
        if inferred[index]:
            out.append("  inferred", "italic #d7af5f")
    return out


def ladder(
    steps: Sequence[fsm.LadderStep],
    first: TcpState | None,
    local: str,
    remote: str,
    width: int = 74,
) -> Text:
    """A sequence diagram: this end on the left, the other end on the right."""
    label = 13
    lane = max(20, width - 2 * label - 4)
    out = Text()
    out.append(f"{'this end':<{label}} ", "bold")
    out.append(local[: lane // 2 + label].ljust(lane // 2 + 1), "bold")
    out.append(remote[: lane // 2 + label].rjust(lane - lane // 2 + 1), "bold")
    out.append(f" {'other end':>{label}}\n", "bold")
    start = first.value if first is not None else ""
    out.append(f"{start:<{label}} │{' ' * lane}│\n", "#8a8a8a")
    for step in steps:
        style = "italic #d7af5f" if step.inferred else "bold"
        left = step.local_state.value if step.local_state is not None else ""
        right = step.remote_state.value if step.remote_state is not None else ""
        if step.direction is fsm.Direction.LOCAL:
            middle = f" {step.label} ".center(lane)
            out.append(f"{left:<{label}} │", style)
            out.append(middle[:lane], "#afafaf")
            out.append(f"│ {right}\n", style)
            continue
        tag = f" {step.flags} "
        if step.label:
            tag = f" {step.label} {step.flags} "
        fill = "╌" if step.inferred else "─"
        body = tag.center(lane - 1, fill)
        arrow = body + "▶" if step.direction is fsm.Direction.OUT else "◀" + body
        out.append(f"{left:<{label}} │", style)
        out.append(arrow[:lane], "#d7af5f" if step.inferred else "#87d7ff")
        out.append("│", style)
        out.append(f" {right}", style)
        if step.inferred:
            out.append("  (inferred)", "italic #8a8a8a")
        out.append("\n")
    out.append("── observed: solid   ╌╌ inferred: dashed   ", "#8a8a8a")
    out.append("[S] SYN  [S.] SYN+ACK  [.] ACK  [F.] FIN+ACK  [R] RST", "#8a8a8a")
    return out

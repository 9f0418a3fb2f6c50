"""The netstat/ss-like table `tcpwatch snapshot` prints.

Plain aligned text: the same in a terminal and in a pipe, no colour, and every piece of
system text passed through `textsafe.printable`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tcpwatch.model import Connection, Endpoint, Family, Timer
from tcpwatch.tcp.states import LIFECYCLE_ORDER, TcpState
from tcpwatch.textsafe import cell_width, printable

HEADERS = (
    "State",
    "Recv-Q",
    "Send-Q",
    "Local Address:Port",
    "Peer Address:Port",
    "Timer",
    "Process",
    "Tags",
)
_RIGHT_ALIGNED = frozenset({1, 2})


def endpoint_text(endpoint: Endpoint, family: Family) -> str:
    """`127.0.0.1:8080`, `[::1]:8080`; port 0 (no peer yet) is `*` as in ss."""
    address = printable(endpoint.address)
    if family is Family.IPV6:
        address = f"[{address}]"
    port = "*" if endpoint.port == 0 else str(endpoint.port)
    return f"{address}:{port}"


def duration_text(ms: int) -> str:
    """A short human duration: `450ms`, `59s`, `7m12s`, `1h59m`."""
    if ms < 1000:
        return f"{ms}ms"
    seconds = ms // 1000
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def timer_text(timer: Timer | None) -> str:
    """`keepalive,1h59m,0`, `retransmit,200ms,3` as ss prints it: name, time left, and
    retransmissions or probes so far. One word, so `awk` and `cut` see one column."""
    if timer is None:
        return "-"
    return f"{timer.name.value},{duration_text(timer.expires_ms)},{timer.retrans}"


def process_text(conn: Connection, *, owners_incomplete: bool) -> str:
    """`name/pid`; `-` when no process holds the socket; `?` when we may not look."""
    if conn.process is not None:
        return f"{printable(conn.process.name)}/{conn.process.pid}"
    if conn.record.inode != 0 and owners_incomplete:
        return "?"
    return "-"


def sort_key(conn: Connection) -> tuple[int, int, str, str, int]:
    record = conn.record
    local = record.local
    remote = record.remote
    state = record.state if conn.gone_at is None else TcpState.CLOSED  # conn.state, inlined
    return (
        LIFECYCLE_ORDER[state],
        local.port,
        local.address,
        remote.address,
        remote.port,
    )


def table_rows(connections: Iterable[Connection], *, owners_incomplete: bool) -> list[list[str]]:
    rows = []
    for conn in sorted(connections, key=sort_key):
        record = conn.record
        rows.append(
            [
                conn.state.value,
                str(record.recv_q),
                str(record.send_q),
                endpoint_text(record.local, record.family),
                endpoint_text(record.remote, record.family),
                timer_text(record.timer),
                process_text(conn, owners_incomplete=owners_incomplete),
                ",".join(sorted(tag.value for tag in conn.tags)) if conn.tags else "-",
            ]
        )
    return rows


def format_table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Lines of the table with a header; columns padded to their widest cell.

    Rows of plain ASCII (nearly all) go through one format string; others are padded by
    terminal cells, since a wide character takes two.
    """
    all_rows = [list(HEADERS), *rows]
    widths = []
    for column in zip(*all_rows, strict=True):
        measure = len if "".join(column).isascii() else cell_width
        widths.append(max(map(measure, column)))
    last = len(HEADERS) - 1
    template = "  ".join(
        "{}" if i == last else f"{{:{'>' if i in _RIGHT_ALIGNED else '<'}{width}}}"
        for i, width in enumerate(widths)
    )
    lines = []
    for row in all_rows:
        if "".join(row).isascii():
            lines.append(template.format(*row))
            continue
        cells = []
        for i, cell in enumerate(row):
            pad = " " * (widths[i] - cell_width(cell)) if i != last else ""
            cells.append(pad + cell if i in _RIGHT_ALIGNED else cell + pad)
        lines.append("  ".join(cells))
    return lines


def render_table(connections: Iterable[Connection], *, owners_incomplete: bool) -> str:
    """The whole table as text ending in a newline."""
    rows = table_rows(connections, owners_incomplete=owners_incomplete)
    return "\n".join(format_table(rows)) + "\n"

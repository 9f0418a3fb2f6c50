"""Read the TCP sysctls that explanations quote, for this or another network namespace.

Most of them are per network namespace. /proc/sys/net shows the namespace of the thread
that opens the file, so for another namespace a short-lived thread enters it (setns, see
`tcpwatch.sources.netns.call_in_netns`) and reads there; the rest of the process never
moves. A missing or unreadable file (an older kernel, a setting not namespaced, no
permission) leaves the Linux default, because explanations only need a plausible number.
"""

from __future__ import annotations

from dataclasses import fields

from tcpwatch.tcp.host import HostSettings

_PATHS: dict[str, str] = {
    "somaxconn": "/proc/sys/net/core/somaxconn",
    **{
        f.name: f"/proc/sys/net/ipv4/{f.name}"
        for f in fields(HostSettings)
        if f.name != "somaxconn"
    },
}


def read_host_settings(netns: str | None = None) -> HostSettings:
    """The live settings of `netns` (NAME, PATH or PID as `--netns` takes; None: ours).

    Raises SourceError (one line) only when the namespace itself cannot be entered.
    """
    if netns is None:
        return _read_all()
    from tcpwatch.sources.netns import call_in_netns

    return call_in_netns(netns, _read_all)


def _read_all() -> HostSettings:
    values: dict[str, object] = {}
    for name, path in _PATHS.items():
        try:
            with open(path, encoding="ascii") as handle:
                numbers = [int(word) for word in handle.read().split()]
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        if name == "ip_local_port_range":
            if len(numbers) == 2:
                values[name] = (numbers[0], numbers[1])
        elif len(numbers) == 1:
            values[name] = numbers[0]
    return HostSettings(**values)  # type: ignore[arg-type]

"""Reading the live TCP settings, here and inside a private network namespace."""

from __future__ import annotations

from dataclasses import fields

import pytest

from tcpwatch.sources.base import SourceError
from tcpwatch.sources.sysctl import read_host_settings
from tcpwatch.tcp.host import HostSettings
from tests.netns import netns_exec, private_netns, requires_root, set_sysctl


def _sysctl_name(field: str) -> str:
    return "net.core.somaxconn" if field == "somaxconn" else f"net.ipv4.{field}"


def _expected_from_sysctl_tool(ns: str) -> HostSettings:
    values: dict[str, object] = {}
    for f in fields(HostSettings):
        words = netns_exec(ns, "sysctl", "-n", _sysctl_name(f.name)).split()
        numbers = [int(w) for w in words]
        values[f.name] = tuple(numbers) if f.name == "ip_local_port_range" else numbers[0]
    return HostSettings(**values)  # type: ignore[arg-type]


@requires_root
def test_reads_the_namespace_not_the_host() -> None:
    host = read_host_settings()
    with private_netns() as ns:
        fin = 17 if host.tcp_fin_timeout != 17 else 19
        set_sysctl(ns, "net.ipv4.tcp_fin_timeout", str(fin))
        set_sysctl(ns, "net.ipv4.ip_local_port_range", "40000 40009")
        set_sysctl(ns, "net.core.somaxconn", "77")
        inside = read_host_settings(ns)
        assert inside.tcp_fin_timeout == fin
        assert inside.ip_local_port_range == (40000, 40009)
        assert inside.ephemeral_ports == 10
        assert inside.somaxconn == 77
        # Every field agrees with the sysctl tool run inside the namespace.
        assert inside == _expected_from_sysctl_tool(ns)
    # The host itself is untouched, and this process never left its namespace.
    assert read_host_settings() == host


def test_missing_namespace_is_a_one_line_error() -> None:
    with pytest.raises(SourceError, match="not found"):
        read_host_settings("tcpwatch-no-such-namespace")


def test_derived_timeouts_follow_the_settings() -> None:
    h = HostSettings(tcp_syn_retries=6, tcp_synack_retries=5, ip_local_port_range=(1, 10))
    assert h.syn_give_up_s == 127.0  # 1+2+4+8+16+32+64
    assert h.synack_give_up_s == 63.0
    assert h.ephemeral_ports == 10
    assert HostSettings().keepalive_give_up_s == 7200 + 75 * 9

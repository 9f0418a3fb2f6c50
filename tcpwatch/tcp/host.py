"""The host's TCP settings that decide what happens next to a connection.

Explanations quote these live values ("this FIN_WAIT2 is dropped after tcp_fin_timeout =
60 s"), so they are read from the host (`tcpwatch.sources.sysctl`) rather than assumed.
Defaults are Linux's, used where a value cannot be read.
"""

from __future__ import annotations

from dataclasses import dataclass

TIME_WAIT_S = 60
"""2MSL on Linux: TCP_TIMEWAIT_LEN, compiled in, not a sysctl."""

INITIAL_RTO_S = 1.0
"""Linux's first retransmission timeout for a SYN or SYN-ACK (TCP_TIMEOUT_INIT); it doubles
after each retry."""


@dataclass(frozen=True, slots=True)
class HostSettings:
    """Values of /proc/sys/net/{ipv4,core}/… for one network namespace.

    `ip_local_port_range` is (first, last) inclusive; `tcp_tw_reuse` is 0 off, 1 on,
    2 loopback only; `tcp_syncookies` is 0 off, 1 when the SYN queue overflows, 2 always.
    """

    tcp_fin_timeout: int = 60
    tcp_keepalive_time: int = 7200
    tcp_keepalive_intvl: int = 75
    tcp_keepalive_probes: int = 9
    tcp_syn_retries: int = 6
    tcp_synack_retries: int = 5
    tcp_max_syn_backlog: int = 1024
    somaxconn: int = 4096
    tcp_syncookies: int = 1
    ip_local_port_range: tuple[int, int] = (32768, 60999)
    tcp_tw_reuse: int = 2
    tcp_abort_on_overflow: int = 0
    tcp_max_tw_buckets: int = 262144
    tcp_retries2: int = 15
    tcp_orphan_retries: int = 0

    @property
    def ephemeral_ports(self) -> int:
        """How many local ports connect() can pick from: one per destination at a time."""
        first, last = self.ip_local_port_range
        return max(0, last - first + 1)

    @property
    def syn_give_up_s(self) -> float:
        """Seconds until connect() gives up on an unanswered SYN (1 s, doubling per retry)."""
        return _backoff_total(self.tcp_syn_retries)

    @property
    def synack_give_up_s(self) -> float:
        """Seconds until a SYN_RECV whose SYN-ACK is never acknowledged is dropped."""
        return _backoff_total(self.tcp_synack_retries)

    @property
    def keepalive_give_up_s(self) -> int:
        """Seconds of silence after which keepalive declares an idle peer dead."""
        return self.tcp_keepalive_time + self.tcp_keepalive_intvl * self.tcp_keepalive_probes


def _backoff_total(retries: int) -> float:
    """The first try plus `retries` retries, the timeout doubling each time: 2^(n+1) - 1 RTOs."""
    return INITIAL_RTO_S * (2 ** (max(0, retries) + 1) - 1)

"""The filter language shared by the command line and the interactive filter bar.

Whitespace-separated terms, all of which must match. A term is `[!]key:value[,value...]`
(values are alternatives); a bare number means `port:N`, a bare state name `state:NAME`.
Each term is compiled once into a predicate, because a filter runs over every connection
of every poll (tens of thousands).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import pwd
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from tcpwatch.errors import UsageError
from tcpwatch.model import Connection, ProcessInfo
from tcpwatch.tcp.states import TcpState
from tcpwatch.tcp.tags import Tag

Predicate = Callable[[Connection], bool]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

KEYS = (
    "port",
    "sport",
    "lport",
    "dport",
    "rport",
    "pid",
    "proc",
    "state",
    "addr",
    "src",
    "dst",
    "uid",
    "user",
    "tag",
)


class FilterError(UsageError):
    """A filter term that does not parse; the message names the term."""


@dataclass(frozen=True, slots=True)
class Filter:
    """A parsed filter. `text` is the source, whitespace-normalised; empty matches all."""

    text: str
    match: Predicate

    def matches(self, conn: Connection) -> bool:
        return self.match(conn)


def parse_filter(text: str) -> Filter:
    """Parse filter-language text; FilterError names the first term that is wrong."""
    terms = text.split()
    return Filter(text=" ".join(terms), match=_conjunction([_compile_term(t) for t in terms]))


def _conjunction(predicates: list[Predicate]) -> Predicate:
    """One predicate for all terms: nested `and`s, no loop or generator per connection."""
    if not predicates:
        return lambda conn: True
    combined = predicates[-1]
    for predicate in reversed(predicates[:-1]):
        combined = _both(predicate, combined)
    return combined


def _both(first: Predicate, second: Predicate) -> Predicate:
    return lambda conn: first(conn) and second(conn)


def _compile_term(term: str) -> Predicate:
    negate = term.startswith("!")
    body = term[1:] if negate else term
    if not body:
        raise FilterError(f"bad filter term {term!r}: '!' must be followed by a term")
    if ":" in body:
        key, _, value_text = body.partition(":")
        key = key.lower()
        if key not in _COMPILERS:
            raise FilterError(
                f"bad filter term {term!r}: unknown key {key!r} (keys: {', '.join(KEYS)})"
            )
    elif body.isdigit():
        key, value_text = "port", body
    elif _is_state(body):
        key, value_text = "state", body
    else:
        raise FilterError(f"bad filter term {term!r}: not key:value, a port number or a state name")
    values = value_text.split(",")
    if any(not value for value in values):
        raise FilterError(f"bad filter term {term!r}: empty value")
    try:
        predicate = _COMPILERS[key](values)
    except ValueError as error:
        raise FilterError(f"bad filter term {term!r}: {error}") from None
    if negate:
        return lambda conn: not predicate(conn)
    return predicate


def _is_state(text: str) -> bool:
    try:
        TcpState.parse(text)
    except ValueError:
        return False
    return True


def _int(value: str, what: str, low: int, high: int) -> int:
    if not value.isascii() or not value.isdigit():
        raise ValueError(f"{what} must be a whole number, not {value!r}")
    number = int(value)
    if not low <= number <= high:
        raise ValueError(f"{what} {number} out of range ({low}-{high})")
    return number


def _ports(values: list[str]) -> frozenset[int]:
    return frozenset(_int(v, "port", 0, 65535) for v in values)


def _port_either(values: list[str]) -> Predicate:
    ports = _ports(values)
    return lambda c: c.record.local.port in ports or c.record.remote.port in ports


def _port_local(values: list[str]) -> Predicate:
    ports = _ports(values)
    return lambda c: c.record.local.port in ports


def _port_remote(values: list[str]) -> Predicate:
    ports = _ports(values)
    return lambda c: c.record.remote.port in ports


def _owner(c: Connection) -> ProcessInfo | None:
    """The process holding the socket, or the last one that did: `pid:` and `proc:` keep
    showing a process's connections after it closed them (FIN_WAIT, TIME_WAIT)."""
    return c.process or c.former_process


def _pid(values: list[str]) -> Predicate:
    pids = frozenset(_int(v, "pid", 1, 2**22) for v in values)

    def predicate(c: Connection) -> bool:
        owner = _owner(c)
        return owner is not None and owner.pid in pids

    return predicate


def _proc(values: list[str]) -> Predicate:
    match = re.compile("|".join(fnmatch.translate(v) for v in values)).match

    def predicate(c: Connection) -> bool:
        owner = _owner(c)
        return owner is not None and match(owner.name) is not None

    return predicate


def _state(values: list[str]) -> Predicate:
    states = frozenset(TcpState.parse(v) for v in values)
    return lambda c: c.state in states


def _uid(values: list[str]) -> Predicate:
    uids = frozenset(_int(v, "uid", 0, 2**32 - 1) for v in values)
    return lambda c: c.record.uid in uids


def _user(values: list[str]) -> Predicate:
    users = frozenset(values)

    def predicate(c: Connection) -> bool:
        owner = _owner(c)
        if owner is not None and owner.user is not None:
            return owner.user in users
        # No known owner: a full socket (inode set) still has the uid that created it.
        return c.record.inode != 0 and _user_name(c.record.uid) in users

    return predicate


@lru_cache(maxsize=1024)
def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _tag(values: list[str]) -> Predicate:
    tags = frozenset(_parse_tag(v) for v in values)
    return lambda c: not tags.isdisjoint(c.tags)


def _parse_tag(value: str) -> Tag:
    try:
        return Tag(value.lower().replace("-", "_"))
    except ValueError:
        names = ", ".join(t.value for t in Tag)
        raise ValueError(f"unknown tag {value!r} (tags: {names})") from None


def _networks(values: list[str]) -> tuple[Network, ...]:
    networks = []
    for value in values:
        text = value[1:-1] if value.startswith("[") and value.endswith("]") else value
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"not an IP address or CIDR: {value!r}") from None
        networks.append(_unmap_network(network))
    return tuple(networks)


def _unmap_network(network: Network) -> Network:
    """`::ffff:10.0.0.0/104` is the IPv4 network 10.0.0.0/8 seen through IPv6."""
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


@lru_cache(maxsize=65536)
def _address(text: str) -> Address | None:
    """The address an endpoint string names; IPv4-mapped IPv6 addresses become IPv4."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _in_any(networks: tuple[Network, ...]) -> Callable[[str], bool]:
    def contains(text: str) -> bool:
        address = _address(text)
        if address is None:
            return False
        for network in networks:
            if address.version == network.version and address in network:
                return True
        return False

    return lru_cache(maxsize=65536)(contains)


def _addr_either(values: list[str]) -> Predicate:
    contains = _in_any(_networks(values))
    return lambda c: contains(c.record.local.address) or contains(c.record.remote.address)


def _addr_local(values: list[str]) -> Predicate:
    contains = _in_any(_networks(values))
    return lambda c: contains(c.record.local.address)


def _addr_remote(values: list[str]) -> Predicate:
    contains = _in_any(_networks(values))
    return lambda c: contains(c.record.remote.address)


_COMPILERS: dict[str, Callable[[list[str]], Predicate]] = {
    "port": _port_either,
    "sport": _port_local,
    "lport": _port_local,
    "dport": _port_remote,
    "rport": _port_remote,
    "pid": _pid,
    "proc": _proc,
    "state": _state,
    "addr": _addr_either,
    "src": _addr_local,
    "dst": _addr_remote,
    "uid": _uid,
    "user": _user,
    "tag": _tag,
}

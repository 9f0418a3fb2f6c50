"""Reach into another network namespace without moving the process.

`setns(2)` changes the namespace of the calling thread only, so a short-lived thread
enters the target namespace, creates what is needed there (a netlink socket, an open
/proc file) and exits. Sockets and files keep the namespace they were created in, and the
rest of the process (the UI, other threads) never changes namespace. No fork is involved,
which matters in a threaded program.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from collections.abc import Callable
from typing import TypeVar

from tcpwatch.sources.base import SourceError

T = TypeVar("T")

CLONE_NEWNET = 0x40000000


def resolve_netns(spec: str) -> str:
    """Map `--netns NAME|PATH|PID` to a namespace file path; SourceError if it is missing.

    A number is a process id (`/proc/PID/ns/net`), anything with a slash is a path, and
    anything else is a name created by `ip netns add` (`/run/netns/NAME`).
    """
    if not spec:
        raise SourceError("network namespace '' not found")
    if spec.isdigit():
        path = f"/proc/{spec}/ns/net"
    elif "/" in spec:
        path = spec
    else:
        path = f"/run/netns/{spec}"
    try:
        os.stat(path)
    except OSError as exc:
        raise _open_error(spec, exc) from None
    return path


def _open_error(spec: str, exc: OSError) -> SourceError:
    """One line for a namespace file that cannot be looked at or opened."""
    if isinstance(exc, FileNotFoundError):
        return SourceError(f"network namespace {spec!r} not found")
    if isinstance(exc, PermissionError):
        return SourceError(
            f"cannot open network namespace {spec!r}: permission denied (run as root)"
        )
    return SourceError(f"cannot open network namespace {spec!r}: {exc.strerror}")


def _setns(fd: int) -> None:
    setns = getattr(os, "setns", None)  # Python >= 3.12
    if setns is not None:
        setns(fd, CLONE_NEWNET)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def call_in_netns(spec: str, fn: Callable[[], T]) -> T:
    """Run `fn()` in a thread that has entered namespace `spec`; return its result.

    Errors become one-line SourceErrors; exceptions raised by `fn` propagate unchanged.
    """
    path = resolve_netns(spec)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:  # removed or made unreadable since resolve_netns looked
        raise _open_error(spec, exc) from None
    outcome: list[tuple[bool, object]] = []

    def run() -> None:
        try:
            try:
                _setns(fd)
            except OSError as exc:
                if exc.errno == errno.EINVAL:
                    message = f"{spec!r} is not a network namespace"
                elif exc.errno == errno.EPERM:
                    message = f"entering network namespace {spec!r} needs root (CAP_SYS_ADMIN)"
                else:
                    message = f"cannot enter network namespace {spec!r}: {exc.strerror}"
                outcome.append((False, SourceError(message)))
                return
            outcome.append((True, fn()))
        except BaseException as exc:
            outcome.append((False, exc))

    try:
        thread = threading.Thread(target=run, name="tcpwatch-netns", daemon=True)
        thread.start()
        thread.join()
    finally:
        os.close(fd)
    ok, value = outcome[0]
    if not ok:
        assert isinstance(value, BaseException)
        raise value
    return value  # type: ignore[return-value]

"""tcpwatch: a netstat-style monitor that explains every TCP connection's story."""

from __future__ import annotations

__version__ = "0.1.0"

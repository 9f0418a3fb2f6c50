"""The optional C part: the parser's hit path. Without a compiler, tcpwatch installs
anyway and the same path runs in Python (slower at tens of thousands of sockets)."""

from setuptools import Extension, setup

setup(
    ext_modules=[Extension("tcpwatch.sources._reuse", ["tcpwatch/sources/_reuse.c"], optional=True)]
)

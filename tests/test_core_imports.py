"""Everything outside `tcpwatch.tui` imports and runs without Textual."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter: any attempt to import textual raises, then every tcpwatch
# module outside the TUI package is imported and one snapshot is taken through the CLI.
FORBID_TEXTUAL = r"""
import importlib, pkgutil, sys

class NoTextual:
    def find_spec(self, name, path=None, target=None):
        if name == "textual" or name.startswith("textual."):
            raise ImportError(f"core imported {name}")
        return None

sys.meta_path.insert(0, NoTextual())
sys.path.insert(0, sys.argv[1])
import tcpwatch

names = []
for module in pkgutil.walk_packages(tcpwatch.__path__, "tcpwatch."):
    if module.name == "tcpwatch.tui" or module.name.startswith("tcpwatch.tui."):
        continue
    if module.name == "tcpwatch.__main__":
        continue
    importlib.import_module(module.name)
    names.append(module.name)

from tcpwatch.cli import main
code = main(["snapshot", "--json", "port:1"])
assert code == 0, code
leaked = sorted(m for m in sys.modules if m == "textual" or m.startswith("textual."))
assert not leaked, leaked
print(len(names), " ".join(names), file=sys.stderr)
"""


def test_core_imports_without_textual() -> None:
    done = subprocess.run(
        [sys.executable, "-c", FORBID_TEXTUAL, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    count, *names = done.stderr.split()
    assert int(count) == len(names)
    for expected in (
        "tcpwatch.cli",
        "tcpwatch.filters",
        "tcpwatch.textsafe",
        "tcpwatch.sources.owners",
        "tcpwatch.sources.poller",
        "tcpwatch.outputs.table",
        "tcpwatch.outputs.jsondoc",
        "tcpwatch.commands.snapshot",
    ):
        assert expected in names

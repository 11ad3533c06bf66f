"""`deeployd psql`: psql (or the URL) of the database `deeployd dev` runs, clear when it is not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from deeployd import cli_psql
from deeployd.cli import main
from deeployd.settings import Settings
from tests.conftest import REPO


def psql(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deeployd.cli", "psql", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_psql_runs_queries_prints_the_url_and_says_when_nothing_runs(
    settings: Settings, tmp_path: Path
) -> None:
    url = settings.require_database_url()
    with_db = {**os.environ, "DATABASE_URL": url}
    assert psql("--url", env=with_db).stdout.strip() == url
    answer = psql("-t", "-A", "-c", "select 40 + 2", env=with_db)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() == "42"
    failing = psql("-v", "ON_ERROR_STOP=1", "-c", "select nope", env=with_db)
    assert failing.returncode != 0 and "nope" in failing.stderr  # psql's own exit code

    no_db = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    stopped = psql("--data-dir", str(tmp_path), "-c", "select 1", env=no_db)
    assert stopped.returncode == 1
    assert "the embedded PostgreSQL is not running" in stopped.stderr
    assert "make dev" in stopped.stderr


def test_without_a_psql_client_the_error_names_the_url(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.require_database_url())
    monkeypatch.setattr(cli_psql, "psql_client", lambda: None)
    with pytest.raises(SystemExit) as exited:
        main(["psql", "-c", "select 1"])
    assert exited.value.code == 1
    error = capsys.readouterr().err
    assert "no psql client found" in error and settings.require_database_url() in error

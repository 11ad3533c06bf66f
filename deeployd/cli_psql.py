"""`deeployd psql`: a psql shell on the database `deeployd dev` runs (or DATABASE_URL's).

The embedded PostgreSQL listens only on a Unix socket; pgserver records the socket directory in
`<data-dir>/pg/postmaster.pid`, which is where `deeployd dev` itself gets the URL from. Arguments
after the command go to psql as they are (`deeployd psql -c 'select 1'`); `--url` prints the
connection URL instead, for any other client.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import warnings
from pathlib import Path

from deeployd.settings import get_settings


class DatabaseNotRunning(Exception):
    """No database to connect to: the message says what to start."""


def embedded_database_url(pgdata: Path) -> str:
    """The URL of the embedded server running on `pgdata`; DatabaseNotRunning if there is none."""
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
        warnings.simplefilter("ignore")
        from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata) if (pgdata / "PG_VERSION").exists() else None
    socket = info.socket_path if info is not None else None
    if info is None or not info.is_running() or (socket is not None and not socket.exists()):
        raise DatabaseNotRunning(
            f"the embedded PostgreSQL is not running (no server on {pgdata}); "
            "start the stack with `make dev` (or `deeployd dev`), or set DATABASE_URL"
        )
    return info.get_uri()


def database_url(data_dir: str | None) -> str:
    """DATABASE_URL when set (as `deeployd dev` does), else the embedded server's."""
    external = os.environ.get("DATABASE_URL")
    if external:
        return external
    return embedded_database_url(Path(data_dir or get_settings().data_dir).resolve() / "pg")


def psql_client() -> str | None:
    """The psql shipped with pgserver (the server's own version), else one on PATH."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver._commands import POSTGRES_BIN_PATH

        bundled = Path(POSTGRES_BIN_PATH) / "psql"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    return shutil.which("psql")


def cmd_psql(args: argparse.Namespace) -> int:
    try:
        url = database_url(args.data_dir)
    except DatabaseNotRunning as exc:
        print(f"deeployd psql: {exc}", file=sys.stderr)
        return 1
    if args.url:
        print(url)
        return 0
    client = psql_client()
    if client is None:
        print(
            "deeployd psql: no psql client found (install PostgreSQL's client, e.g. "
            f"`apt-get install postgresql-client`), or connect another client to {url}",
            file=sys.stderr,
        )
        return 1
    sys.stdout.flush()
    os.execv(client, [client, url, *args.psql_args])
    return 0  # not reached: psql replaced this process


def add_psql_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    psql = sub.add_parser(
        "psql",
        help="open psql on the embedded database (extra arguments go to psql)",
        description="Open psql on the database `deeployd dev` runs (DATABASE_URL if set). "
        "Arguments it does not know go to psql, e.g. `deeployd psql -c 'select 1'`.",
        allow_abbrev=False,
    )
    psql.add_argument("--url", action="store_true", help="print the connection URL and exit")
    psql.add_argument("--data-dir", help="where `deeployd dev` keeps its data (default .deeployd)")
    psql.set_defaults(func=cmd_psql, psql_args=[], passes_unknown_args=True)

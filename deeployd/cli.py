"""The `deeployd` command: dev (the whole stack, embedded), migrate, api, worker."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from deeployd.devstack import EmbeddedPostgres, Supervisor, start_temporal_dev_server, wait_for_port
from deeployd.logging import configure_logging
from deeployd.security import SecretBox, generate_api_key
from deeployd.settings import Settings, get_settings


def cmd_migrate(_: argparse.Namespace) -> int:
    settings = get_settings()
    _migrate_and_register(settings)
    if settings.bootstrap_api_key:
        asyncio.run(_bootstrap_org(settings, settings.bootstrap_api_key))
        print("default organisation has the bootstrap admin key")
    print("database and Temporal search attributes are up to date")
    return 0


def _migrate_and_register(settings: Settings) -> None:
    from deeployd import migrations, temporal

    migrations.upgrade(settings.require_database_url())

    async def register() -> None:
        client = await temporal.connect(settings)
        await temporal.ensure_search_attributes(client)

    if settings.temporal_address:
        asyncio.run(register())


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "api.main:app",
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        timeout_graceful_shutdown=5,
        log_config=None,
    )
    return 0


def cmd_worker(_: argparse.Namespace) -> int:
    import worker

    worker.main()
    return 0


def _read_or_create(path: Path, factory: Callable[[], str]) -> str:
    if path.exists():
        return path.read_text().strip()
    value: str = factory()
    path.write_text(value + "\n")
    path.chmod(0o600)
    return value


async def _bootstrap_org(settings: Settings, key: str) -> str:
    """Ensure the default organisation exists with `key` as an admin key; returns the org id."""
    from deeployd.db import Database
    from deeployd.orgs import bootstrap

    db = Database(settings.require_database_url(), pool_size=2)
    try:
        async with db.session() as session:
            org, _ = await bootstrap(session, bootstrap_key=key)
    finally:
        await db.close()
    return org.id


async def _bootstrap_key(settings: Settings, key_file: Path) -> str:
    """The dev admin key: DEEPLOYD_BOOTSTRAP_API_KEY, else the one kept in <data-dir>/dev-api-key."""
    key = settings.bootstrap_api_key or _read_or_create(key_file, generate_api_key)
    org_id = await _bootstrap_org(settings, key)
    from deeployd.cli_agents import ensure_demo_agent_for

    await ensure_demo_agent_for(settings, org_id)  # streaming, tools, approvals: no API key
    return key


def private_urls_notice(allowed: bool, raw: str | None) -> str:
    """The banner line saying whether outbound calls may reach private addresses, and why."""
    if raw is None:
        why = "DEEPLOYD_ALLOW_PRIVATE_URLS unset: the dev default; set it to false to refuse them"
    else:
        why = f"DEEPLOYD_ALLOW_PRIVATE_URLS={raw}"
    state = "allowed" if allowed else "refused"
    return f"  Private URLs   {state} ({why})\n"


def cmd_dev(args: argparse.Namespace) -> int:
    configure_logging("WARNING", json_lines=False)
    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    private_urls_env = os.environ.get("DEEPLOYD_ALLOW_PRIVATE_URLS")
    env: dict[str, str] = {
        "DEEPLOYD_DATA_DIR": str(data_dir),
        "DEEPLOYD_ALLOW_PRIVATE_URLS": os.environ.get("DEEPLOYD_ALLOW_PRIVATE_URLS", "true"),
        "DEEPLOYD_LOG_JSON": os.environ.get("DEEPLOYD_LOG_JSON", "false"),
        "DEEPLOYD_SECRET_KEY": os.environ.get("DEEPLOYD_SECRET_KEY")
        or _read_or_create(data_dir / "secret-key", SecretBox.generate_key),
    }
    supervisor = Supervisor(on_event=_announce)
    postgres: EmbeddedPostgres | None = None
    stopping = False

    def request_stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        if os.environ.get("DATABASE_URL"):
            env["DATABASE_URL"] = os.environ["DATABASE_URL"]
        else:
            print(f"starting PostgreSQL (data in {data_dir / 'pg'}) …", flush=True)
            postgres = EmbeddedPostgres(data_dir / "pg")
            env["DATABASE_URL"] = postgres.url
        ui_url = os.environ.get("DEEPLOYD_TEMPORAL_UI_URL", f"http://localhost:{args.ui_port}")
        if os.environ.get("TEMPORAL_ADDRESS"):
            env["TEMPORAL_ADDRESS"] = os.environ["TEMPORAL_ADDRESS"]
        else:
            print(
                f"starting Temporal dev server (history in {data_dir / 'temporal.db'}) …",
                flush=True,
            )

            def start_temporal() -> subprocess.Popen[bytes]:
                return start_temporal_dev_server(
                    port=args.temporal_port,
                    ui_port=args.ui_port,
                    db_file=data_dir / "temporal.db",
                    log_file=data_dir / "temporal.log",
                )

            supervisor.adopt("temporal", start_temporal(), start_temporal)
            env["TEMPORAL_ADDRESS"] = f"127.0.0.1:{args.temporal_port}"
        env["DEEPLOYD_TEMPORAL_UI_URL"] = ui_url
        os.environ.update(env)
        settings = Settings()
        _migrate_and_register(settings)
        api_key = asyncio.run(_bootstrap_key(settings, data_dir / "dev-api-key"))

        supervisor.spawn("worker", [sys.executable, "-m", "worker"], env)
        api = supervisor.spawn(
            "api",
            [
                sys.executable,
                "-m",
                "deeployd.cli",
                "api",
                "--host",
                args.host,
                "--port",
                str(args.api_port),
            ],
            env,
        )
        wait_for_port(args.host, args.api_port, timeout=60, process=api)
        api_url = f"http://{'localhost' if args.host in ('127.0.0.1', '0.0.0.0') else args.host}:{args.api_port}"
        _wait_healthy(api_url)
        print(
            "\nDeeployd Streaming is running\n"
            f"  API            {api_url}\n"
            f"  OpenAPI docs   {api_url}/docs\n"
            f"  Temporal UI    {ui_url}\n"
            f"  API key        {api_key}\n"
            + private_urls_notice(settings.allow_private_urls, private_urls_env)
            + "\nPress Ctrl-C to stop everything.\n",
            flush=True,
        )
        # Only Ctrl-C stops the stack: a child that dies is restarted (with backoff).
        postgres_down_since: float | None = None
        while not stopping:
            supervisor.poll()
            if postgres is not None and not postgres.is_running():
                postgres_down_since = _restart_postgres(postgres, postgres_down_since)
            else:
                postgres_down_since = None
            time.sleep(0.3)
        return 0
    finally:
        print("stopping …", flush=True)
        supervisor.stop_all()
        if postgres is not None:
            postgres.stop()
        print("stopped", flush=True)


def _announce(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def _restart_postgres(postgres: EmbeddedPostgres, down_since: float | None) -> float | None:
    """Start the embedded PostgreSQL again after a crash; returns when it went down if the
    restart failed (the next poll tries again), else None."""
    now = time.monotonic()
    if down_since is None:
        _announce("PostgreSQL stopped; restarting it")
        down_since = now
    try:
        postgres.restart()
    except Exception as exc:  # e.g. shared memory still held by exiting backends
        _announce(f"PostgreSQL could not be restarted yet ({exc}); retrying")
        time.sleep(min(5.0, 0.5 + (now - down_since) / 4))
        return down_since
    _announce(f"PostgreSQL restarted (pid {postgres.pid})")
    return None


def _wait_healthy(api_url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{api_url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    print("warning: the API did not report healthy in time; see its log above", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deeployd", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="run the whole stack locally on embedded defaults")
    dev.add_argument("--api-port", type=int, default=8000)
    dev.add_argument("--temporal-port", type=int, default=7233)
    dev.add_argument("--ui-port", type=int, default=8233)
    dev.add_argument("--data-dir", default=".deeployd")
    dev.add_argument("--host", default="127.0.0.1", help="address the API listens on")
    dev.set_defaults(func=cmd_dev)

    sub.add_parser(
        "migrate", help="apply database migrations and register search attributes"
    ).set_defaults(func=cmd_migrate)

    api = sub.add_parser("api", help="serve the HTTP API (uvicorn)")
    api.add_argument("--host", default=None)
    api.add_argument("--port", type=int, default=None)
    api.set_defaults(func=cmd_api)

    sub.add_parser("worker", help="run the Temporal worker").set_defaults(func=cmd_worker)

    from deeployd.cli_agents import add_agent_commands

    add_agent_commands(sub)

    from deeployd.voice.cli import add_say_command

    add_say_command(sub)

    from deeployd.cli_psql import add_psql_command

    add_psql_command(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        if not getattr(args, "passes_unknown_args", False):
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        args.psql_args = unknown  # `deeployd psql -c 'select 1'`: psql's own options
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()

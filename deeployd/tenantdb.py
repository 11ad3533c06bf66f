"""Tenant access to PostgreSQL: external DSNs checked before any connection, and the platform
database reached only through a role confined to the organisation's own schema.

External DSNs (a `${secrets.…}` holding a PostgreSQL connection string) are parsed with
libpq's own rules (`conninfo_to_dict`: URI and key=value forms) and refused when
- any `host` is a unix socket (starts with `/` or `@`, or is empty: libpq's default socket);
- any `host` or `hostaddr` (comma-separated lists too) fails the outbound address guard;
- a parameter makes libpq read a local file (`service`, `passfile`, `sslkey`, …);
- it points at the platform's own database (same address and port, or, once connected, the
  same `system_identifier`).
The checked addresses are pinned as `hostaddr` so the connection goes where the check looked,
and connection errors are one generic message (they would otherwise tell whether a port answers).

The platform database: each organisation has a NOLOGIN role `deeployd_org_<id>` with rights on
its schema `pipeline_<orgId>` only (`ensure_org_role`), granted to the application's role. Work
on an organisation's tables runs inside `org_transaction`: `SET LOCAL ROLE` to that role and
`search_path` pinned to the organisation's schema.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from deeployd import netguard

log = logging.getLogger(__name__)

CONNECT_FAILED = "cannot connect to the database named by the connection secret"
_CONNECT_TIMEOUT_S = 10
# Parameters that make libpq read files on the worker's disk.
FILE_PARAMETERS = frozenset(
    {
        "service",
        "servicefile",
        "passfile",
        "sslkey",
        "sslcert",
        "sslrootcert",
        "sslcrl",
        "sslcrldir",
        "sslkeylogfile",
    }
)


class UnsafeDSNError(ValueError):
    """The connection secret may not be used (the message never contains the secret)."""


def org_schema(org_id: str) -> str:
    """The platform-database schema an organisation's pipelines may use."""
    return "pipeline_" + re.sub(r"[^a-z0-9_]", "_", org_id.lower())


def org_role(org_id: str) -> str:
    """The NOLOGIN role that owns an organisation's rights on its schema."""
    name = re.sub(r"[^a-z0-9_]", "_", org_id.lower())
    return ("deeployd_org_" + name.removeprefix("org_"))[:63]


# --- external DSNs ---------------------------------------------------------------------------


def _split(value: object) -> list[str]:
    return [part.strip() for part in str(value or "").split(",")]


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = netguard.embedded_ipv4(ip)
        if embedded:
            return any(v4.is_loopback or v4.is_unspecified for v4 in embedded)
    return ip.is_loopback or ip.is_unspecified


async def _platform_endpoints(database_url: str | None) -> set[tuple[str, str]] | None:
    """(address, port) pairs of the platform database; None when it is reached over a socket
    (or unknown) only. Loopback addresses are all spelled "loopback"."""
    if not database_url:
        return None
    try:
        info = conninfo_to_dict(database_url)
    except psycopg.ProgrammingError:
        return None
    hosts = _split(info.get("host"))
    addrs = _split(info.get("hostaddr"))
    ports = _split(info.get("port"))
    endpoints: set[tuple[str, str]] = set()
    for index, host in enumerate(hosts):
        port = (ports[index] if index < len(ports) else ports[0]) or "5432"
        addr = addrs[index] if index < len(addrs) else ""
        candidates: list[str] = []
        if addr:
            candidates = [addr]
        elif host and not host.startswith(("/", "@")):
            try:
                candidates = await netguard.resolve(host, int(port))
            except (netguard.UnsafeURLError, ValueError):
                candidates = []
        for address in candidates:
            endpoints.add(("loopback" if _is_loopback(address) else address, port))
    return endpoints


async def check_dsn(dsn: str, *, allow_private: bool, platform_url: str | None) -> str:
    """Check a tenant's DSN without connecting; returns the connection string to use (checked
    addresses pinned as `hostaddr`). Raises UnsafeDSNError."""
    try:
        info = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        raise UnsafeDSNError("not a valid PostgreSQL connection string") from None
    file_parameters = sorted(FILE_PARAMETERS & set(info))
    if file_parameters:
        raise UnsafeDSNError(
            f"the {file_parameters[0]!r} parameter is not allowed (it reads local files)"
        )
    dbname = str(info.get("dbname") or "")
    if "=" in dbname or "://" in dbname:
        raise UnsafeDSNError("dbname must be a database name")
    hosts = _split(info.get("host"))
    hostaddrs = _split(info.get("hostaddr")) if info.get("hostaddr") else []
    if hostaddrs and len(hostaddrs) != len(hosts):
        if hosts == [""]:
            hosts = [""] * len(hostaddrs)
        else:
            raise UnsafeDSNError("host and hostaddr must list the same number of entries")
    ports = _split(info.get("port")) if info.get("port") else ["5432"]
    if len(ports) not in (1, len(hosts)):
        raise UnsafeDSNError("port must be one port or one per host")
    platform = await _platform_endpoints(platform_url)
    pinned: list[str] = []
    out_ports: list[str] = []
    for index, host in enumerate(hosts):
        hostaddr = hostaddrs[index] if hostaddrs else ""
        port = (ports[index] if len(ports) > 1 else ports[0]) or "5432"
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise UnsafeDSNError("port must be a number between 1 and 65535")
        if hostaddr:
            try:
                ipaddress.ip_address(hostaddr)
            except ValueError:
                raise UnsafeDSNError("hostaddr must be an IP address") from None
            addresses = [hostaddr]
        elif not host or host.startswith(("/", "@")):
            raise UnsafeDSNError("unix-socket connections are not allowed; name a TCP host")
        else:
            try:
                addresses = await netguard.resolve(host, int(port))
            except netguard.UnsafeURLError:
                raise UnsafeDSNError(f"cannot resolve database host {host!r}") from None
        for address in addresses:
            try:
                await netguard.check_host(address, int(port), allow_private=allow_private)
            except netguard.UnsafeURLError as exc:
                raise UnsafeDSNError(f"refused database host: {exc}") from None
            spelled = "loopback" if _is_loopback(address) else address
            if platform and (spelled, port) in platform:
                raise UnsafeDSNError("the connection secret points at the platform's own database")
        pinned.append(addresses[0].split("%")[0])
        out_ports.append(port)
    params: dict[str, Any] = {k: v for k, v in info.items() if k not in ("host", "hostaddr")}
    # Keep the names for TLS verification; connect to the addresses that were checked.
    params["host"] = ",".join(host or address for host, address in zip(hosts, pinned, strict=True))
    params["hostaddr"] = ",".join(pinned)
    params["port"] = ",".join(out_ports)
    params["passfile"] = os.devnull  # never ~/.pgpass of the worker
    # Never the worker's own Kerberos/SSPI identity (its credential cache) either.
    params["gssencmode"] = "disable"
    if psycopg.pq.version() >= 160000:
        required = str(params.get("require_auth") or "")
        if "gss" in required or "sspi" in required:
            raise UnsafeDSNError("GSSAPI/SSPI authentication is not allowed")
        params.setdefault("require_auth", "!gss,!sspi")
    try:
        timeout = int(str(params.get("connect_timeout") or _CONNECT_TIMEOUT_S))
    except ValueError:
        raise UnsafeDSNError("connect_timeout must be a number of seconds") from None
    params["connect_timeout"] = str(min(max(timeout, 1), _CONNECT_TIMEOUT_S))  # bounded wait
    return make_conninfo("", **params)


_platform_identity: dict[str, int | None] = {}


async def _system_identifier(conn: psycopg.AsyncConnection[Any]) -> int | None:
    try:
        cursor = await conn.execute("SELECT system_identifier FROM pg_control_system()")
        row = await cursor.fetchone()
    except psycopg.Error:
        return None
    return int(row[0]) if row else None


async def platform_identity(pool: Any) -> int | None:
    """The platform cluster's `system_identifier` (cached per process)."""
    key = str(getattr(pool, "conninfo", id(pool)))
    if key not in _platform_identity:
        async with pool.connection() as conn:
            _platform_identity[key] = await _system_identifier(conn)
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                await conn.rollback()
    return _platform_identity[key]


@asynccontextmanager
async def connect_external(
    dsn: str, *, allow_private: bool, platform_url: str | None, platform_pool: Any
) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """An autocommit connection to a tenant's own database, checked before and after connecting.

    Raises UnsafeDSNError for a refused DSN and psycopg.OperationalError(CONNECT_FAILED) when
    the server cannot be reached (whatever the reason).
    """
    conninfo = await check_dsn(dsn, allow_private=allow_private, platform_url=platform_url)
    try:
        conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
    except psycopg.OperationalError:
        raise psycopg.OperationalError(CONNECT_FAILED) from None
    async with conn:
        ours = await platform_identity(platform_pool)
        if ours is not None and await _system_identifier(conn) == ours:
            raise UnsafeDSNError("the connection secret points at the platform's own database")
        yield conn


# --- the platform database: one confined role per organisation -------------------------------

_ensured: set[tuple[str, str]] = set()


async def ensure_org_role(conn: psycopg.AsyncConnection[Any], org_id: str) -> None:
    """Create (idempotently) the organisation's schema and NOLOGIN role, with rights on that
    schema only, and let the application's role switch to it. Runs in its own transaction."""
    schema, role = org_schema(org_id), org_role(org_id)
    async with conn.transaction():
        # Roles are cluster-wide: one creator at a time.
        await conn.execute("SELECT pg_advisory_xact_lock(7265008)")
        cursor = await conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
        if await cursor.fetchone() is None:
            await conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        await conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(role)))
        await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        for statement in (
            "GRANT USAGE, CREATE ON SCHEMA {s} TO {r}",
            "GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER "
            "ON ALL TABLES IN SCHEMA {s} TO {r}",
            "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {s} TO {r}",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT, INSERT, UPDATE, DELETE, "
            "TRUNCATE, REFERENCES, TRIGGER ON TABLES TO {r}",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT USAGE, SELECT, UPDATE "
            "ON SEQUENCES TO {r}",
        ):
            await conn.execute(
                sql.SQL(statement).format(s=sql.Identifier(schema), r=sql.Identifier(role))
            )
    _ensured.add((str(conn.info.dsn), org_id))


def forget_org_role(org_id: str | None = None) -> None:
    """Make the next `org_transaction` re-apply the grants (e.g. a table created by another role)."""
    if org_id is None:
        _ensured.clear()
    else:
        for key in [k for k in _ensured if k[1] == org_id]:
            _ensured.discard(key)


@asynccontextmanager
async def org_transaction(
    conn: psycopg.AsyncConnection[Any], org_id: str
) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A transaction on the platform database running as the organisation's confined role."""
    if (str(conn.info.dsn), org_id) not in _ensured:
        await ensure_org_role(conn, org_id)
    async with conn.transaction():
        await conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(org_role(org_id))))
        await conn.execute(
            sql.SQL("SET LOCAL search_path = pg_catalog, {}").format(
                sql.Identifier(org_schema(org_id))
            )
        )
        yield conn

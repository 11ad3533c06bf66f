"""A second, separate PostgreSQL server listening on loopback TCP: "another database" that a
tenant's connection secret may point at (the platform's own database is refused).

Built from the binaries the `pgserver` package ships (the same PostgreSQL the platform embeds),
with its own data directory, `-h 127.0.0.1 -p <free port>` and no unix socket.
"""

from __future__ import annotations

import os
import platform
import pwd
from pathlib import Path

from pgserver import _commands as pg
from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

from deeployd.devstack import free_port


class ExternalPostgres:
    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self.port = free_port()
        self.user: str | None = None
        pgdata.mkdir(parents=True, exist_ok=True)
        if platform.system() != "Windows" and os.geteuid() == 0:
            # PostgreSQL refuses to run as root.
            self.user = "pgserver"
            ensure_user_exists(self.user)
            ensure_prefix_permissions(pgdata)
            entry = pwd.getpwnam(self.user)
            os.chown(pgdata, entry.pw_uid, entry.pw_gid)
        pg.initdb(  # type: ignore[attr-defined]
            ["--auth=trust", "--encoding=utf8", "-U", "postgres"], pgdata=pgdata, user=self.user
        )
        pg.pg_ctl(  # type: ignore[attr-defined]
            ["-w", "-o", f"-h 127.0.0.1 -p {self.port} -k ''", "-l", str(pgdata / "log"), "start"],
            pgdata=pgdata,
            user=self.user,
            timeout=60,
        )
        self.dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def stop(self) -> None:
        pg.pg_ctl(  # type: ignore[attr-defined]
            ["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.user, timeout=60
        )

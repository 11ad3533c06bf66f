"""Tenant roles: one NOLOGIN role per organisation with rights on its own schema only.

The `database` destination writes the platform database as that role (`SET LOCAL ROLE`), so
its statements can reach nothing but the organisation's schema `pipeline_<orgId>`. New
organisations get theirs on first use (`deeployd.tenantdb.ensure_org_role`). The CDC capture
function runs as its owner (writes by an organisation role still reach the change table), and
only its owner may attach it to a table.

Revision ID: 0008_tenant_roles
Revises: 0001_foundation
"""

import re

from alembic import op
from sqlalchemy import text

revision = "0008_tenant_roles"
down_revision = "0001_foundation"
branch_labels = None
depends_on = "0003_pipeline_sources"

# A frozen copy of deeployd.tenantdb.ensure_org_role at this revision.
_GRANTS = (
    "GRANT USAGE, CREATE ON SCHEMA {s} TO {r}",
    "GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER "
    "ON ALL TABLES IN SCHEMA {s} TO {r}",
    "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {s} TO {r}",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT, INSERT, UPDATE, DELETE, "
    "TRUNCATE, REFERENCES, TRIGGER ON TABLES TO {r}",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {r}",
)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def upgrade() -> None:
    conn = op.get_bind()
    conn.execute(text("SELECT pg_advisory_xact_lock(7265008)"))
    # Nobody but the platform creates objects in `public` (the PostgreSQL 15+ default); only
    # the schema's owner may say so.
    owns_public = conn.execute(
        text(
            "SELECT pg_has_role(current_user, nspowner, 'USAGE') FROM pg_namespace "
            "WHERE nspname = 'public'"
        )
    ).scalar()
    if owns_public:
        conn.execute(text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
    conn.execute(text("ALTER FUNCTION deeployd_cdc_capture() SECURITY DEFINER"))
    conn.execute(text("REVOKE EXECUTE ON FUNCTION deeployd_cdc_capture() FROM PUBLIC"))
    may_create_roles = conn.execute(
        text("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")
    ).scalar()
    if not may_create_roles:
        return  # each organisation's first database write creates its role (and says why not)
    for (org_id,) in conn.execute(text("SELECT id FROM organizations")).fetchall():
        safe = re.sub(r"[^a-z0-9_]", "_", str(org_id).lower())
        schema = _quote("pipeline_" + safe)
        role_name = ("deeployd_org_" + safe.removeprefix("org_"))[:63]
        role = _quote(role_name)
        exists = conn.execute(
            text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role_name}
        ).first()
        if exists is None:
            conn.execute(text(f"CREATE ROLE {role} NOLOGIN"))
        conn.execute(text(f"GRANT {role} TO CURRENT_USER"))
        conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
        for statement in _GRANTS:
            conn.execute(text(statement.format(s=schema, r=role)))


def downgrade() -> None:
    conn = op.get_bind()
    conn.execute(text("GRANT EXECUTE ON FUNCTION deeployd_cdc_capture() TO PUBLIC"))
    conn.execute(text("ALTER FUNCTION deeployd_cdc_capture() SECURITY INVOKER"))

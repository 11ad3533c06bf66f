"""Readable, prefixed identifiers (`org_…`, `key_…`) that are easy to spot in logs and the Temporal UI."""

import secrets


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"

"""API keys, scopes, secrets and organisation isolation over the real HTTP API."""

from __future__ import annotations

import httpx

from deeployd.db import Database
from deeployd.models import ApiKey, Secret
from tests.conftest import Org, RunningApi, make_org


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_missing_or_bad_key_gets_401(api: RunningApi, org: Org) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        missing = await http.get("/api/me")
        wrong = await http.get("/api/me", headers=bearer("dk_not-a-real-key"))
        wrong_scheme = await http.get(
            "/api/me", headers={"Authorization": f"Basic {org.admin_key}"}
        )
        good = await http.get("/api/me", headers=bearer(org.admin_key))
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 401
    assert wrong_scheme.status_code == 401
    assert good.status_code == 200
    assert good.json()["orgId"] == org.id
    assert good.json()["scopes"] == ["admin"]


async def test_keys_are_stored_hashed_shown_once_and_revocable(api: RunningApi, org: Org) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=bearer(org.admin_key)) as http:
        created = await http.post("/api/keys", json={"name": "ci", "scopes": ["read"]})
        assert created.status_code == 201
        body = created.json()
        key = body["key"]
        assert key.startswith("dk_") and body["prefix"] == key[:10]
        listed = (await http.get("/api/keys")).json()
        assert all("key" not in k and "keyHash" not in k for k in listed)
        assert body["id"] in [k["id"] for k in listed]

        assert (await http.get("/api/me", headers=bearer(key))).status_code == 200
        assert (await http.delete(f"/api/keys/{body['id']}")).status_code == 204
        assert (await http.get("/api/me", headers=bearer(key))).status_code == 401

    db = Database(api.settings.require_database_url(), pool_size=1)
    try:
        async with db.session() as session:
            row = await session.get(ApiKey, body["id"])
    finally:
        await db.close()
    assert row is not None and row.revoked_at is not None
    assert key not in row.key_hash and len(row.key_hash) == 64


async def test_scopes_limit_what_a_key_may_do(api: RunningApi, settings) -> None:
    reader = await make_org(settings, scopes=("read",))
    async with httpx.AsyncClient(base_url=api.url, headers=bearer(reader.admin_key)) as http:
        assert (await http.get("/api/me")).status_code == 200
        assert (await http.get("/api/secrets")).status_code == 200
        assert (await http.post("/api/keys", json={"name": "x"})).status_code == 403
        denied = await http.post("/api/secrets", json={"name": "A", "value": "b"})
    assert denied.status_code == 403
    assert "write" in denied.json()["detail"]


async def test_secrets_are_encrypted_at_rest_and_never_returned(api: RunningApi, org: Org) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=bearer(org.admin_key)) as http:
        created = await http.post(
            "/api/secrets", json={"name": "SLACK_WEBHOOK", "value": "https://hooks/s3cr3t"}
        )
        replaced = await http.post(
            "/api/secrets", json={"name": "SLACK_WEBHOOK", "value": "https://hooks/n3w"}
        )
        listed = await http.get("/api/secrets")
    assert created.status_code == replaced.status_code == 201
    assert "s3cr3t" not in created.text and "n3w" not in replaced.text + listed.text
    assert [s["name"] for s in listed.json()] == ["SLACK_WEBHOOK"]

    db = Database(api.settings.require_database_url(), pool_size=1)
    try:
        async with db.session() as session:
            from sqlmodel import select

            rows = list(await session.exec(select(Secret).where(Secret.org_id == org.id)))
    finally:
        await db.close()
    assert len(rows) == 1
    assert b"n3w" not in rows[0].ciphertext and b"hooks" not in rows[0].ciphertext


async def test_invalid_secret_name_is_a_422_naming_the_field(api: RunningApi, org: Org) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=bearer(org.admin_key)) as http:
        response = await http.post("/api/secrets", json={"name": "not valid!", "value": "x"})
    assert response.status_code == 422
    assert response.json()["errors"][0].startswith("name: ")
    assert "not valid!" not in response.text  # inputs are not echoed back


async def test_another_organisations_resources_are_404_never_data(
    api: RunningApi, org: Org, settings
) -> None:
    other = await make_org(settings)
    async with httpx.AsyncClient(base_url=api.url) as http:
        theirs = (
            await http.post("/api/keys", json={"name": "theirs"}, headers=bearer(other.admin_key))
        ).json()
        await http.post(
            "/api/secrets", json={"name": "THEIRS", "value": "v"}, headers=bearer(other.admin_key)
        )
        revoke = await http.delete(f"/api/keys/{theirs['id']}", headers=bearer(org.admin_key))
        delete_secret = await http.delete("/api/secrets/THEIRS", headers=bearer(org.admin_key))
        my_keys = (await http.get("/api/keys", headers=bearer(org.admin_key))).json()
        my_secrets = (await http.get("/api/secrets", headers=bearer(org.admin_key))).json()
        still_works = await http.get("/api/me", headers=bearer(theirs["key"]))
    assert revoke.status_code == 404 and delete_secret.status_code == 404
    assert theirs["id"] not in [k["id"] for k in my_keys]
    assert my_secrets == []
    assert still_works.status_code == 200

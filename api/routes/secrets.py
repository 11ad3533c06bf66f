from fastapi import APIRouter, HTTPException, status

from api.deps import CurrentPrincipal, SecretStoreDep, WritePrincipal
from deeployd.models import SecretCreate, SecretPublic

router = APIRouter(prefix="/api/secrets", tags=["secrets"])


@router.post("", status_code=201, response_model=SecretPublic, response_model_by_alias=True)
async def put_secret(
    body: SecretCreate, principal: WritePrincipal, store: SecretStoreDep
) -> SecretPublic:
    """Create or replace a secret. Its value is encrypted at rest and never returned."""
    row = await store.put(principal.org_id, body.name, body.value)
    return SecretPublic(name=row.name, created_at=row.created_at, updated_at=row.updated_at)


@router.get("", response_model=list[SecretPublic], response_model_by_alias=True)
async def list_secrets(principal: CurrentPrincipal, store: SecretStoreDep) -> list[SecretPublic]:
    return [
        SecretPublic(name=r.name, created_at=r.created_at, updated_at=r.updated_at)
        for r in await store.list(principal.org_id)
    ]


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_secret(name: str, principal: WritePrincipal, store: SecretStoreDep) -> None:
    if not await store.delete(principal.org_id, name):
        raise HTTPException(404, "secret not found")

from fastapi import APIRouter, HTTPException, Request, status
from sqlmodel import col, select

from api.deps import AdminPrincipal, SessionDep
from deeployd.models import ApiKey, ApiKeyCreate, ApiKeyCreated, ApiKeyPublic, utcnow
from deeployd.orgs import KeyAuthenticator, create_api_key

router = APIRouter(prefix="/api/keys", tags=["auth"])


@router.post("", status_code=201, response_model=ApiKeyCreated, response_model_by_alias=True)
async def create_key(
    body: ApiKeyCreate, principal: AdminPrincipal, session: SessionDep
) -> ApiKeyCreated:
    row, plain = await create_api_key(
        session, principal.org_id, body.name, [str(s) for s in body.scopes]
    )
    return ApiKeyCreated.model_validate({**row.model_dump(), "key": plain})


@router.get("", response_model=list[ApiKeyPublic], response_model_by_alias=True)
async def list_keys(principal: AdminPrincipal, session: SessionDep) -> list[ApiKey]:
    rows = await session.exec(
        select(ApiKey).where(ApiKey.org_id == principal.org_id).order_by(col(ApiKey.created_at))
    )
    return list(rows)


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_key(
    key_id: str, request: Request, principal: AdminPrincipal, session: SessionDep
) -> None:
    row = (
        await session.exec(
            select(ApiKey).where(ApiKey.id == key_id, ApiKey.org_id == principal.org_id)
        )
    ).first()
    if row is None:
        raise HTTPException(404, "API key not found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.add(row)
        await session.commit()
    authenticator: KeyAuthenticator = request.app.state.authenticator
    authenticator.forget(row.key_hash)

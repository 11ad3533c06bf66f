from fastapi import APIRouter, Request, status

from api.deps import AdminPrincipal, SessionDep
from deeployd.models import ApiKey, ApiKeyCreate, ApiKeyCreated, ApiKeyPublic
from deeployd.orgs import KeyAuthenticator, create_api_key, list_api_keys, revoke_api_key

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
    return await list_api_keys(session, principal.org_id)


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_key(
    key_id: str, request: Request, principal: AdminPrincipal, session: SessionDep
) -> None:
    row = await revoke_api_key(session, principal.org_id, key_id)
    authenticator: KeyAuthenticator = request.app.state.authenticator
    authenticator.forget(row.key_hash)

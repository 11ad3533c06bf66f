from fastapi import APIRouter

from api.deps import CurrentPrincipal, SessionDep
from deeployd.models.base import ApiModel
from deeployd.orgs import get_org

router = APIRouter(prefix="/api", tags=["auth"])


class Me(ApiModel):
    org_id: str
    org_name: str
    key_id: str
    key_prefix: str
    scopes: list[str]


@router.get("/me", response_model=Me, response_model_by_alias=True)
async def me(principal: CurrentPrincipal, session: SessionDep) -> Me:
    org = await get_org(session, principal.org_id)
    return Me(
        org_id=org.id,
        org_name=org.name,
        key_id=principal.key_id,
        key_prefix=principal.key_prefix,
        scopes=sorted(principal.scopes),
    )

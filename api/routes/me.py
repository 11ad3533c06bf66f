from fastapi import APIRouter, HTTPException
from sqlmodel import select

from api.deps import CurrentPrincipal, SessionDep
from deeployd.models import Organization
from deeployd.models.base import ApiModel

router = APIRouter(prefix="/api", tags=["auth"])


class Me(ApiModel):
    org_id: str
    org_name: str
    key_id: str
    key_prefix: str
    scopes: list[str]


@router.get("/me", response_model=Me, response_model_by_alias=True)
async def me(principal: CurrentPrincipal, session: SessionDep) -> Me:
    org = (
        await session.exec(select(Organization).where(Organization.id == principal.org_id))
    ).first()
    if org is None:
        raise HTTPException(404, "organisation not found")
    return Me(
        org_id=org.id,
        org_name=org.name,
        key_id=principal.key_id,
        key_prefix=principal.key_prefix,
        scopes=sorted(principal.scopes),
    )

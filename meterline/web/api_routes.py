"""REST API v1 for fallback routing: each notification kind's route per tenant, and what
is known about reaching a consumer on each channel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from meterline.domain.enums import Reachability, Role
from meterline.domain.routing import ContactInfo, reachability
from meterline.services.routes import list_routes, reset_route, set_route
from meterline.store.models import Consumer, ContactPoint
from meterline.web.auth import Principal, require

router = APIRouter(prefix="/api/v1")


class StepIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    medium: str
    fallback_after_seconds: int | None = None


class RouteIn(BaseModel):
    steps: list[str | StepIn] = Field(
        description='media in order, each a name ("whatsapp") or'
        ' {"medium": "whatsapp", "fallback_after_seconds": 900}'
    )


@router.get("/routes")
def get_routes(
    request: Request, principal: Annotated[Principal, Depends(require(Role.viewer))]
) -> dict[str, Any]:
    with request.app.state.runtime.reader() as session:
        return {"routes": [r.as_json() for r in list_routes(session, principal.tenant_id)]}


@router.put("/routes/{kind}")
def put_route(
    request: Request,
    kind: str,
    payload: RouteIn,
    principal: Annotated[Principal, Depends(require(Role.admin))],
) -> dict[str, Any]:
    steps = [s if isinstance(s, str) else s.model_dump(exclude_unset=True) for s in payload.steps]
    with request.app.state.runtime.sessions() as session, session.begin():
        return set_route(session, principal.tenant_id, kind, steps, by=principal.name).as_json()


@router.delete("/routes/{kind}")
def delete_route(
    request: Request,
    kind: str,
    principal: Annotated[Principal, Depends(require(Role.admin))],
) -> dict[str, Any]:
    with request.app.state.runtime.sessions() as session, session.begin():
        return reset_route(session, principal.tenant_id, kind).as_json()


@router.get("/consumers/{consumer_id}/contacts")
def get_contacts(
    request: Request,
    consumer_id: int,
    principal: Annotated[Principal, Depends(require(Role.viewer))],
) -> dict[str, Any]:
    """The consumer's contact points and their reachability per channel."""
    with request.app.state.runtime.reader() as session:
        found = session.scalar(
            select(Consumer.id).where(
                Consumer.id == consumer_id, Consumer.tenant_id == principal.tenant_id
            )
        )
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no consumer {consumer_id}")
        rows = session.scalars(
            select(ContactPoint)
            .where(
                ContactPoint.tenant_id == principal.tenant_id,
                ContactPoint.consumer_id == consumer_id,
            )
            .order_by(ContactPoint.is_primary.desc(), ContactPoint.kind, ContactPoint.id)
        ).all()
        contacts = []
        for c in rows:
            info = ContactInfo(
                c.id,
                str(c.kind),
                c.value,
                c.whatsapp or Reachability.unknown,
                c.details,
                c.is_primary,
            )
            contacts.append(
                {
                    "id": c.id,
                    "kind": str(c.kind),
                    "value": c.value,
                    "primary": c.is_primary,
                    "reachability": reachability(info),
                    "blocked_at": (c.details or {}).get("blocked_at"),
                }
            )
        return {"consumer_id": consumer_id, "contacts": contacts}

"""REST API v1 for browser push: save and remove a consumer's subscription, and the
tenant's VAPID public key for ``pushManager.subscribe``.

For now these take the tenant's API key (the consumer app that calls them arrives with a
later issue, and will authenticate the consumer itself); every query is scoped to the
key's tenant.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from meterline.domain.enums import Role
from meterline.runtime import Runtime
from meterline.services.errors import ServiceError
from meterline.services.push_subscriptions import (
    remove_subscription,
    save_subscription,
    vapid_public_key,
)
from meterline.web.auth import Principal, require

router = APIRouter(prefix="/api/v1/push")


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


class SubscriptionIn(BaseModel):
    consumer_id: int | None = None
    account_number: str | None = None
    subscription: dict[str, Any] = Field(
        description="the browser's PushSubscription JSON: {endpoint, keys: {p256dh, auth}}"
    )
    language: str | None = Field(None, description="the language the consumer uses the app in")


class UnsubscribeIn(BaseModel):
    endpoint: str


@router.post("/subscriptions")
def post_subscription(
    request: Request,
    payload: SubscriptionIn,
    principal: Annotated[Principal, Depends(require(Role.operator))],
) -> JSONResponse:
    """201 when the subscription is new, 200 when the endpoint was saved before."""
    with _runtime(request).sessions() as session, session.begin():
        saved = save_subscription(
            session,
            principal.tenant_id,
            subscription=payload.subscription,
            consumer_id=payload.consumer_id,
            account_number=payload.account_number,
            language=payload.language,
            allow_local=_runtime(request).settings.push_allow_local_endpoints,
        )
    body = {
        "contact_id": saved.contact_id,
        "consumer_id": saved.consumer_id,
        "created": saved.created,
    }
    return JSONResponse(body, status_code=status.HTTP_201_CREATED if saved.created else 200)


@router.delete("/subscriptions")
def delete_subscription(
    request: Request,
    principal: Annotated[Principal, Depends(require(Role.operator))],
    payload: UnsubscribeIn | None = None,
    endpoint: Annotated[str | None, Query(description="or in the JSON body")] = None,
) -> dict[str, Any]:
    wanted = endpoint or (payload.endpoint if payload is not None else None)
    if not wanted:
        raise ServiceError("give the subscription's endpoint (JSON body or ?endpoint=)")
    with _runtime(request).sessions() as session, session.begin():
        removed = remove_subscription(session, principal.tenant_id, wanted)
    return {"removed": removed}


@router.get("/vapid-public-key")
def get_vapid_public_key(
    request: Request, principal: Annotated[Principal, Depends(require(Role.viewer))]
) -> dict[str, str]:
    with _runtime(request).reader() as session:
        return {"public_key": vapid_public_key(session, principal.tenant_id)}

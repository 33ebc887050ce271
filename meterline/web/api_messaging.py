"""REST API v1 for messaging: estimate, send, list, credit, templates, channel accounts,
transactions (scenario 5) and providers' status callbacks."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from meterline.channels.base import BadCallback, ChannelConfigError, ForgedCallback
from meterline.domain.enums import LedgerKind, Medium, MessageStatus, Role
from meterline.runtime import Runtime
from meterline.services import credit
from meterline.services.channel_accounts import (
    add_channel_account,
    list_channel_accounts,
    public_view,
)
from meterline.services.errors import Conflict, NotFound, ServiceError
from meterline.services.group_commit import GroupCommitter, Post
from meterline.services.inbox import inbox, mark_read
from meterline.services.message_templates import save_template
from meterline.services.notify import Notification, notify
from meterline.services.status_callbacks import handle_callback
from meterline.services.tenants import get_tenant, set_quiet_hours
from meterline.services.transactions import to_minor
from meterline.store import message_queries as mq
from meterline.store.models import ChannelAccount, Tenant
from meterline.web.api_callbacks import read_callback
from meterline.web.auth import Principal, require

router = APIRouter(prefix="/api/v1")


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _now() -> datetime:
    return datetime.now(UTC)


def _tenant(session: Any, principal: Principal) -> Tenant:
    return get_tenant(session, principal.tenant_slug)


# --- SMS estimate ---------------------------------------------------------------------


class EstimateIn(BaseModel):
    text: str


@router.post("/sms/estimate")
def sms_estimate(
    request: Request,
    payload: EstimateIn,
    principal: Annotated[Principal, Depends(require(Role.viewer))],
) -> dict[str, Any]:
    with _runtime(request).sessions() as session:
        tenant = _tenant(session, principal)
        account = credit.credit_account(session, tenant.id)
        session.commit()
        return credit.estimate_view(
            payload.text, account.sms_price_minor, account.max_sms_parts, tenant.currency
        )


# --- messages -------------------------------------------------------------------------


class SendIn(BaseModel):
    to: str | None = Field(None, description="a phone number, read in the tenant's region")
    consumer_id: int | None = None
    kind: str = "custom"
    text: str | None = Field(None, description="the text of a custom message")
    data: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = None
    language: str | None = None
    priority: int | None = None
    promotional: bool = False


@router.post("/messages", status_code=status.HTTP_201_CREATED)
def send_message(
    request: Request,
    payload: SendIn,
    principal: Annotated[Principal, Depends(require(Role.operator))],
) -> dict[str, Any]:
    data = dict(payload.data)
    if payload.kind == "custom":
        if not payload.text:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "text is required")
        data["text"] = payload.text
    key = payload.idempotency_key or f"api:{uuid.uuid4().hex}"
    with _runtime(request).sessions() as session, session.begin():
        tenant = _tenant(session, principal)
        queued = notify(
            session,
            tenant,
            Notification(
                kind=payload.kind,
                data=data,
                idempotency_key=key,
                consumer_id=payload.consumer_id,
                phone=payload.to,
                language=payload.language,
                priority=payload.priority,
                promotional=payload.promotional,
            ),
            now=_now(),
        )
        message = mq.get_message(session, tenant.id, queued.message_id)
        assert message is not None
        body = mq.message_view(message)
    body["created"] = queued.created
    return body


@router.get("/messages")
def get_messages(
    request: Request,
    principal: Annotated[Principal, Depends(require(Role.viewer))],
    status_: Annotated[MessageStatus | None, Query(alias="status")] = None,
    medium: Medium | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    to: str | None = None,
    before_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    flt = mq.MessageFilter(
        status=status_, medium=medium, kind=kind, since=since, until=until, to=to
    )
    with _runtime(request).reader() as session:
        rows = mq.list_messages(session, principal.tenant_id, flt, limit=limit, before_id=before_id)
        return {"messages": [mq.message_view(m) for m in rows]}


@router.get("/messages/{message_id}")
def get_message(
    request: Request,
    message_id: int,
    principal: Annotated[Principal, Depends(require(Role.viewer))],
) -> dict[str, Any]:
    with _runtime(request).reader() as session:
        message = mq.get_message(session, principal.tenant_id, message_id)
        if message is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no message {message_id}")
        body = mq.message_view(message)
        body["events"] = [mq.event_view(e) for e in mq.message_events(session, message.id)]
        return body


# --- a consumer's in-app inbox -----------------------------------------------------


@router.get("/consumers/{consumer_id}/inbox")
def get_inbox(
    request: Request,
    consumer_id: int,
    principal: Annotated[Principal, Depends(require(Role.viewer))],
    unread: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    with _runtime(request).reader() as session:
        rows, unread_count = inbox(
            session, principal.tenant_id, consumer_id, unread_only=unread, limit=limit
        )
        return {
            "unread": unread_count,
            "messages": [
                {
                    "id": m.id,
                    "kind": m.kind,
                    "body": m.body,
                    "at": m.created_at.isoformat(),
                    "read_at": m.inbox_read_at.isoformat() if m.inbox_read_at else None,
                    "status": str(m.status),
                    "medium": str(m.medium),
                }
                for m in rows
            ],
        }


@router.post("/consumers/{consumer_id}/inbox/{message_id}/read")
def post_inbox_read(
    request: Request,
    consumer_id: int,
    message_id: int,
    principal: Annotated[Principal, Depends(require(Role.operator))],
) -> dict[str, Any]:
    with _runtime(request).sessions() as session, session.begin():
        at = mark_read(session, principal.tenant_id, consumer_id, message_id, _now())
    return {"id": message_id, "read_at": at.isoformat()}


# --- credit ---------------------------------------------------------------------------


@router.get("/credit")
def get_credit(
    request: Request, principal: Annotated[Principal, Depends(require(Role.viewer))]
) -> dict[str, Any]:
    with _runtime(request).sessions() as session, session.begin():
        tenant = _tenant(session, principal)
        account = credit.credit_account(session, tenant.id)
        entries = credit.ledger(session, tenant.id, limit=100)
        return {
            "currency": tenant.currency,
            "balance_minor": account.balance_minor,
            "held_minor": account.held_minor,
            "available_minor": account.balance_minor - account.held_minor,
            "overdraft_minor": account.overdraft_minor,
            "sms_price_minor": account.sms_price_minor,
            "max_sms_parts": account.max_sms_parts,
            "ledger": [
                {
                    "id": e.id,
                    "kind": str(e.kind),
                    "amount_minor": e.amount_minor,
                    "messages": e.messages,
                    "message_id": e.message_id,
                    "balance_after_minor": e.balance_after_minor,
                    "held_after_minor": e.held_after_minor,
                    "note": e.note,
                    "by": e.created_by,
                    "at": e.created_at.isoformat(),
                }
                for e in entries
            ],
        }


class TopUpIn(BaseModel):
    amount: str = Field(description="in major units, e.g. '500.00'")
    note: str | None = None


@router.post("/credit/topups", status_code=status.HTTP_201_CREATED)
def post_topup(
    request: Request,
    payload: TopUpIn,
    principal: Annotated[Principal, Depends(require(Role.admin))],
) -> dict[str, Any]:
    with _runtime(request).sessions() as session, session.begin():
        tenant = _tenant(session, principal)
        totals = credit.top_up(
            session,
            tenant.id,
            to_minor(payload.amount, tenant.currency),
            by=principal.name,
            note=payload.note,
        )
    return {"balance_minor": totals.balance_minor, "held_minor": totals.held_minor}


class PricingIn(BaseModel):
    sms_price: str | None = Field(None, description="per SMS segment, in major units")
    overdraft: str | None = None
    max_sms_parts: int | None = None


@router.put("/credit/pricing")
def put_pricing(
    request: Request,
    payload: PricingIn,
    principal: Annotated[Principal, Depends(require(Role.admin))],
) -> dict[str, Any]:
    with _runtime(request).sessions() as session, session.begin():
        tenant = _tenant(session, principal)

        def minor(v: str | None) -> int | None:
            return None if v is None else to_minor(v, tenant.currency, allow_zero=True)

        account = credit.set_pricing(
            session,
            tenant.id,
            sms_price_minor=minor(payload.sms_price),
            overdraft_minor=minor(payload.overdraft),
            max_sms_parts=payload.max_sms_parts,
        )
        return {
            "sms_price_minor": account.sms_price_minor,
            "overdraft_minor": account.overdraft_minor,
            "max_sms_parts": account.max_sms_parts,
        }


# --- quiet hours ----------------------------------------------------------------------


class QuietHoursIn(BaseModel):
    start: str | None = Field(None, description="HH:MM in the tenant's time zone")
    end: str | None = None
    promo_start: str | None = None
    promo_end: str | None = None


@router.put("/quiet-hours")
def put_quiet_hours(
    request: Request,
    payload: QuietHoursIn,
    principal: Annotated[Principal, Depends(require(Role.admin))],
) -> dict[str, Any]:
    with _runtime(request).sessions() as session, session.begin():
        tenant = set_quiet_hours(
            session,
            _tenant(session, principal),
            start=payload.start,
            end=payload.end,
            promo_start=payload.promo_start,
            promo_end=payload.promo_end,
        )
        return {
            "start": tenant.quiet_start,
            "end": tenant.quiet_end,
            "promo_start": tenant.promo_quiet_start,
            "promo_end": tenant.promo_quiet_end,
            "timezone": tenant.timezone,
        }


# --- templates and channel accounts ---------------------------------------------------


class TemplateIn(BaseModel):
    body: str


@router.put("/templates/{kind}/{medium}/{language}")
def put_template(
    request: Request,
    kind: str,
    medium: Medium,
    language: str,
    payload: TemplateIn,
    principal: Annotated[Principal, Depends(require(Role.admin))],
) -> dict[str, Any]:
    with _runtime(request).sessions() as session, session.begin():
        row = save_template(
            session,
            principal.tenant_id,
            kind=kind,
            medium=medium,
            language=language,
            body=payload.body,
            by=principal.name,
        )
        return {
            "kind": row.kind,
            "medium": str(row.medium),
            "language": row.language,
            "body": row.body,
        }


class ChannelIn(BaseModel):
    name: str
    type: str
    config: dict[str, Any] = Field(default_factory=dict)
    medium: Medium | None = None
    rate_per_second: float | None = None  # default: the type's (telegram 30, others 50)
    is_default: bool = True


@router.get("/channels")
def get_channels(
    request: Request, principal: Annotated[Principal, Depends(require(Role.viewer))]
) -> dict[str, Any]:
    with _runtime(request).reader() as session:
        return {
            "channels": [
                public_view(a) for a in list_channel_accounts(session, principal.tenant_id)
            ]
        }


@router.post("/channels", status_code=status.HTTP_201_CREATED)
def post_channel(
    request: Request,
    payload: ChannelIn,
    principal: Annotated[Principal, Depends(require(Role.admin))],
) -> dict[str, Any]:
    with _runtime(request).sessions() as session, session.begin():
        account = add_channel_account(
            session,
            principal.tenant_id,
            name=payload.name,
            type_name=payload.type,
            config=payload.config,
            medium=payload.medium,
            rate_per_second=payload.rate_per_second,
            is_default=payload.is_default,
        )
        view = public_view(account)
    view["callback_url"] = (
        f"{_runtime(request).settings.public_url.rstrip('/')}/api/v1/callbacks/{view['id']}"
    )
    return view


# --- transactions (scenario 5) --------------------------------------------------------


class TransactionIn(BaseModel):
    account: str = Field(description="the account number or payer code")
    type: LedgerKind
    amount: str = Field(description="in major units, e.g. '1500.00'")
    reference: str = Field(min_length=1, max_length=128)
    occurred_at: datetime | None = None
    note: str | None = Field(None, max_length=500)


_COMMITTER_LOCK = threading.Lock()


def _group_committer(request: Request) -> GroupCommitter:
    """The application's one group committer: concurrent posts share transactions."""
    state = request.app.state
    found: GroupCommitter | None = getattr(state, "group_committer", None)
    if found is None:
        with _COMMITTER_LOCK:
            found = getattr(state, "group_committer", None)
            if found is None:
                found = state.group_committer = GroupCommitter(_runtime(request).sessions)
    return found


@router.post("/transactions")
def post_transaction(
    request: Request,
    payload: TransactionIn,
    principal: Annotated[Principal, Depends(require(Role.operator))],
) -> Any:
    if payload.occurred_at is not None and payload.occurred_at.tzinfo is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "occurred_at needs a time zone offset"
        )
    result = _group_committer(request).post(
        principal.tenant_id,
        Post(
            account_number=payload.account,
            kind=payload.type,
            amount=payload.amount,
            reference=payload.reference,
            occurred_at=payload.occurred_at,
            note=payload.note,
        ),
    )
    q = result.message
    body = {
        "created": result.created,
        "ledger_entry_id": result.entry_id,
        "account": result.account,
        "type": str(result.type),
        "amount_minor": result.amount_minor,
        "balance_minor": result.balance_minor,
        "reference": result.reference,
        "message": None
        if q is None
        else {
            "id": q.message_id,
            "status": str(q.status),
            "segments": q.segments,
            "encoding": q.encoding,
            "cost_minor": q.cost_minor,
        },
        "message_error": result.message_error,
    }
    return JSONResponse(body, status_code=201 if result.created else 200)


# --- providers' status callbacks ------------------------------------------------------


@router.post("/callbacks/{channel_account_id}", include_in_schema=False)
async def provider_callback(request: Request, channel_account_id: int) -> dict[str, Any]:
    """No API key here: the channel's own secret or signature proves the sender."""
    cb = await read_callback(request)
    runtime = _runtime(request)

    def work() -> dict[str, Any]:
        with runtime.sessions() as session, session.begin():
            account = session.get(ChannelAccount, channel_account_id)
            if account is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, "no such channel account")
            try:
                report = handle_callback(session, account, cb, _now())
            except ForgedCallback as exc:
                raise HTTPException(status.HTTP_403_FORBIDDEN, f"forged callback: {exc}") from None
            except (BadCallback, ChannelConfigError) as exc:
                raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
            return {"applied": report.applied, "ignored": report.ignored, "unknown": report.unknown}

    return await run_in_threadpool(work)


def install_error_handlers(app: Any) -> None:
    """Use-case refusals become clear HTTP errors: 404, 409, 402 (no credit) or 422."""

    async def handler(_request: Request, exc: Exception) -> JSONResponse:
        code = 422
        if isinstance(exc, NotFound):
            code = 404
        elif isinstance(exc, Conflict):
            code = 409
        elif isinstance(exc, credit.InsufficientCredit):
            code = 402
        assert isinstance(exc, ServiceError)
        return JSONResponse({"detail": exc.message}, status_code=code)

    app.add_exception_handler(ServiceError, handler)

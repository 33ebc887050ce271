"""Payment links on the web: the consumer's pay page (``/p/CODE``), the hand-over to the
gateway, the sandbox gateway's page, gateways' webhooks, and the payments REST API.

The pay pages need no login: the link's code and its signature are the credential. They
are shown in the consumer's language (or ``?lang=``) with the tenant's money and dates.
A browser coming back from the gateway (``/p/CODE/return``) triggers a server-side status
check; its query string is never read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from meterline.domain.enums import LANGUAGES, Role
from meterline.payments.sandbox import SandboxGateway
from meterline.runtime import Runtime
from meterline.services import payments as pay
from meterline.services.errors import ServiceError
from meterline.services.tenants import currency_exponent, get_tenant
from meterline.store.models import Payment, PaymentGateway
from meterline.web.api_callbacks import read_callback
from meterline.web.auth import Principal, require
from meterline.web.console import templates
from meterline.web.i18n import LANGUAGE_NAMES, N_, Formatter, translations

router = APIRouter()

REASONS = {
    "unknown": N_("There is no such payment link. Check the link in your message."),
    "expired": N_("This payment link has expired. Ask the office for a new one."),
    "tampered": N_("This payment link has been altered and cannot be used."),
    "cancelled": N_("This bill was cancelled: there is nothing to pay."),
    "paid": N_("This bill is paid. Thank you!"),
}


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _now(request: Request) -> datetime:
    clock = getattr(request.app.state, "console_clock", None)
    return clock() if clock else datetime.now(UTC)


def _key(request: Request) -> bytes:
    return pay.link_key(_runtime(request).settings.secret_key.get_secret_value())


def _site_url(request: Request) -> str:
    return _runtime(request).settings.public_url


@contextmanager
def _http(request: Request) -> Iterator[httpx.Client]:
    """The app's client for gateway calls if one is set (tests), else a short-lived one."""
    shared = getattr(request.app.state, "payment_http", None)
    if shared is not None:
        yield shared
        return
    with httpx.Client() as client:
        yield client


# --- pay pages -----------------------------------------------------------------------------


def _page(
    request: Request,
    name: str,
    *,
    page: pay.PayPage | None = None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    wanted = request.query_params.get("lang")
    if wanted in LANGUAGES:
        lang = str(wanted)
    elif page is not None and page.consumer_language in LANGUAGES:
        lang = page.consumer_language
    else:
        lang = page.tenant.default_language if page is not None else "en"
    tr = translations(lang)
    fmt = None
    if page is not None:
        t = page.tenant
        fmt = Formatter.create(
            lang, t.country, t.currency, currency_exponent(t.currency), t.timezone
        )
    refused = context.get("refused")
    html = templates.get_template(name).render(
        lang=lang if lang in LANGUAGES else "en",
        languages=LANGUAGE_NAMES,
        page=page,
        fmt=fmt,
        reason_text=tr.gettext(REASONS.get(refused or "", REASONS["unknown"])),
        _translations=tr,
        **context,
    )
    response = HTMLResponse(html, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    # The code in the URL is the credential: never send it on as a referrer.
    response.headers["Referrer-Policy"] = "no-referrer"
    # No form-action limit: the pay button's answer redirects to the gateway's own site.
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'"
    )
    return response


def _refused(request: Request, exc: pay.LinkRefused) -> HTMLResponse:
    return _page(request, "pay.html", refused=exc.reason, status_code=exc.status)


# Messengers fetch a link to draw its preview card the moment it arrives: not a click.
PREVIEW_AGENTS = re.compile(
    r"whatsapp|facebookexternalhit|telegrambot|twitterbot|slackbot|skypeuripreview|"
    r"discordbot|linkedinbot|googlebot|bingbot|viber",
    re.IGNORECASE,
)


@router.get("/p/{code}", include_in_schema=False)
def pay_page(request: Request, code: str, result: str | None = None) -> Response:
    """The link as clicked: verified, the click counted, the bill shown."""
    runtime = _runtime(request)
    person = not PREVIEW_AGENTS.search(request.headers.get("user-agent", ""))
    try:
        with runtime.sessions() as session, session.begin():
            page = pay.open_link(
                session, code, now=_now(request), key=_key(request), count_click=person
            )
            session.expunge_all()
    except pay.LinkRefused as exc:
        return _refused(request, exc)
    notice = result if result in ("declined", "pending") else None
    return _page(request, "pay.html", page=page, notice=notice)


@router.post("/p/{code}/pay", include_in_schema=False)
def pay_start(request: Request, code: str) -> Response:
    """Opens (once) the gateway's checkout for the link and sends the browser there."""
    runtime = _runtime(request)
    lang = request.query_params.get("lang")
    try:
        with _http(request) as http, runtime.sessions() as session, session.begin():
            url = pay.start_checkout(
                session,
                code,
                now=_now(request),
                key=_key(request),
                site_url=_site_url(request),
                http=http,
            )
    except pay.LinkRefused as exc:
        if exc.reason == "paid":
            return RedirectResponse(f"/p/{code}" + (f"?lang={lang}" if lang else ""), 303)
        return _refused(request, exc)
    except ServiceError as exc:
        with runtime.sessions() as session:
            page = pay.open_link(
                session, code, now=_now(request), key=_key(request), count_click=False
            )
            session.expunge_all()
        return _page(request, "pay.html", page=page, error=exc.message, status_code=502)
    return RedirectResponse(url, status_code=303)


@router.get("/p/{code}/return", include_in_schema=False)
def pay_return(request: Request, code: str) -> Response:
    """Where the gateway sends the browser back: we ask the gateway ourselves."""
    runtime = _runtime(request)
    now = _now(request)
    error = None
    try:
        with _http(request) as http, runtime.sessions() as session, session.begin():
            pay.check_status(session, code, now=now, key=_key(request), http=http)
    except pay.LinkRefused as exc:
        return _refused(request, exc)
    except pay.PaymentRefused as exc:
        error = exc.message
    except ServiceError as exc:
        error = exc.message
    try:
        with runtime.sessions() as session:
            page = pay.open_link(session, code, now=now, key=_key(request), count_click=False)
            session.expunge_all()
    except pay.LinkRefused as exc:
        return _refused(request, exc)
    notice = None if page.paid else "pending"
    return _page(request, "pay.html", page=page, notice=notice, error=error)


def _sandbox(request: Request, session: Any, code: str) -> tuple[pay.PayPage, PaymentGateway]:
    page = pay.open_link(session, code, now=_now(request), key=_key(request), count_click=False)
    link = pay.verified_link(session, code, now=_now(request), key=_key(request))
    row = session.get(PaymentGateway, link.gateway_id) if link.gateway_id else None
    if row is None or row.type_name != SandboxGateway.type_name or link.provider_ref is None:
        raise pay.LinkRefused("not a sandbox checkout", status=404, reason="unknown")
    return page, row


@router.get("/p/{code}/sandbox", include_in_schema=False)
def sandbox_page(request: Request, code: str) -> Response:
    try:
        with _runtime(request).sessions() as session:
            page, _ = _sandbox(request, session, code)
            session.expunge_all()
    except pay.LinkRefused as exc:
        return _refused(request, exc)
    return _page(request, "pay_sandbox.html", page=page)


@router.post("/p/{code}/sandbox", include_in_schema=False)
def sandbox_decide(request: Request, code: str, decision: Annotated[str, Form()] = "") -> Response:
    """The sandbox gateway's answer, delivered as its signed webhook (server to server,
    through the same verification as any gateway), never taken from the browser."""
    if decision not in ("approve", "decline"):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "decision: approve or decline")
    runtime = _runtime(request)
    lang = request.query_params.get("lang")
    suffix = f"lang={lang}" if lang in LANGUAGES else ""
    try:
        with runtime.sessions() as session, session.begin():
            page, row = _sandbox(request, session, code)
            if page.paid:  # a second press of Approve: nothing more to pay
                return RedirectResponse(f"/p/{code}" + (f"?{suffix}" if suffix else ""), 303)
            gateway = pay.gateway_for(row)
            assert isinstance(gateway, SandboxGateway)
            signed = gateway.signed_result(
                code, page.amount_minor, page.currency, approve=decision == "approve"
            )
            pay.handle_webhook(session, row.id, signed, now=_now(request), key=_key(request))
    except pay.LinkRefused as exc:
        return _refused(request, exc)
    except pay.PaymentRefused as exc:
        with runtime.sessions() as session:
            page = pay.open_link(
                session, code, now=_now(request), key=_key(request), count_click=False
            )
            session.expunge_all()
        return _page(request, "pay.html", page=page, error=exc.message, status_code=exc.status)
    if decision == "decline":
        return RedirectResponse(
            f"/p/{code}?result=declined" + (f"&{suffix}" if suffix else ""), 303
        )
    return RedirectResponse(f"/p/{code}/return" + (f"?{suffix}" if suffix else ""), 303)


# --- gateways' webhooks --------------------------------------------------------------------


@router.post("/api/v1/payments/webhooks/{gateway_id}", include_in_schema=False)
async def payment_webhook(request: Request, gateway_id: int) -> JSONResponse:
    """No API key: the gateway's signature over the raw body proves the sender."""
    cb = await read_callback(request)
    runtime = _runtime(request)
    now = _now(request)

    def work() -> JSONResponse:
        try:
            key = _key(request)
            with runtime.sessions() as session, session.begin():
                report = pay.handle_webhook(session, gateway_id, cb, now=now, key=key)
        except pay.PaymentRefused as exc:
            return JSONResponse({"detail": exc.message}, status_code=exc.status)
        return JSONResponse(report.as_dict())

    return await run_in_threadpool(work)


# --- REST API ------------------------------------------------------------------------------


class GatewayIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    type: str
    config: dict[str, Any] = Field(default_factory=dict)
    is_default: bool = True


@router.post("/api/v1/payment-gateways", status_code=status.HTTP_201_CREATED)
def post_gateway(
    request: Request,
    payload: GatewayIn,
    principal: Annotated[Principal, Depends(require(Role.admin))],
) -> dict[str, Any]:
    with _runtime(request).sessions() as session, session.begin():
        row = pay.add_gateway(
            session,
            principal.tenant_id,
            name=payload.name,
            type_name=payload.type,
            config=payload.config,
            is_default=payload.is_default,
        )
        view = pay.gateway_view(row)
    view["webhook_url"] = f"{_site_url(request).rstrip('/')}/api/v1/payments/webhooks/{view['id']}"
    return view


@router.get("/api/v1/payment-gateways")
def get_gateways(
    request: Request, principal: Annotated[Principal, Depends(require(Role.viewer))]
) -> dict[str, Any]:
    with _runtime(request).reader() as session:
        return {
            "items": [pay.gateway_view(g) for g in pay.list_gateways(session, principal.tenant_id)]
        }


class LinkIn(BaseModel):
    bill_id: int
    ttl_days: int = Field(default=30, ge=1, le=365)
    reuse: bool = True


@router.post("/api/v1/payment-links", status_code=status.HTTP_201_CREATED)
def post_link(
    request: Request,
    payload: LinkIn,
    principal: Annotated[Principal, Depends(require(Role.operator))],
) -> dict[str, Any]:
    with _runtime(request).sessions() as session, session.begin():
        tenant = get_tenant(session, principal.tenant_slug)
        link = pay.create_link(
            session,
            tenant,
            payload.bill_id,
            now=_now(request),
            key=_key(request),
            ttl=timedelta(days=payload.ttl_days),
            reuse=payload.reuse,
        )
        return pay.link_view(link, _site_url(request))


def _link_error(exc: pay.LinkRefused) -> HTTPException:
    return HTTPException(exc.status, exc.message)


@router.get("/api/v1/payment-links/{code}")
def get_link(
    request: Request, code: str, principal: Annotated[Principal, Depends(require(Role.viewer))]
) -> dict[str, Any]:
    with _runtime(request).reader() as session:
        try:
            link = pay.verified_link(
                session, code, now=_now(request), key=_key(request), tenant_id=principal.tenant_id
            )
        except pay.LinkRefused as exc:
            raise _link_error(exc) from None
        return pay.link_view(link, _site_url(request))


@router.post("/api/v1/payment-links/{code}/check")
def post_link_check(
    request: Request, code: str, principal: Annotated[Principal, Depends(require(Role.operator))]
) -> JSONResponse:
    """Ask the gateway (server to server) what was paid on this link, and record it."""
    try:
        with _http(request) as http, _runtime(request).sessions() as session, session.begin():
            report = pay.check_status(
                session,
                code,
                now=_now(request),
                key=_key(request),
                http=http,
                tenant_id=principal.tenant_id,
            )
    except pay.LinkRefused as exc:
        raise _link_error(exc) from None
    except pay.PaymentRefused as exc:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)
    return JSONResponse(report.as_dict())


@router.get("/api/v1/payments")
def get_payments(
    request: Request,
    principal: Annotated[Principal, Depends(require(Role.viewer))],
    limit: int = 100,
) -> dict[str, Any]:
    with _runtime(request).reader() as session:
        rows = session.scalars(
            select(Payment)
            .where(Payment.tenant_id == principal.tenant_id)
            .order_by(Payment.id.desc())
            .limit(max(1, min(limit, 1000)))
        ).all()
        return {
            "items": [
                {
                    "id": p.id,
                    "gateway_id": p.gateway_id,
                    "provider_payment_id": p.provider_payment_id,
                    "bill_id": p.bill_id,
                    "account_id": p.account_id,
                    "amount_minor": p.amount_minor,
                    "currency": p.currency,
                    "source": p.source,
                    "ledger_entry_id": p.ledger_entry_id,
                    "created_at": p.created_at.isoformat(),
                }
                for p in rows
            ]
        }

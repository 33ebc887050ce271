"""The console's messaging pages: the message log, one message's history, the SMS credit,
sending one message, and what the sandbox's pretend phones received.

Same rules as the rest of the console (`meterline.web.console`): every route names the
least role it needs, every query is scoped to the operator's tenant, every POST checks the
session's CSRF token, and every page works without JavaScript. The compose page's live
estimate (compose.js) is an addition on top: the server shows the same estimate whenever
it renders the form.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from babel.numbers import get_currency_precision
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from meterline.domain.enums import Medium, MessageStatus, Role
from meterline.domain.notification_kinds import KINDS
from meterline.domain.templates import MissingData, Renderer, TemplateRefused
from meterline.services import credit
from meterline.services.channel_accounts import list_channel_accounts
from meterline.services.errors import NotFound, ServiceError
from meterline.services.message_templates import TemplateBook
from meterline.services.notify import Notification, NotifyRefused, locale_context, notify
from meterline.services.transactions import to_minor
from meterline.store import message_queries as mq
from meterline.store.models import Consumer, Message, Tenant
from meterline.store.queries import ascii_digits, phone_query
from meterline.web.console import (
    ConsoleError,
    ConsoleUser,
    CsrfField,
    OperatorUser,
    Viewer,
    check_csrf,
    formatter,
    need,
    now,
    redirect,
    render,
)
from meterline.web.i18n import N_, translations

router = APIRouter(prefix="/console", include_in_schema=False)

AdminUser = Annotated[ConsoleUser, Depends(need(Role.admin))]

PAGE_SIZE = 50
MAX_AMOUNT = Decimal(10) ** 12  # in major units
LEDGER_SIZE = 100
KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
EXPIRED = N_("This form has expired. Go back, reload the page and try again.")

# Values of the messaging vocabularies -> label to translate (console.LABELS has the rest).
MESSAGE_LABELS = {
    # message status
    "queued": N_("Queued"),
    "sending": N_("Sending"),
    "sent": N_("Sent"),
    "delivered": N_("Delivered"),
    "read": N_("Read"),
    "failed": N_("Failed"),
    # credit state of a message
    "free": N_("Free"),
    "held": N_("Held"),
    "debited": N_("Debited"),
    "refunded": N_("Refunded"),
    # credit ledger entries
    "topup": N_("Top-up"),
    "hold": N_("Hold"),
    "debit": N_("Debit"),
    "release": N_("Release"),
    "adjustment": N_("Adjustment"),
    # media
    "sms": N_("SMS"),
    "whatsapp": N_("WhatsApp"),
    "telegram": N_("Telegram"),
    "webpush": N_("Push"),
    "inapp": N_("In-app inbox"),
    # message events
    "attempt": N_("Send attempt"),
    "status": N_("Status report"),
    "status_ignored": N_("Status report (ignored: out of order)"),
    "part_status": N_("Status report for one part (SMPP)"),
    "paused": N_("Channel paused"),
    # fallback routing (services.fallback)
    "fallback": N_("Fell back to the next channel"),
    "unreachable": N_("Not reachable on this channel (remembered)"),
    "status_earlier_step": N_("Status report about an earlier channel (ignored)"),
}

# Notification kinds (meterline.domain.notification_kinds.KINDS) as the console names them.
KIND_LABELS = {
    "deposit_received": N_("Deposit received"),
    "payment_received": N_("Payment received"),
    "dues_reminder": N_("Dues reminder"),
    "low_balance": N_("Low balance"),
    "zero_balance": N_("Zero balance"),
    "overload": N_("Overload"),
    "tamper": N_("Tamper alert"),
    "otp": N_("One-time code"),
    "closing_balance": N_("Closing balance"),
    "custom": N_("Custom message"),
}

STATUS_ORDER = [s.value for s in MessageStatus]


def _render(
    request: Request, name: str, user: ConsoleUser, status: int = 200, **context: Any
) -> HTMLResponse:
    """console.render with the messaging labels added."""
    tr = translations(user.language)

    def mlabel(value: object) -> str:
        if value is None:
            return "—"
        v = str(value)
        return str(tr.gettext(MESSAGE_LABELS.get(v) or KIND_LABELS.get(v) or v))

    return render(request, name, user, status, mlabel=mlabel, statuses=STATUS_ORDER, **context)


def _sessions(request: Request) -> Any:
    return request.app.state.runtime.sessions


def _reader(request: Request) -> Session:
    """A session for pages that only show: on SQLite it does not queue behind writers."""
    session: Session = request.app.state.runtime.reader()
    return session


# --- the message log -------------------------------------------------------------------


@dataclass(frozen=True)
class LogQuery:
    """The message log's filters as typed, and the store's filter they make."""

    status: str = ""
    channel: str = ""
    kind: str = ""
    date_from: str = ""
    date_to: str = ""
    to: str = ""
    before_id: int | None = None

    def params(self) -> dict[str, str]:
        fields = ("status", "channel", "kind", "date_from", "date_to", "to")
        return {k: getattr(self, k) for k in fields if getattr(self, k)}


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(ascii_digits(value).strip())
    except ValueError:
        return None


def _local_midnight(day: date, tz: str) -> datetime:
    """The start of `day` in the tenant's time zone, in UTC (what is stored)."""
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(tz)).astimezone(UTC)


def _log_query(request: Request) -> LogQuery:
    qp = request.query_params
    status = qp.get("status", "")
    channel = qp.get("channel", "")
    kind = qp.get("kind", "")
    before = qp.get("before_id", "")
    return LogQuery(
        status=status if status in MessageStatus.__members__ else "",
        channel=channel if channel.isdigit() and len(channel) < 12 else "",
        kind=kind if kind in KINDS else "",
        date_from=qp.get("date_from", "") if _date(qp.get("date_from", "")) else "",
        date_to=qp.get("date_to", "") if _date(qp.get("date_to", "")) else "",
        to=qp.get("to", "").strip()[:40],
        before_id=int(before) if before.isdigit() and len(before) < 19 else None,
    )


def _message_filter(q: LogQuery, user: ConsoleUser) -> mq.MessageFilter | None:
    """The store's filter; None when the filters cannot match anything (a bad number)."""
    since = until = None
    if q.date_from:
        day = _date(q.date_from)
        since = _local_midnight(day, user.timezone) if day else None
    if q.date_to:
        day = _date(q.date_to)
        # "To" includes the whole day: up to the next local midnight.
        until = _local_midnight(day + timedelta(days=1), user.timezone) if day else None
    to = None
    if q.to:
        to, _digits = phone_query(q.to, user.phone_region)
        if to is None:
            return None
    return mq.MessageFilter(
        status=MessageStatus(q.status) if q.status else None,
        channel_account_id=int(q.channel) if q.channel else None,
        kind=q.kind or None,
        since=since,
        until=until,
        to=to,
    )


@router.get("/messages")
def messages(request: Request, user: Viewer) -> Response:
    q = _log_query(request)
    flt = _message_filter(q, user)
    with _reader(request) as session:
        counts = mq.status_counts(session, user.tenant_id)
        channels = mq.channel_names(session, user.tenant_id)
        rows = (
            mq.list_messages(
                session, user.tenant_id, flt, limit=PAGE_SIZE + 1, before_id=q.before_id
            )
            if flt is not None
            else []
        )
    older = rows[PAGE_SIZE - 1].id if len(rows) > PAGE_SIZE else None
    rows = rows[:PAGE_SIZE]

    def page_url(before_id: int | None) -> str:
        params: dict[str, str | int] = dict(q.params())
        if before_id is not None:
            params["before_id"] = before_id
        return "/console/messages" + ("?" + urlencode(params) if params else "")

    return _render(
        request,
        "messages.html",
        user,
        q=q,
        bad_phone=flt is None,
        counts=counts,
        total=sum(counts.values()),
        channels=channels,
        kinds=list(KINDS),
        rows=rows,
        older=older,
        page_url=page_url,
        status_url=lambda s: "/console/messages" + (f"?{urlencode({'status': s})}" if s else ""),
    )


@router.get("/messages/{message_id}")
def message(request: Request, message_id: int, user: Viewer) -> Response:
    with _reader(request) as session:
        msg = mq.get_message(session, user.tenant_id, message_id)
        if msg is None:
            raise ConsoleError(404, N_("There is no such message."), user)
        events = mq.message_events(session, msg.id)
        channels = mq.channel_names(session, user.tenant_id)
        consumer = session.get(Consumer, msg.consumer_id) if msg.consumer_id else None
    times = [
        (N_("Queued"), msg.created_at),
        (N_("Due to be sent"), msg.due_at),
        (N_("Sending"), msg.sending_at),
        (N_("Sent"), msg.sent_at),
        (N_("Delivered"), msg.delivered_at),
        (N_("Read"), msg.read_at),
        (N_("Failed"), msg.failed_at),
    ]
    return _render(
        request,
        "message.html",
        user,
        m=msg,
        consumer=consumer,
        events=events,
        channels=channels,
        times=times,
        repeat=request.query_params.get("repeat") == "1",
    )


# --- credit ----------------------------------------------------------------------------


class BadAmount(ValueError):
    """An amount the operator typed that is not one; the message is translated."""


def parse_amount(text: str, currency: str, *, allow_zero: bool = False) -> int:
    """'1,500.50', '1500,50', '১৫০০' -> minor units; BadAmount with a msgid otherwise.

    People type grouping commas, a decimal comma (Russian) and native digits; one comma
    followed by one or two digits is a decimal comma, any other comma groups thousands.
    """
    raw = ascii_digits(text).strip().replace("\xa0", "").replace("\u202f", "").replace(" ", "")
    if raw.count(",") == 1 and "." not in raw and re.fullmatch(r"\d*,\d{1,2}", raw):
        raw = raw.replace(",", ".")
    raw = raw.replace(",", "")
    if not re.fullmatch(r"\d+(\.\d+)?|\.\d+", raw):
        raise BadAmount(N_("Enter an amount such as 500 or 500.50."))
    value = Decimal(raw)
    if value > MAX_AMOUNT:  # a slip of the keyboard, and past what the ledger's columns hold
        raise BadAmount(N_("Enter an amount such as 500 or 500.50."))
    if value == 0:
        if allow_zero:
            return 0
        raise BadAmount(N_("The amount must be more than zero."))
    if value.as_tuple().exponent < -get_currency_precision(currency):  # type: ignore[operator]
        raise BadAmount(N_("The amount has too many decimal places for this currency."))
    try:
        return to_minor(value, currency)
    except (ServiceError, InvalidOperation):
        raise BadAmount(N_("Enter an amount such as 500 or 500.50.")) from None


def _major(minor: int, currency: str) -> str:
    """Minor units -> the plain number an input shows ('1500.50')."""
    digits = get_currency_precision(currency)
    return f"{Decimal(minor).scaleb(-digits):.{digits}f}"


def _credit_page(
    request: Request, user: ConsoleUser, status: int = 200, **context: Any
) -> HTMLResponse:
    with _sessions(request)() as session, session.begin():
        account = credit.credit_account(session, user.tenant_id)  # made on first look
        entries = credit.ledger(session, user.tenant_id, limit=LEDGER_SIZE)
    pricing = {
        "sms_price": _major(account.sms_price_minor, user.currency),
        "overdraft": _major(account.overdraft_minor, user.currency),
        "max_parts": str(account.max_sms_parts),
    }
    return _render(
        request,
        "credit.html",
        user,
        status,
        account=account,
        available=account.balance_minor - account.held_minor,
        entries=entries,
        ledger_size=LEDGER_SIZE,
        is_admin=user.allows(Role.admin),
        pricing=context.pop("pricing", pricing),
        topup=context.pop("topup", {}),
        saved=request.query_params.get("saved", ""),
        **context,
    )


@router.get("/credit")
def credit_page(request: Request, user: Viewer) -> Response:
    return _credit_page(request, user)


@router.post("/credit/topup")
def credit_topup(
    request: Request,
    user: AdminUser,
    csrf: CsrfField = "",
    amount: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf, user)
    tr = translations(user.language)
    form = {"amount": amount, "note": note}
    note = note.strip()
    if len(note) > 500:
        error = tr.gettext("The note is too long (at most 500 characters).")
        return _credit_page(request, user, 422, topup=form, topup_error=error)
    try:
        minor = parse_amount(amount, user.currency)
    except BadAmount as exc:
        return _credit_page(request, user, 422, topup=form, topup_error=tr.gettext(str(exc)))
    with _sessions(request)() as session, session.begin():
        credit.top_up(session, user.tenant_id, minor, by=user.username, note=note or None)
    return redirect("/console/credit?saved=topup")


@router.post("/credit/pricing")
def credit_pricing(
    request: Request,
    user: AdminUser,
    csrf: CsrfField = "",
    sms_price: Annotated[str, Form()] = "",
    overdraft: Annotated[str, Form()] = "",
    max_parts: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf, user)
    tr = translations(user.language)
    form = {"sms_price": sms_price, "overdraft": overdraft, "max_parts": max_parts}
    try:
        price_minor = parse_amount(sms_price, user.currency, allow_zero=True)
        overdraft_minor = parse_amount(overdraft, user.currency, allow_zero=True)
    except BadAmount as exc:
        return _credit_page(request, user, 422, pricing=form, pricing_error=tr.gettext(str(exc)))
    parts = ascii_digits(max_parts).strip()
    if not parts.isdigit() or not 1 <= int(parts) <= 255:
        error = tr.gettext("The maximum number of parts must be a whole number from 1 to 255.")
        return _credit_page(request, user, 422, pricing=form, pricing_error=error)
    with _sessions(request)() as session, session.begin():
        credit.set_pricing(
            session,
            user.tenant_id,
            sms_price_minor=price_minor,
            overdraft_minor=overdraft_minor,
            max_sms_parts=int(parts),
        )
    return redirect("/console/credit?saved=pricing")


# --- compose ---------------------------------------------------------------------------

# Stands in for the operator's text when the custom template is rendered around it.
_SLOT = "\ue000"


@dataclass(frozen=True)
class ComposeContext:
    """What the compose page needs besides the form: how the template wraps the text, the
    price and limit the estimate uses, and the credit the send would come out of."""

    before: str
    after: str
    price_minor: int
    max_parts: int
    available_minor: int

    def body(self, text: str) -> str:
        return f"{self.before}{text}{self.after}"


def _compose_context(session: Session, tenant: Tenant) -> ComposeContext:
    """The custom template in the tenant's default language, split around the text, so the
    estimate counts the message as it will be sent (with the organisation's name), not only
    what the operator typed. A template that does not show the text exactly once (unusual)
    gives no wrap: the estimate is then of the text alone and notify() has the last word."""
    account = credit.credit_account(session, tenant.id)
    language = tenant.default_language
    before = after = ""
    try:
        source = TemplateBook(session, tenant.id).source("custom", Medium.sms, language)
        whole = Renderer().render(
            "custom",
            source,
            {"org_name": tenant.name, "text": _SLOT},
            locale_context(tenant, language),
        )
    except (MissingData, TemplateRefused, ServiceError):
        whole = _SLOT
    if whole.count(_SLOT) == 1:
        before, after = whole.split(_SLOT)
    return ComposeContext(
        before,
        after,
        account.sms_price_minor,
        account.max_sms_parts,
        account.balance_minor - account.held_minor,
    )


def _new_key() -> str:
    return secrets.token_urlsafe(18)


def _compose_page(
    request: Request,
    user: ConsoleUser,
    form: dict[str, str],
    status: int = 200,
    error: str | None = None,
) -> HTMLResponse:
    with _sessions(request)() as session, session.begin():
        tenant = session.get(Tenant, user.tenant_id)
        assert tenant is not None
        ctx = _compose_context(session, tenant)
    estimate = credit.estimate_view(
        ctx.body(form.get("text", "")), ctx.price_minor, ctx.max_parts, user.currency
    )
    return _render(
        request,
        "compose.html",
        user,
        status,
        form=form,
        error=error,
        ctx=ctx,
        estimate=estimate,
        js_locale=str(formatter(user).locale).replace("_", "-"),
        exponent=get_currency_precision(user.currency),
    )


@router.get("/compose")
def compose(request: Request, user: OperatorUser) -> Response:
    consumer = request.query_params.get("consumer_id", "")
    form = {"to": "", "consumer_id": consumer if consumer.isdigit() else "", "text": ""}
    return _compose_page(request, user, {**form, "key": _new_key()})


def _refusal_text(exc: ServiceError, key: str) -> str:
    """A service's refusal without the idempotency key it starts with (the operator never
    saw the key)."""
    return exc.message.removeprefix(f"{key}: ")


@router.post("/compose")
def compose_send(
    request: Request,
    user: OperatorUser,
    csrf: CsrfField = "",
    key: Annotated[str, Form()] = "",
    to: Annotated[str, Form()] = "",
    consumer_id: Annotated[str, Form()] = "",
    text: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf, user)
    if not KEY.match(key):
        raise ConsoleError(403, EXPIRED, user)
    tr = translations(user.language)
    # Browsers send a textarea's line breaks as CRLF; the estimate counted LF.
    text = text.replace("\r\n", "\n")
    form = {"to": to.strip(), "consumer_id": consumer_id.strip(), "text": text, "key": key}

    def refuse(message: str, status: int = 422) -> HTMLResponse:
        return _compose_page(request, user, form, status, error=message)

    if not text.strip():
        return refuse(tr.gettext("Write the message."))
    if form["to"] and form["consumer_id"]:
        return refuse(tr.gettext("Give a phone number or a consumer id, not both."))
    phone: str | None = None
    cid: int | None = None
    if form["to"]:
        phone, _digits = phone_query(form["to"], user.phone_region)
        if phone is None:
            return refuse(
                tr.gettext("%(number)s is not a valid phone number.") % {"number": form["to"]}
            )
    elif form["consumer_id"]:
        raw = ascii_digits(form["consumer_id"])
        if not raw.isdigit() or len(raw) > 12:
            return refuse(tr.gettext("There is no such consumer."), 404)
        cid = int(raw)
    else:
        return refuse(tr.gettext("Give a phone number or a consumer id."))

    idempotency_key = f"console:{key}"
    with _sessions(request)() as session:
        try:
            with session.begin():
                tenant = session.get(Tenant, user.tenant_id)
                assert tenant is not None
                queued = notify(
                    session,
                    tenant,
                    Notification(
                        kind="custom",
                        data={"text": text},
                        idempotency_key=idempotency_key,
                        phone=phone,
                        consumer_id=cid,
                    ),
                    now=now(request),
                )
        except credit.InsufficientCredit:
            with session.begin():
                tenant = session.get(Tenant, user.tenant_id)
                assert tenant is not None
                ctx = _compose_context(session, tenant)
            est = credit.estimate_view(
                ctx.body(text), ctx.price_minor, ctx.max_parts, user.currency
            )
            fmt = formatter(user)
            message = tr.gettext(
                "Not enough messaging credit: this message costs %(cost)s and %(available)s"
                " is available. Ask an administrator to top up the credit."
            ) % {"cost": fmt.money(est["cost_minor"]), "available": fmt.money(ctx.available_minor)}
            return refuse(message, 402)
        except NotFound:
            return refuse(tr.gettext("There is no such consumer."), 404)
        except NotifyRefused as exc:
            return refuse(_too_long(request, user, text) or _refusal_text(exc, idempotency_key))
        except ServiceError as exc:
            return refuse(_refusal_text(exc, idempotency_key))
    suffix = "" if queued.created else "?repeat=1"
    return redirect(f"/console/messages/{queued.message_id}{suffix}")


def _too_long(request: Request, user: ConsoleUser, text: str) -> str | None:
    """The translated 'too long' refusal, if that is why notify() refused the text."""
    with _sessions(request)() as session, session.begin():
        tenant = session.get(Tenant, user.tenant_id)
        assert tenant is not None
        ctx = _compose_context(session, tenant)
    est = credit.estimate_view(ctx.body(text), ctx.price_minor, ctx.max_parts, user.currency)
    if not est["too_long"]:
        return None
    tr = translations(user.language)
    return str(
        tr.gettext(
            "The message is too long: %(segments)s SMS parts, and at most %(max)s are allowed."
        )
        % {"segments": est["segments"], "max": est["max_parts"]}
    )


# --- sandbox ---------------------------------------------------------------------------


def _sandbox_messages(
    session: Session, tenant_id: int, account_ids: list[int], before_id: int | None, limit: int
) -> list[Message]:
    """Newest first over every sandbox account (one indexed query per account, merged)."""
    rows: list[Message] = []
    for account_id in account_ids:
        rows += mq.list_messages(
            session,
            tenant_id,
            mq.MessageFilter(channel_account_id=account_id),
            limit=limit,
            before_id=before_id,
        )
    rows.sort(key=lambda m: m.id, reverse=True)
    return rows[:limit]


@router.get("/sandbox")
def sandbox(request: Request, user: Viewer) -> Response:
    before = request.query_params.get("before_id", "")
    before_id = int(before) if before.isdigit() and len(before) < 19 else None
    with _reader(request) as session:
        accounts = [
            a for a in list_channel_accounts(session, user.tenant_id) if a.type_name == "sandbox"
        ]
        rows = _sandbox_messages(
            session, user.tenant_id, [a.id for a in accounts], before_id, PAGE_SIZE + 1
        )
    older = rows[PAGE_SIZE - 1].id if len(rows) > PAGE_SIZE else None

    def page_url(before: int | None) -> str:
        return "/console/sandbox" + (f"?before_id={before}" if before is not None else "")

    return _render(
        request,
        "sandbox.html",
        user,
        accounts=accounts,
        channels={a.id: a.name for a in accounts},
        rows=rows[:PAGE_SIZE],
        older=older,
        before_id=before_id,
        page_url=page_url,
    )

"""The operator console: server-rendered pages under /console, in four languages.

Every route resolves the logged-in operator from the session and checks the role it
needs before it touches the database; every query is scoped to the operator's tenant.
POST forms carry a per-session CSRF token. No JavaScript is needed to use any page.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

import phonenumbers
from fastapi import APIRouter, Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from jinja2.runtime import Context

from meterline.domain.enums import LANGUAGES, Billing, Role, Service
from meterline.domain.headers import parse_mapping
from meterline.services.importer import ImportFailed, ImportReport, load_report
from meterline.services.security import authenticate, operator_with_tenant
from meterline.services.tenants import currency_exponent
from meterline.store import queries
from meterline.web import api
from meterline.web.auth import RANK, Principal
from meterline.web.i18n import (
    LANGUAGE_NAMES,
    N_,
    Formatter,
    from_accept_language,
    pick_language,
    translations,
)
from meterline.web.uploads import import_upload

HERE = Path(__file__).parent
router = APIRouter(prefix="/console", include_in_schema=False)

# --- templates -----------------------------------------------------------------------------


@pass_context
def _gettext(ctx: Context, message: str) -> str:
    return str(ctx["_translations"].gettext(message))


@pass_context
def _ngettext(ctx: Context, singular: str, plural: str, n: int) -> str:
    return str(ctx["_translations"].ngettext(singular, plural, n))


templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    extensions=["jinja2.ext.i18n"],
    trim_blocks=True,
    lstrip_blocks=True,
)
# The catalog is picked per render from the context, so one environment serves every language.
templates.install_gettext_callables(_gettext, _ngettext, newstyle=True)  # type: ignore[attr-defined]

# Enum values as stored -> label to translate (the values are unique across enums).
LABELS = {
    "electricity": N_("Electricity"),
    "water": N_("Water"),
    "heat": N_("Heating"),
    "gas": N_("Gas"),
    "savings": N_("Savings"),
    "prepaid": N_("Prepaid"),
    "postpaid": N_("Postpaid"),
    "admin": N_("Administrator"),
    "operator": N_("Operator"),
    "viewer": N_("Viewer"),
    "running": N_("Running"),
    "done": N_("Done"),
    "failed": N_("Failed"),
    "unknown": N_("Not checked"),
    "yes": N_("On WhatsApp"),
    "no": N_("Not on WhatsApp"),
    "open": N_("Unpaid"),
    "paid": N_("Paid"),
    "cancelled": N_("Cancelled"),
    "recharge": N_("Recharge"),
    "payment": N_("Payment"),
    "deposit": N_("Deposit"),
    "withdrawal": N_("Withdrawal"),
    "charge": N_("Charge"),
    "adjustment": N_("Adjustment"),
    "phone": N_("Phone"),
    "telegram": N_("Telegram"),
    "webpush": N_("Push"),
    "email": N_("Email"),
}

# Master-sheet fields (meterline.domain.headers.FIELDS) as the report names them.
FIELD_LABELS = {
    "account": N_("Account number"),
    "name": N_("Name"),
    "mobile": N_("Mobile number"),
    "dues": N_("Dues"),
    "due_date": N_("Due date"),
    "balance": N_("Balance"),
    "area": N_("Area"),
    "area_circle": N_("Circle"),
    "area_division": N_("Division"),
    "area_subdivision": N_("Sub-division"),
    "area_feeder": N_("Feeder"),
    "area_district": N_("District"),
    "area_union": N_("Union"),
    "area_village": N_("Village"),
    "address": N_("Address"),
    "apartment": N_("Apartment"),
    "service": N_("Service"),
    "billing": N_("Billing"),
    "meter_serial": N_("Meter serial number"),
    "sanctioned_load": N_("Sanctioned load"),
    "language": N_("Language"),
}


def display_phone(value: str | None) -> str:
    """+919876543210 -> +91 98765 43210: what an operator reads out over the phone."""
    if not value:
        return "—"
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return value
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


# --- who is asking -------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsoleUser:
    operator_id: int
    username: str
    role: Role
    language: str
    tenant_id: int
    tenant_slug: str
    tenant_name: str
    country: str
    currency: str
    timezone: str
    phone_region: str

    def allows(self, needed: Role) -> bool:
        return RANK[self.role] >= RANK[needed]

    def principal(self) -> Principal:
        return Principal(self.tenant_id, self.tenant_slug, self.role, self.username)


class LoginRequired(Exception):
    pass


class ConsoleError(Exception):
    """An error page (403, 404, ...) rendered in the operator's language."""

    def __init__(self, status: int, message: str, user: ConsoleUser | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.user = status, message, user


def current_user(request: Request) -> ConsoleUser:
    op_id = request.session.get("operator_id")
    if op_id is None:
        raise LoginRequired
    with request.app.state.runtime.reader() as session:
        row = operator_with_tenant(session, op_id)
    if row is None:  # operator deleted since login
        request.session.clear()
        raise LoginRequired
    op, t = row
    return ConsoleUser(
        op.id, op.username, op.role, language_of(request, op.language),
        t.id, t.slug, t.name, t.country, t.currency, t.timezone, t.phone_region,
    )  # fmt: skip


def need(role: Role) -> Callable[[Request], ConsoleUser]:
    """Dependency: the logged-in operator, who must hold at least `role`."""

    def dependency(request: Request) -> ConsoleUser:
        user = current_user(request)
        if not user.allows(role):
            raise ConsoleError(403, N_("You do not have permission to do this."), user)
        return user

    return dependency


Viewer = Annotated[ConsoleUser, Depends(need(Role.viewer))]
OperatorUser = Annotated[ConsoleUser, Depends(need(Role.operator))]


def language_of(request: Request, operator_language: str | None = None) -> str:
    """The session's choice, else the operator's own, else the browser's, else English."""
    return pick_language(
        request.session.get("lang"),
        operator_language,
        from_accept_language(request.headers.get("accept-language")),
    )


# --- CSRF ----------------------------------------------------------------------------------


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return str(token)


def check_csrf(request: Request, presented: str, user: ConsoleUser | None = None) -> None:
    expected = request.session.get("csrf")
    # Bytes: compare_digest refuses non-ASCII str, and a forged token may be anything.
    if not expected or not hmac.compare_digest(str(expected).encode(), presented.encode()):
        raise ConsoleError(
            403, N_("This form has expired. Go back, reload the page and try again."), user
        )


CsrfField = Annotated[str, Form(alias="csrf")]

# --- failed-login throttle -----------------------------------------------------------------


class LoginThrottle:
    """At most `limit` failed logins per (username, IP) in `window` seconds, in memory.

    Per process: behind several workers the effective limit is multiplied, which still
    stops password guessing at any useful rate.
    """

    def __init__(
        self, limit: int = 5, window: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        cutoff = self.clock() - self.window
        while q and q[0] <= cutoff:
            q.popleft()
        return q

    def retry_after(self, key: tuple[str, str]) -> float:
        """Seconds until the next attempt is allowed; 0 when it is allowed now."""
        with self._lock:
            q = self._recent(key)
            if len(q) < self.limit:
                return 0.0
            return max(1.0, q[0] + self.window - self.clock())

    def failed(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._recent(key).append(self.clock())
            if len(self._failures) > 100_000:  # bound memory under a spray of usernames
                self._failures = {k: v for k, v in self._failures.items() if v}

    def succeeded(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._failures.pop(key, None)


# --- rendering -----------------------------------------------------------------------------


def now(request: Request) -> datetime:
    clock = getattr(request.app.state, "console_clock", None)
    return clock() if clock else datetime.now(UTC)


def formatter(user: ConsoleUser) -> Formatter:
    return Formatter.create(
        user.language, user.country, user.currency, currency_exponent(user.currency), user.timezone
    )


def render(
    request: Request,
    name: str,
    user: ConsoleUser | None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    lang = user.language if user else language_of(request)
    tr = translations(lang)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    html = templates.get_template(name).render(
        request=request,
        user=user,
        lang=lang,
        languages=LANGUAGE_NAMES,
        csrf=csrf_token(request),
        here=here,
        fmt=formatter(user) if user else None,
        label=lambda v: tr.gettext(LABELS.get(str(v), str(v))) if v is not None else "—",
        field_label=lambda f: tr.gettext(FIELD_LABELS.get(str(f)) or str(f)),
        phone=display_phone,
        can_upload=bool(user and user.allows(Role.operator)),
        _translations=tr,
        **context,
    )
    response = HTMLResponse(html, status_code=status)
    # Pages show personal data: keep them out of shared caches and other sites' frames.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    )
    return response


def safe_next(target: str | None, default: str = "/console") -> str:
    """Only a path inside the console: a login link must not bounce to another site."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target or not target.startswith("/console"):
        return default
    return target


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# --- login, logout, language ---------------------------------------------------------------


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    if request.session.get("operator_id") is not None:
        return redirect(safe_next(next))
    return render(request, "login.html", None, next=safe_next(next))


@router.post("/login")
def login(
    request: Request,
    csrf: CsrfField = "",
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf)
    throttle: LoginThrottle = request.app.state.login_throttle
    key = (username.strip().casefold(), request.client.host if request.client else "")
    tr = translations(language_of(request))
    wait = throttle.retry_after(key)
    if wait:
        minutes = max(1, -(-int(wait) // 60))
        error = tr.ngettext(
            "Too many failed attempts. Try again in %(num)d minute.",
            "Too many failed attempts. Try again in %(num)d minutes.",
            minutes,
        ) % {"num": minutes}
        response = render(request, "login.html", None, 429, error=error, username=username)
        response.headers["Retry-After"] = str(int(wait))
        return response
    with request.app.state.runtime.sessions() as session:
        op = authenticate(session, username, password) if username.strip() else None
    if op is None:
        throttle.failed(key)
        error = tr.gettext("Wrong username or password.")
        return render(request, "login.html", None, 401, error=error, username=username, next=next)
    throttle.succeeded(key)
    lang = request.session.get("lang")
    request.session.clear()  # a fresh session (and CSRF token) for the new identity
    request.session["operator_id"] = op.id
    if lang in LANGUAGES:
        request.session["lang"] = lang
    return redirect(safe_next(next))


@router.post("/logout")
def logout(request: Request, csrf: CsrfField = "") -> Response:
    if request.session.get("operator_id") is None:  # already out (e.g. session expired)
        return redirect("/console/login")
    check_csrf(request, csrf)
    request.session.clear()
    return redirect("/console/login")


@router.post("/language")
def set_language(
    request: Request,
    csrf: CsrfField = "",
    lang: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf)
    if lang in LANGUAGES:
        request.session["lang"] = lang
    return redirect(safe_next(next))


# --- dashboard -----------------------------------------------------------------------------


@router.get("")
def dashboard(request: Request, user: Viewer) -> Response:
    fmt = formatter(user)
    with request.app.state.runtime.sessions() as session:
        counts = queries.dashboard_counts(session, user.tenant_id, fmt.today(now(request)))
        recent = queries.list_imports(session, user.tenant_id, per_page=5).items
    return render(request, "dashboard.html", user, counts=counts, recent=recent)


# --- imports -------------------------------------------------------------------------------


def _imports_page(
    request: Request, user: ConsoleUser, status: int = 200, **context: Any
) -> HTMLResponse:
    page = _page_number(request)
    with request.app.state.runtime.sessions() as session:
        runs = queries.list_imports(session, user.tenant_id, page)
    return render(
        request,
        "imports.html",
        user,
        status,
        runs=runs,
        page_url=lambda n: f"/console/imports?page={n}",
        **context,
    )


@router.get("/imports")
def imports(request: Request, user: Viewer) -> Response:
    return _imports_page(request, user)


@router.post("/imports")
def upload(
    request: Request,
    user: OperatorUser,
    file: Annotated[UploadFile | None, File()] = None,
    csrf: CsrfField = "",
    dry_run: Annotated[bool, Form()] = False,
    mapping: Annotated[str, Form()] = "",
    sheet: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf, user)
    tr = translations(user.language)
    form = {"mapping": mapping, "sheet": sheet, "dry_run": dry_run}
    if file is None or not file.filename:
        return _imports_page(
            request, user, 422, error=tr.gettext("Choose a file to upload."), form=form
        )
    try:
        column_map = parse_mapping(mapping)
    except ValueError as exc:
        return _imports_page(request, user, 422, error=str(exc), form=form)
    try:
        report = import_upload(
            request.app.state.runtime,
            user.tenant_slug,
            file,
            dry_run=dry_run,
            mapping=column_map,
            sheet=sheet,
            started_by=user.username,
        )
    except HTTPException as exc:
        return _imports_page(request, user, exc.status_code, error=str(exc.detail), form=form)
    except ImportFailed as exc:
        failed_id = exc.report.import_id if exc.report else None
        return _imports_page(request, user, 422, error=exc.message, failed_id=failed_id, form=form)
    if dry_run:
        # A dry run stores no rows: show its report now, there is nothing to reload later.
        return _report_page(request, user, report, live=True)
    return redirect(f"/console/imports/{report.import_id}")


def _report_page(
    request: Request, user: ConsoleUser, report: ImportReport, live: bool = False
) -> HTMLResponse:
    with request.app.state.runtime.sessions() as session:
        run = queries.import_run(session, user.tenant_id, report.import_id or 0)
    return render(request, "import_report.html", user, report=report, run=run, live=live)


@router.get("/imports/{import_id}")
def import_report(request: Request, import_id: int, user: Viewer) -> Response:
    with request.app.state.runtime.sessions() as session:
        report = load_report(session, user.tenant_id, import_id)
    if report is None:
        raise ConsoleError(404, N_("There is no such import."), user)
    return _report_page(request, user, report)


@router.get("/imports/{import_id}/rejected.csv")
def import_rejected_csv(request: Request, import_id: int, user: Viewer) -> PlainTextResponse:
    try:
        # The API's handler, so the file is byte-for-byte the one the API serves.
        return api.get_import_rejected(request, import_id, user.principal())
    except HTTPException:
        raise ConsoleError(404, N_("There is no such import."), user) from None


# --- consumers -----------------------------------------------------------------------------


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return int(raw) if raw.isdigit() and 0 < int(raw) < 1_000_000 else 1


def _account_filter(request: Request) -> queries.AccountFilter:
    qp = request.query_params
    area = qp.get("area", "")
    service, billing = qp.get("service", ""), qp.get("billing", "")
    return queries.AccountFilter(
        q=qp.get("q", "").strip()[:100],
        area_id=int(area) if area.isdigit() else None,
        service=Service(service) if service in Service.__members__ else None,
        billing=Billing(billing) if billing in Billing.__members__ else None,
        defaulters=qp.get("defaulters") in ("1", "on", "true"),
    )


@router.get("/consumers")
def consumers(request: Request, user: Viewer) -> Response:
    f = _account_filter(request)
    page = _page_number(request)
    fmt = formatter(user)
    today = fmt.today(now(request))
    with request.app.state.runtime.sessions() as session:
        areas = queries.tenant_areas(session, user.tenant_id)
        result = queries.search_accounts(
            session, user.tenant_id, f, today=today, phone_region=user.phone_region, page=page
        )
    params = {
        "q": f.q,
        "area": f.area_id or "",
        "service": f.service or "",
        "billing": f.billing or "",
        "defaulters": "1" if f.defaulters else "",
    }
    base = {k: v for k, v in params.items() if v}

    def page_url(n: int) -> str:
        return "/console/consumers?" + urlencode({**base, "page": n})

    return render(
        request,
        "consumers.html",
        user,
        f=f,
        areas=areas,
        result=result,
        today=today,
        page_url=page_url,
        services=list(Service),
        billings=list(Billing),
    )


@router.get("/consumers/{consumer_id}")
def consumer(request: Request, consumer_id: int, user: Viewer) -> Response:
    fmt = formatter(user)
    with request.app.state.runtime.sessions() as session:
        detail = queries.consumer_detail(session, user.tenant_id, consumer_id)
    if detail is None:
        raise ConsoleError(404, N_("There is no such consumer."), user)
    return render(request, "consumer.html", user, d=detail, today=fmt.today(now(request)))


# --- wiring --------------------------------------------------------------------------------


def mount(app: FastAPI) -> None:
    """Adds the console's routes, static files and error pages to the app."""
    from meterline.web import console_messages  # imports this module: mounted here, not above

    app.state.login_throttle = LoginThrottle()
    app.include_router(router)
    app.include_router(console_messages.router)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")

    @app.exception_handler(LoginRequired)
    def _login_required(request: Request, _exc: LoginRequired) -> Response:
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return redirect("/console/login?" + urlencode({"next": here}))

    @app.exception_handler(ConsoleError)
    def _console_error(request: Request, exc: ConsoleError) -> Response:
        tr = translations(exc.user.language if exc.user else language_of(request))
        message = tr.gettext(exc.message)
        return render(request, "error.html", exc.user, exc.status, message=message)

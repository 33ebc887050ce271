"""Dues reminder runs on the web: the REST API (preview, send, schedule, runs, report and
its CSV) and the console page (operator role) to preview and send a run and read the
report per run and per day."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, Field

from meterline.domain.enums import Role
from meterline.services import payments as pay
from meterline.services import reminder_report as report
from meterline.services import reminders as rem
from meterline.services.errors import ServiceError
from meterline.services.tenants import get_tenant
from meterline.store import queries
from meterline.store.models import Tenant
from meterline.web.auth import Principal, require
from meterline.web.console import (
    ConsoleError,
    CsrfField,
    OperatorUser,
    check_csrf,
    formatter,
    now,
    redirect,
    render,
)
from meterline.web.console_messages import BadAmount, parse_amount
from meterline.web.i18n import N_, translations

router = APIRouter()

CHANNEL_LABELS = {
    "whatsapp": N_("WhatsApp"),
    "whatsapp_unknown": N_("WhatsApp first (may fall back to SMS)"),
    "sms": N_("SMS"),
    "inapp": N_("In-app inbox (no phone)"),
}


def _today(tenant: Tenant, at: datetime) -> date:
    """The tenant's date: due dates are days where the utility is."""
    return at.astimezone(ZoneInfo(tenant.timezone)).date()


def _key(request: Request) -> bytes:
    return pay.link_key(request.app.state.runtime.settings.secret_key.get_secret_value())


def _public(request: Request) -> str:
    return str(request.app.state.runtime.settings.public_url)


# --- REST API ------------------------------------------------------------------------------


class FilterIn(BaseModel):
    area_id: int | None = None
    min_amount_minor: int | None = Field(None, ge=0)
    max_amount_minor: int | None = Field(None, ge=0)
    min_days_overdue: int | None = Field(None, ge=0)

    def model(self) -> rem.ReminderFilter:
        return rem.ReminderFilter(**self.model_dump())


@router.post("/api/v1/reminders/preview")
def api_preview(
    request: Request,
    payload: FilterIn,
    principal: Annotated[Principal, Depends(require(Role.operator))],
) -> dict[str, Any]:
    with request.app.state.runtime.reader() as session:
        tenant = get_tenant(session, principal.tenant_slug)
        at = now(request)
        targets = rem.select_defaulters(
            session, tenant.id, payload.model(), today=_today(tenant, at)
        )
        return rem.preview(session, tenant, targets, now=at, public_url=_public(request)).as_dict()


@router.post("/api/v1/reminders/runs", status_code=status.HTTP_201_CREATED)
def api_send(
    request: Request,
    payload: FilterIn,
    principal: Annotated[Principal, Depends(require(Role.operator))],
) -> dict[str, Any]:
    key = _key(request)
    with request.app.state.runtime.sessions() as session, session.begin():
        tenant = get_tenant(session, principal.tenant_slug)
        at = now(request)
        run = rem.send_run(
            session,
            tenant,
            payload.model(),
            now=at,
            today=_today(tenant, at),
            key=key,
            public_url=_public(request),
            created_by=principal.name,
        )
        return rem.run_view(run)


@router.post("/api/v1/reminders/schedule/run")
def api_run_schedule(
    request: Request, principal: Annotated[Principal, Depends(require(Role.operator))]
) -> dict[str, Any]:
    """What cron's `meterline reminders run` does, over HTTP (idempotent)."""
    key = _key(request)
    with request.app.state.runtime.sessions() as session, session.begin():
        tenant = get_tenant(session, principal.tenant_slug)
        at = now(request)
        runs = rem.run_schedule(
            session, tenant, now=at, today=_today(tenant, at), key=key, public_url=_public(request)
        )
        return {"runs": [rem.run_view(r) for r in runs]}


class ScheduleIn(BaseModel):
    steps: list[int]


@router.put("/api/v1/reminders/schedule")
def api_set_schedule(
    request: Request,
    payload: ScheduleIn,
    principal: Annotated[Principal, Depends(require(Role.operator))],
) -> dict[str, Any]:
    with request.app.state.runtime.sessions() as session, session.begin():
        steps = rem.set_schedule(session, principal.tenant_id, payload.steps, now=now(request))
    return {"steps": steps}


@router.get("/api/v1/reminders/runs")
def api_runs(
    request: Request,
    principal: Annotated[Principal, Depends(require(Role.viewer))],
    limit: int = 50,
) -> dict[str, Any]:
    with request.app.state.runtime.reader() as session:
        pairs = report.runs_with_report(session, principal.tenant_id, max(1, min(limit, 500)))
        return {"runs": [{**rem.run_view(r), "report": row.as_dict()} for r, row in pairs]}


@router.get("/api/v1/reminders/report", response_model=None)
def api_report(
    request: Request,
    principal: Annotated[Principal, Depends(require(Role.viewer))],
    by: str = "run",
    format: str = "json",
) -> Any:
    if by not in ("run", "day") or format not in ("json", "csv"):
        raise HTTPException(422, "by: run or day; format: json or csv")
    rows = _report_rows(request, principal.tenant_id, by)
    if format == "csv":
        return _csv(rows, by)
    return {"by": by, "rows": [r.as_dict() for r in rows]}


def _report_rows(request: Request, tenant_id: int, by: str) -> list[report.ReportRow]:
    with request.app.state.runtime.reader() as session:
        if by == "day":
            tenant = session.get(Tenant, tenant_id)
            assert tenant is not None
            return report.by_day(session, tenant_id, tenant.timezone)
        return [row for _, row in report.runs_with_report(session, tenant_id, 500)]


def _csv(rows: list[report.ReportRow], by: str) -> PlainTextResponse:
    return PlainTextResponse(
        "\ufeff" + report.to_csv(rows, "run" if by == "run" else "day"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="reminders-by-{by}.csv"'},
    )


# --- console -------------------------------------------------------------------------------


def _form_filter(user: Any, form: dict[str, str]) -> rem.ReminderFilter:
    def minor(name: str) -> int | None:
        text = form.get(name, "").strip()
        return parse_amount(text, user.currency, allow_zero=True) if text else None

    def whole(name: str) -> int | None:
        text = form.get(name, "").strip()
        if not text:
            return None
        if not text.isdigit():
            raise BadAmount(N_("Days overdue must be a whole number."))
        return int(text)

    area = form.get("area_id", "").strip()
    return rem.ReminderFilter(
        area_id=int(area) if area.isdigit() else None,
        min_amount_minor=minor("min_amount"),
        max_amount_minor=minor("max_amount"),
        min_days_overdue=whole("min_days"),
    )


def _page(
    request: Request,
    user: Any,
    form: dict[str, str],
    *,
    status_code: int = 200,
    show_preview: bool = False,
    error: str | None = None,
    sent: str | None = None,
) -> Response:
    tr = translations(user.language)
    at = now(request)
    fmt = formatter(user)
    preview = None
    with request.app.state.runtime.reader() as session:
        tenant = session.get(Tenant, user.tenant_id)
        assert tenant is not None
        if show_preview and error is None:
            try:
                f = _form_filter(user, form)
                targets = rem.select_defaulters(session, tenant.id, f, today=fmt.today(at))
                preview = rem.preview(session, tenant, targets, now=at, public_url=_public(request))
            except BadAmount as exc:
                error, status_code = tr.gettext(str(exc)), 422
            except ServiceError as exc:
                error, status_code = exc.message, 422
        runs = report.runs_with_report(session, tenant.id, 50)
        days = report.by_day(session, tenant.id, tenant.timezone)[:31]
        areas = queries.tenant_areas(session, tenant.id)
        schedule = rem.get_schedule(session, tenant.id)
    return render(
        request,
        "reminders.html",
        user,
        status_code,
        section="reminders",
        form=form,
        preview=preview,
        error=error,
        sent=sent,
        runs=runs,
        days=days,
        areas=areas,
        schedule=schedule,
        channel_labels={k: tr.gettext(v) for k, v in CHANNEL_LABELS.items()},
    )


def _form_of(request: Request) -> dict[str, str]:
    q = request.query_params
    return {k: q.get(k, "") for k in ("area_id", "min_amount", "max_amount", "min_days")}


@router.get("/console/reminders", include_in_schema=False)
def console_reminders(request: Request, user: OperatorUser) -> Response:
    form = _form_of(request)
    sent = request.query_params.get("sent")
    return _page(request, user, form, show_preview="preview" in request.query_params, sent=sent)


@router.post("/console/reminders", include_in_schema=False)
def console_send(
    request: Request,
    user: OperatorUser,
    csrf: CsrfField = "",
    area_id: Annotated[str, Form()] = "",
    min_amount: Annotated[str, Form()] = "",
    max_amount: Annotated[str, Form()] = "",
    min_days: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf, user)
    form = {
        "area_id": area_id,
        "min_amount": min_amount,
        "max_amount": max_amount,
        "min_days": min_days,
    }
    tr = translations(user.language)
    try:
        f = _form_filter(user, form)
        key = _key(request)
        with request.app.state.runtime.sessions() as session, session.begin():
            tenant = session.get(Tenant, user.tenant_id)
            assert tenant is not None
            at = now(request)
            run = rem.send_run(
                session,
                tenant,
                f,
                now=at,
                today=formatter(user).today(at),
                key=key,
                public_url=_public(request),
                created_by=user.username,
            )
            run_id = run.id
    except BadAmount as exc:
        return _page(request, user, form, status_code=422, error=tr.gettext(str(exc)))
    except ServiceError as exc:
        return _page(request, user, form, status_code=422, error=exc.message)
    return redirect(f"/console/reminders?sent={run_id}")


@router.get("/console/reminders/report.csv", include_in_schema=False)
def console_report_csv(request: Request, user: OperatorUser, by: str = "run") -> Response:
    if by not in ("run", "day"):
        raise ConsoleError(404, N_("There is no such report."), user)
    return _csv(_report_rows(request, user.tenant_id, by), by)

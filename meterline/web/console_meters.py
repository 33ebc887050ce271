"""The console's smart-meter pages: live alerts, one meter, the silent meters.

Same rules as the rest of the console: viewers may read all three, every query is the
operator's tenant's (through `services.meter_views`), and every page works without
JavaScript. The alerts page adds live updates on top (static/alerts.js): it polls
`/console/alerts/rows?after_id=N` for the rows newer than the newest it shows, rendered
by the same template as the page, and puts them at the top without a reload.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from meterline.domain.meter_rules import ALERT_KINDS
from meterline.services import meter_views
from meterline.services.errors import NotFound
from meterline.web.console import (
    ConsoleError,
    ConsoleUser,
    Viewer,
    now,
    redirect,
    render,
    templates,
)
from meterline.web.i18n import N_, translations

router = APIRouter(prefix="/console", include_in_schema=False)

ALERTS_SHOWN = 100
POLL_SECONDS = 3

ALERT_LABELS = {
    "low_balance": N_("Low balance"),
    "zero_balance": N_("Zero balance"),
    "overload": N_("Overload"),
    "tamper": N_("Tamper alert"),
}
STATE_LABELS = {
    "on": N_("on"),
    "off": N_("off"),
    "connected": N_("connected"),
    "disconnected": N_("disconnected"),
}


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _alert_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The views' alert dicts with times as datetimes and amounts as integers."""
    out = []
    for a in rows:
        d = a.get("details") or {}
        out.append(
            {
                **a,
                "opened": _when(a["opened_at"]),
                "closed": _when(a["closed_at"]),
                "balance": d.get("balance"),
                "threshold": d.get("threshold"),
                "load_kw": d.get("load_kw"),
                "sanctioned_kw": d.get("sanctioned_kw"),
                "code": d.get("code"),
                "text": d.get("text"),
            }
        )
    return out


def _context(user: ConsoleUser) -> dict[str, Any]:
    tr = translations(user.language)

    def alabel(kind: str) -> str:
        return str(tr.gettext(ALERT_LABELS[kind])) if kind in ALERT_LABELS else kind

    def slabel(value: str | None) -> str:
        if value is None:
            return "—"
        return str(tr.gettext(STATE_LABELS[value])) if value in STATE_LABELS else value

    return {"alabel": alabel, "slabel": slabel, "meter_url": meter_url}


def meter_url(serial: str) -> str:
    return "/console/meters/" + quote(serial, safe="")


def _filters(request: Request) -> tuple[str | None, bool]:
    kind = request.query_params.get("kind") or None
    if kind not in ALERT_KINDS:
        kind = None
    return kind, request.query_params.get("open") == "1"


def _alerts(
    request: Request, user: ConsoleUser, after_id: int | None = None
) -> list[dict[str, Any]]:
    kind, open_only = _filters(request)
    with request.app.state.runtime.reader() as session:
        rows = meter_views.list_alerts(
            session,
            user.tenant_id,
            kind=kind,
            open_only=open_only,
            after_id=after_id,
            limit=ALERTS_SHOWN,
        )
    return _alert_rows(rows)


@router.get("/alerts")
def alerts(request: Request, user: Viewer) -> Response:
    kind, open_only = _filters(request)
    rows = _alerts(request, user)
    query = urlencode(
        {k: v for k, v in (("kind", kind), ("open", "1" if open_only else None)) if v}
    )
    return render(
        request,
        "alerts.html",
        user,
        section="alerts",
        rows=rows,
        kinds=ALERT_KINDS,
        kind=kind,
        open_only=open_only,
        last_id=max((r["id"] for r in rows), default=0),
        rows_url="/console/alerts/rows" + (f"?{query}&" if query else "?"),
        poll_seconds=POLL_SECONDS,
        **_context(user),
    )


@router.get("/alerts/rows")
def alert_rows(request: Request, user: Viewer, after_id: int = 0) -> JSONResponse:
    """Rows newer than `after_id`, as the alerts table renders them (for alerts.js)."""
    rows = _alerts(request, user, after_id=after_id)
    html = ""
    if rows:
        tr = translations(user.language)
        from meterline.web.console import formatter

        html = templates.get_template("_alert_rows.html").render(
            rows=rows,
            fmt=formatter(user),
            _translations=tr,
            show_meter=True,
            **_context(user),
        )
    response = JSONResponse(
        {
            "last_id": max((r["id"] for r in rows), default=after_id),
            "count": len(rows),
            "html": html,
        }
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/meters/silent")
def silent(request: Request, user: Viewer) -> Response:
    moment = now(request)
    with request.app.state.runtime.reader() as session:
        rows = meter_views.silent_meters(session, user.tenant_id, now=moment, limit=1000)
    for r in rows:
        r["seen"] = _when(r["last_seen"])
        r["hours"] = round((r["silent_for_s"] or 0) / 3600, 1)
    return render(
        request, "silent_meters.html", user, section="alerts", rows=rows, **_context(user)
    )


@router.get("/meters")
def find_meter(request: Request, user: Viewer, serial: str = "") -> Response:
    serial = serial.strip()
    if serial:
        return redirect(meter_url(serial))
    return redirect("/console/alerts")


@router.get("/meters/{serial}")
def meter(request: Request, serial: str, user: Viewer) -> Response:
    with request.app.state.runtime.reader() as session:
        try:
            view = meter_views.meter_view(session, user.tenant_id, serial, recent=30)
            usage = meter_views.usage(session, user.tenant_id, serial, "day", limit=14)
        except NotFound:
            raise ConsoleError(404, N_("There is no such meter."), user) from None
    state = view["state"]
    if state:
        for key in ("balance_at", "reading_at", "demand_at", "power_at", "relay_at", "last_seen"):
            state[key + "_dt"] = _when(state[key])
    return render(
        request,
        "meter.html",
        user,
        section="alerts",
        m=view,
        state=state,
        open_alerts=_alert_rows(view["open_alerts"]),
        recent=_alert_rows(view["recent_alerts"]),
        usage=list(reversed(usage["rows"])),
        **_context(user),
    )

"""REST API for smart-meter events: ingest, meter state, usage, alerts, silent meters."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from meterline.domain.enums import Role
from meterline.services import meter_views
from meterline.services.errors import NotFound, ServiceError
from meterline.services.meter_events import MAX_BATCH, ingest_events
from meterline.web.auth import Principal, require

router = APIRouter(prefix="/api/v1")

MAX_BODY = 32 * 1024 * 1024
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "text/plain")


def _too_many(count: int) -> HTTPException:
    return HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE,
        f"{count} events in one request; at most {MAX_BATCH} a request (split the batch)",
    )


def _items(body: bytes, content_type: str) -> list[Any]:
    """The request's events: a JSON array (or one object), or NDJSON lines."""
    kind = content_type.split(";")[0].strip().lower()
    if kind in NDJSON_TYPES:
        lines = body.split(b"\n")
        count = sum(1 for line in lines if line.strip())
        if count > MAX_BATCH:
            raise _too_many(count)
        return lines
    if kind not in ("application/json", ""):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"Content-Type {kind!r}: send application/json (an array) or application/x-ndjson",
        )
    elements = _array_elements(body)
    if elements is not None:
        if len(elements) > MAX_BATCH:
            raise _too_many(len(elements))
        return elements
    try:
        data = json.loads(body, parse_float=Decimal)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"the body is not JSON ({exc}); for one event a line send application/x-ndjson",
        ) from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "send a JSON array of event objects")
    if len(data) > MAX_BATCH:
        raise _too_many(len(data))
    return data


_split_array = msgspec.json.Decoder(list[msgspec.Raw]).decode  # checks, builds no objects


def _array_elements(body: bytes) -> list[Any] | None:
    """A JSON array's elements, each event object as its own JSON text (the events
    service decodes those straight into events), anything else decoded as before; None
    for a body that is not a JSON array as msgspec reads it (`_items` answers then)."""
    try:
        raws = _split_array(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    out: list[Any] = []
    for raw in raws:
        text = bytes(raw)
        out.append(text if text[:1] == b"{" else json.loads(text, parse_float=Decimal))
    return out


@router.post("/events")
async def post_events(
    request: Request, principal: Annotated[Principal, Depends(require(Role.operator))]
) -> JSONResponse:
    """Ingest up to 10,000 events (JSON array or NDJSON); the answer lists each rejected
    line with its reason."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"body above {MAX_BODY} bytes")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"body above {MAX_BODY} bytes")
    items = _items(body, request.headers.get("content-type", ""))
    runtime = request.app.state.runtime
    try:
        report = await run_in_threadpool(
            ingest_events, runtime, principal.tenant_id, items, source="http"
        )
    except ServiceError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, exc.message) from None
    return JSONResponse(report.as_dict())


def _read(request: Request, fn: Any, *args: Any, **kwargs: Any) -> Any:
    with request.app.state.runtime.reader() as session:
        try:
            return fn(session, *args, **kwargs)
        except NotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, exc.message) from None
        except ServiceError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, exc.message) from None


@router.get("/meters/silent")
def get_silent_meters(
    request: Request,
    principal: Annotated[Principal, Depends(require(Role.viewer))],
    limit: int = 500,
) -> dict[str, Any]:
    """Meters that have stopped reporting (the tenant's silent_after setting)."""
    now = datetime.now(UTC)
    rows = _read(request, meter_views.silent_meters, principal.tenant_id, now=now, limit=limit)
    return {"as_of": now.isoformat(), "meters": rows}


@router.get("/meters/unknown")
def get_unknown_serials(
    request: Request,
    principal: Annotated[Principal, Depends(require(Role.viewer))],
    limit: int = 500,
) -> dict[str, Any]:
    """Serials that events arrived for but that match none of the tenant's meters."""
    rows = _read(request, meter_views.unknown_serials, principal.tenant_id, limit=limit)
    totals = _read(request, meter_views.ingest_totals, principal.tenant_id)
    return {"serials": rows, "totals": totals}


@router.get("/meters/{serial}")
def get_meter(
    request: Request,
    serial: str,
    principal: Annotated[Principal, Depends(require(Role.viewer))],
) -> dict[str, Any]:
    """A meter's state, open alerts and recent alerts."""
    result: dict[str, Any] = _read(request, meter_views.meter_view, principal.tenant_id, serial)
    return result


@router.get("/meters/{serial}/usage")
def get_meter_usage(
    request: Request,
    serial: str,
    principal: Annotated[Principal, Depends(require(Role.viewer))],
    period: Annotated[str, Query(pattern="^(day|month)$")] = "day",
    limit: int = 400,
) -> dict[str, Any]:
    """Consumption per day or month, maximum demand and recharges."""
    result: dict[str, Any] = _read(
        request, meter_views.usage, principal.tenant_id, serial, period, limit=limit
    )
    return result


@router.get("/alerts")
def get_alerts(
    request: Request,
    principal: Annotated[Principal, Depends(require(Role.viewer))],
    kind: str | None = None,
    open: bool = False,
    meter: str | None = None,
    since: datetime | None = None,
    after_id: int | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """Alert episodes, newest first; `after_id` for polling, `open=true` for open ones."""
    if since is not None and since.tzinfo is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "since: give a UTC offset")
    rows = _read(
        request,
        meter_views.list_alerts,
        principal.tenant_id,
        kind=kind,
        open_only=open,
        serial=meter,
        since=since,
        after_id=after_id,
        limit=limit,
    )
    return {"alerts": rows}


class OptOut(BaseModel):
    opted_out: bool


@router.put("/consumers/{consumer_id}/alert-preferences/{kind}")
def put_alert_preference(
    request: Request,
    consumer_id: int,
    kind: str,
    body: OptOut,
    principal: Annotated[Principal, Depends(require(Role.operator))],
) -> dict[str, Any]:
    """A consumer opts out of (or back into) one alert kind; mandatory kinds still go."""
    with request.app.state.runtime.sessions() as session, session.begin():
        try:
            meter_views.set_opt_out(
                session, principal.tenant_id, consumer_id, kind, opted_out=body.opted_out
            )
        except NotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, exc.message) from None
        except ServiceError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, exc.message) from None
    return {"consumer_id": consumer_id, "kind": kind, "opted_out": body.opted_out}


class AlertSettingsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    low_balance_minor: int | None = None
    percent_levels: str | None = None
    hysteresis_minor: int | None = None
    overload_intervals: int | None = None
    stale_after_s: int | None = None
    silent_after_s: int | None = None
    max_skew_s: int | None = None
    grace_text: dict[str, str] | None = None
    mandatory_kinds: str | None = None


@router.put("/alert-settings")
def put_alert_settings(
    request: Request,
    body: AlertSettingsBody,
    principal: Annotated[Principal, Depends(require(Role.admin))],
) -> dict[str, Any]:
    """Change the tenant's alert rule settings (only the fields given)."""
    changes = body.model_dump(exclude_unset=True)
    with request.app.state.runtime.sessions() as session, session.begin():
        try:
            row = meter_views.set_alert_settings(session, principal.tenant_id, **changes)
        except ServiceError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, exc.message) from None
        return {name: getattr(row, name) for name in meter_views.SETTING_FIELDS}

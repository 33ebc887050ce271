"""REST API v1 (JSON). Each route names the least role it needs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile, status
from fastapi.responses import JSONResponse, PlainTextResponse

from meterline.domain.enums import Role
from meterline.domain.headers import parse_mapping
from meterline.services.importer import ImportFailed, load_report, rejected_rows_csv
from meterline.web.auth import Principal, require
from meterline.web.uploads import import_upload

router = APIRouter(prefix="/api/v1")


@router.post("/imports")
def create_import(
    request: Request,
    file: Annotated[UploadFile, File(description="xlsx, xls, ods or csv")],
    principal: Annotated[Principal, Depends(require(Role.operator))],
    dry_run: Annotated[bool, Form()] = False,
    mapping: Annotated[str | None, Form()] = None,
    sheet: Annotated[str | None, Form()] = None,
) -> JSONResponse:
    runtime = request.app.state.runtime
    try:
        column_map = parse_mapping(mapping)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    try:
        report = import_upload(
            runtime,
            principal.tenant_slug,
            file,
            dry_run=dry_run,
            mapping=column_map,
            sheet=sheet,
            started_by=principal.name,
        )
    except ImportFailed as exc:
        body: dict[str, Any] = {"detail": exc.message}
        if exc.report is not None:
            body["report"] = exc.report.as_dict()
        return JSONResponse(body, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    return JSONResponse(report.as_dict(), status_code=status.HTTP_201_CREATED)


@router.get("/imports/{import_id}")
def get_import(
    request: Request,
    import_id: int,
    principal: Annotated[Principal, Depends(require(Role.viewer))],
) -> dict[str, Any]:
    with request.app.state.runtime.sessions() as session:
        report = load_report(session, principal.tenant_id, import_id)
    if report is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no import {import_id}")
    return report.as_dict()


@router.get("/imports/{import_id}/rejected.csv")
def get_import_rejected(
    request: Request,
    import_id: int,
    principal: Annotated[Principal, Depends(require(Role.viewer))],
) -> PlainTextResponse:
    with request.app.state.runtime.sessions() as session:
        text = rejected_rows_csv(session, principal.tenant_id, import_id)
    if text is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no import {import_id}")
    return PlainTextResponse(
        "\ufeff" + text,  # the BOM makes Excel read the CSV as UTF-8
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="import-{import_id}-rejected.csv"'},
    )

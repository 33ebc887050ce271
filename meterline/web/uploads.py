"""Saving an upload to a temporary file without holding it in memory, within a size limit."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

from fastapi import HTTPException, UploadFile, status

from meterline.runtime import Runtime
from meterline.services.importer import ImportReport, import_master

CHUNK = 1 << 20


def save_upload(upload: UploadFile, max_bytes: int) -> Path:
    suffix = Path(upload.filename or "upload").suffix[:10]
    fd, name = tempfile.mkstemp(prefix="meterline-upload-", suffix=suffix)
    path = Path(name)
    size = 0
    with open(fd, "wb") as out:
        while chunk := upload.file.read(CHUNK):
            size += len(chunk)
            if size > max_bytes:
                out.close()
                path.unlink(missing_ok=True)
                raise HTTPException(
                    status.HTTP_413_CONTENT_TOO_LARGE,
                    f"{upload.filename} is larger than the {max_bytes // (1024 * 1024)} MB limit "
                    "(METERLINE_IMPORT_MAX_BYTES); split the sheet or raise the limit",
                )
            out.write(chunk)
    return path


def import_upload(
    runtime: Runtime,
    tenant_slug: str,
    upload: UploadFile,
    *,
    dry_run: bool,
    mapping: Mapping[str, str],
    sheet: str | None,
    started_by: str,
) -> ImportReport:
    """The one way an upload is imported, for the API and the console alike.

    Raises HTTPException(413) for a file over the limit and ImportFailed for a refused one.
    """
    path = save_upload(upload, runtime.settings.import_max_bytes)
    try:
        return import_master(
            runtime.sessions,
            tenant_slug,
            path,
            original_name=upload.filename,
            dry_run=dry_run,
            mapping=mapping,
            sheet=(sheet or "").strip() or None,
            batch_size=runtime.settings.import_batch_size,
            max_bytes=runtime.settings.import_max_bytes,
            started_by=started_by,
        )
    finally:
        path.unlink(missing_ok=True)

"""Saving an upload to a temporary file without holding it in memory, within a size limit."""

from __future__ import annotations

import tempfile
from pathlib import Path

from fastapi import HTTPException, UploadFile, status

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

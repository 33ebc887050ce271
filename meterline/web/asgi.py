"""ASGI entry for production servers: `uvicorn --factory meterline.web.asgi:create`."""

from __future__ import annotations

from fastapi import FastAPI

from meterline.config import get_settings
from meterline.logs import configure_logging
from meterline.runtime import open_runtime
from meterline.web.app import create_app


def create() -> FastAPI:
    settings = get_settings()
    configure_logging(settings.log_json, settings.log_level)
    return create_app(open_runtime(settings))

"""The FastAPI application: REST API, operator console, health and metrics."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.middleware.sessions import SessionMiddleware

from meterline.gc_startup import freeze_startup_objects
from meterline.runtime import Runtime
from meterline.services.dispatch import Dispatcher, DispatcherThread, dispatch_settings
from meterline.web import (
    api,
    api_callbacks,
    api_events,
    api_messaging,
    api_push,
    api_routes,
    console,
    console_meters,
    payments,
    reminders,
)


def create_app(runtime: Runtime, *, dispatcher: bool = False) -> FastAPI:
    """The application; with `dispatcher`, an in-process dispatch worker runs beside it."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        worker = None
        if dispatcher:
            worker = DispatcherThread(
                Dispatcher(runtime.sessions, settings=dispatch_settings(runtime.settings))
            )
            worker.start()
        freeze_startup_objects()
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()

    app = FastAPI(title="Meterline", version="0.1.0", lifespan=lifespan)
    app.state.runtime = runtime
    secret = runtime.settings.secret_key.get_secret_value() or secrets.token_urlsafe(32)
    app.add_middleware(SessionMiddleware, secret_key=secret, same_site="lax", https_only=False)
    app.include_router(api.router)
    app.include_router(api_messaging.router)
    app.include_router(api_push.router)
    app.include_router(api_callbacks.router)
    app.include_router(api_routes.router)
    app.include_router(payments.router)
    app.include_router(reminders.router)
    app.include_router(api_events.router)
    app.include_router(console_meters.router)
    api_messaging.install_error_handlers(app)
    console.mount(app)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz(response: Response) -> dict[str, str]:
        try:
            with runtime.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            response.status_code = 503
            return {"status": "database unreachable", "error": type(exc).__name__}
        return {"status": "ready"}

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app

"""The MQTT worker's handler: one tenant's batch of raw events into the events service."""

from __future__ import annotations

from typing import Any

from meterline.ingest.mqtt import Handler, HandleResult, PermanentFailure
from meterline.runtime import Runtime
from meterline.services.errors import ServiceError


def service_handler(runtime: Runtime, source: str = "mqtt") -> Handler:
    from meterline.services.meter_events import ingest_events

    def handle(tenant: str, items: list[Any]) -> HandleResult:
        try:
            result = ingest_events(runtime.sessions, tenant, items, source=source)
        except ServiceError as exc:  # unknown tenant and the like: retrying cannot help
            raise PermanentFailure(exc.message) from exc
        rejected = list(result.rejected)
        return HandleResult(
            accepted=result.accepted,
            rejected=len(rejected),
            reasons=[str(r) for r in rejected[:3]],
        )

    return handle

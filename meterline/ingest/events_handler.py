"""The MQTT worker's handler: one tenant's batch of raw events into the events service."""

from __future__ import annotations

from typing import Any

from meterline.ingest.mqtt import Handler, HandleResult, PermanentFailure, takes_event_texts
from meterline.runtime import Runtime
from meterline.services.errors import ServiceError
from meterline.services.meter_events import MAX_BATCH, ingest_events


def service_handler(runtime: Runtime, source: str = "mqtt") -> Handler:
    # Items: event objects, or an event's JSON text (the service decodes those fastest).
    @takes_event_texts
    def handle(tenant: str, items: list[Any]) -> HandleResult:
        accepted = rejected = 0
        reasons: list[str] = []
        # The service takes at most MAX_BATCH events a call (one transaction each).
        for lo in range(0, len(items), MAX_BATCH):
            try:
                # The runtime, not its write sessions: the tenant is then looked up in a
                # read-only session, outside SQLite's write queue.
                report = ingest_events(runtime, tenant, items[lo : lo + MAX_BATCH], source=source)
            except ServiceError as exc:  # unknown tenant and the like: retrying cannot help
                raise PermanentFailure(exc.message) from exc
            accepted += report.accepted + report.duplicates
            rejected += report.rejected + report.unknown_meters
            reasons.extend(f"line {e.get('line')}: {e.get('reason')}" for e in report.errors[:3])
            if report.unknown_serials:
                reasons.append(f"unknown meters: {', '.join(report.unknown_serials[:5])}")
        return HandleResult(accepted=accepted, rejected=rejected, reasons=reasons)

    return handle

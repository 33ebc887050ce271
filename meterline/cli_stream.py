"""`meterline simulate` (a fleet of prepaid meters sending events) and `meterline ingest`
(MQTT ingest workers)."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sys
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
    app.command("ingest")(ingest)


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def simulate(
    meters: Annotated[int, typer.Option(help="Fleet size (serials PREFIX00000000 ...)")] = 1000,
    rate: Annotated[float, typer.Option(help="Events per second to send")] = 100.0,
    http: Annotated[
        str | None, typer.Option(help="Meterline base URL, e.g. http://127.0.0.1:8000")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="METERLINE_API_KEY", help="API key (with --http)")
    ] = None,
    mqtt: Annotated[str | None, typer.Option(help="Broker URL, e.g. mqtt://127.0.0.1:1883")] = None,
    tenant: Annotated[str, typer.Option(help="Tenant slug (topic level, fleet owner)")] = "demo",
    topic: Annotated[str, typer.Option(help="MQTT topic template")] = "meterline/{tenant}/events",
    seconds: Annotated[
        float | None, typer.Option(help="Stop after this long (default: until Ctrl-C)")
    ] = None,
    batch: Annotated[int, typer.Option(help="Events per request / per MQTT message")] = 0,
    concurrency: Annotated[int, typer.Option(help="Batches in flight")] = 8,
    prefix: Annotated[str, typer.Option(help="Serial prefix of the fleet")] = "SIM",
    speed: Annotated[
        float, typer.Option(help="Consumption speed-up, so balances fall within minutes")
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="Random seed")] = 1,
    create_fleet: Annotated[
        int | None,
        typer.Option(
            "--create-fleet",
            help="Create N consumers, prepaid accounts and meters for --tenant in the database"
            " (METERLINE_DATABASE_URL), then exit",
        ),
    ] = None,
) -> None:
    """Simulate a fleet of prepaid smart meters sending events at a steady rate."""
    if create_fleet is not None:
        _create_fleet(tenant, create_fleet, prefix)
        return
    if (http is None) == (mqtt is None):
        _fail("give exactly one of --http URL (with --api-key) or --mqtt URL", 2)
    if http is not None and not api_key:
        _fail("--http needs --api-key (or METERLINE_API_KEY)", 2)
    if meters < 1 or rate <= 0:
        _fail("--meters must be at least 1 and --rate above 0", 2)

    from meterline.ingest.sim_send import send_http, send_mqtt
    from meterline.ingest.simulator import FleetSimulator, SimSettings, demo_meters

    sim = FleetSimulator(
        demo_meters(meters, prefix=prefix, tenant=tenant),
        random.Random(seed),
        SimSettings(consumption_scale=speed),
    )

    async def run() -> None:
        stop = _stop_on_signals()
        where = http or mqtt
        typer.echo(f"simulating {meters} meters at {rate:g} events/s to {where} (Ctrl-C stops)")
        sys.stdout.flush()
        if http is not None:
            assert api_key
            stats = await send_http(
                sim,
                http,
                api_key,
                rate=rate,
                seconds=seconds,
                batch=batch or 500,
                concurrency=concurrency,
                stop=stop,
            )
        else:
            assert mqtt
            stats = await send_mqtt(
                sim,
                mqtt,
                tenant,
                rate=rate,
                seconds=seconds,
                batch=batch or 1,
                concurrency=concurrency,
                topic=topic,
                stop=stop,
            )
        typer.echo(stats.summary())
        typer.echo(f"by type: {json.dumps(sim.counts, sort_keys=True)}")
        if stats.failed:
            raise typer.Exit(1)

    try:
        asyncio.run(run())
    except ValueError as exc:
        _fail(str(exc), 2)


def _create_fleet(tenant: str, count: int, prefix: str) -> None:
    from meterline.config import Settings
    from meterline.runtime import open_runtime
    from meterline.services.errors import ServiceError
    from meterline.services.fleet import create_fleet

    rt = open_runtime(Settings())
    try:
        report = create_fleet(
            rt.sessions,
            tenant,
            count,
            prefix=prefix,
            progress=lambda n: (
                typer.echo(f"  {n} / {count}", err=True) if n % 100_000 == 0 else None
            ),
        )
    except ServiceError as exc:
        _fail(exc.message)
        return
    finally:
        rt.close()
    typer.echo(
        f"fleet {prefix}* for {tenant}: {report.created} created, {report.updated} updated,"
        f" {report.unchanged} unchanged in {report.seconds:.1f} s"
    )


def ingest(
    mqtt: Annotated[str, typer.Option(help="Broker URL, e.g. mqtt://127.0.0.1:1883")],
    topic: Annotated[
        str, typer.Option(help="Topic filter; its `+` level is the tenant slug")
    ] = "meterline/+/events",
    group: Annotated[
        str, typer.Option(help="Shared-subscription group: workers in one group split the stream")
    ] = "meterline",
    no_share: Annotated[
        bool, typer.Option("--no-share", help="Plain subscription: this worker sees everything")
    ] = False,
    tenant: Annotated[
        str | None, typer.Option(help="Tenant for a topic filter without a `+` level")
    ] = None,
    batch: Annotated[int, typer.Option(help="Events per call of the events service")] = 5000,
    window: Annotated[float, typer.Option(help="Longest wait (s) before a batch is stored")] = 0.2,
    client_id: Annotated[
        str | None, typer.Option(help="Stable MQTT client id (keeps the session across restarts)")
    ] = None,
    session_expiry: Annotated[
        int | None,
        typer.Option(
            help="Seconds the broker keeps this worker's session after a disconnect"
            " (default: 3600 with --client-id, else 0)"
        ),
    ] = None,
) -> None:
    """Consume meter events from an MQTT broker into the database (one worker)."""
    from meterline.config import Settings
    from meterline.gc_startup import freeze_startup_objects
    from meterline.ingest.events_handler import service_handler
    from meterline.ingest.mqtt import IngestSettings, MqttIngestWorker
    from meterline.ingest.sim_send import broker_address
    from meterline.logs import configure_logging
    from meterline.runtime import open_runtime

    try:
        broker_address(mqtt)
    except ValueError as exc:
        _fail(str(exc), 2)
    if "+" not in topic and not tenant:
        _fail(f"topic {topic!r} has no `+` level for the tenant: give --tenant", 2)
    rt = open_runtime(Settings())
    configure_logging(rt.settings.log_json, rt.settings.log_level)
    worker = MqttIngestWorker(
        IngestSettings(
            url=mqtt,
            topic=topic,
            group=None if no_share else group,
            tenant=tenant,
            batch_events=batch,
            window_s=window,
            client_id=client_id,
            session_expiry_s=session_expiry,
        ),
        service_handler(rt),
    )

    async def run() -> None:
        stop = _stop_on_signals()
        freeze_startup_objects()
        await worker.run(stop)

    try:
        asyncio.run(run())
    finally:
        rt.close()
        typer.echo(json.dumps(worker.counters.as_dict()), err=True)

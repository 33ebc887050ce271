"""The `meterline` command line (typer)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from meterline.cli_push import push_app
from meterline.domain.enums import Role, TenantKind
from meterline.runtime import Runtime
from meterline.services.errors import ServiceError

app = typer.Typer(
    help="Meterline: messaging and self-service hub for utilities.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema and planner statistics.", no_args_is_help=True)
tenant_app = typer.Typer(help="Tenants: utilities and cooperatives.", no_args_is_help=True)
user_app = typer.Typer(help="Console operators.", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys for integrating systems.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(tenant_app, name="tenant")
app.add_typer(user_app, name="user")
app.add_typer(apikey_app, name="apikey")
app.add_typer(push_app, name="push")


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _runtime() -> Runtime:
    from meterline.config import Settings
    from meterline.runtime import open_runtime

    # Read the environment afresh: tests run several commands with different databases.
    return open_runtime(Settings())


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply the Alembic migrations to METERLINE_DATABASE_URL (default ./meterline.db)."""
    from meterline.config import Settings
    from meterline.store.migrate import upgrade

    url = Settings().resolved_database_url()
    upgrade(url, revision)
    typer.echo(f"database at revision {revision}")


@db_app.command("analyze")
def db_analyze() -> None:
    """Refresh the query planner's statistics of every table (a full ANALYZE).

    Imports keep those of consumers and accounts; run this now and then (a quiet hour)
    for messages, alerts and meter data. On SQLite it holds the write lock while it reads.
    """
    import time

    from meterline.store.planner_statistics import analyze_everything

    rt = _runtime()
    try:
        start = time.perf_counter()
        with rt.sessions() as session, session.begin():
            analyze_everything(session)
        typer.echo(f"planner statistics refreshed in {time.perf_counter() - start:.1f} s")
    finally:
        rt.close()


@tenant_app.command("create")
def tenant_create(
    slug: str,
    name: Annotated[str, typer.Option(help="Display name")],
    country: Annotated[str, typer.Option(help="ISO country code, e.g. IN, BD, RU")],
    currency: Annotated[str, typer.Option(help="ISO currency code, e.g. INR, BDT, RUB")],
    timezone: Annotated[str, typer.Option(help="IANA time zone, e.g. Asia/Kolkata")],
    kind: Annotated[TenantKind, typer.Option(help="utility or cooperative")] = TenantKind.utility,
    languages: Annotated[str | None, typer.Option(help="Comma-separated: hi,en")] = None,
    phone_region: Annotated[str | None, typer.Option(help="Default phone region")] = None,
) -> None:
    """Create a tenant."""
    from meterline.services.tenants import create_tenant

    rt = _runtime()
    try:
        with rt.sessions() as session, session.begin():
            t = create_tenant(
                session,
                slug=slug,
                name=name,
                country=country,
                currency=currency,
                timezone=timezone,
                kind=kind,
                languages=languages.split(",") if languages else None,
                phone_region=phone_region,
            )
            typer.echo(
                f"created tenant {t.slug} ({t.kind.value}, {t.country}, {t.currency}, {t.timezone})"
            )
    except ServiceError as exc:
        _fail(exc.message)


@tenant_app.command("quiet-hours")
def tenant_quiet_hours(
    slug: str,
    start: Annotated[str | None, typer.Option(help="Non-urgent messages wait from (HH:MM)")] = None,
    end: Annotated[str | None, typer.Option(help="... until (HH:MM), tenant's time zone")] = None,
    promo_start: Annotated[str | None, typer.Option(help="Promotional window from")] = None,
    promo_end: Annotated[str | None, typer.Option(help="Promotional window until")] = None,
) -> None:
    """Show or change a tenant's quiet hours (start == end switches a window off)."""
    from meterline.services.tenants import get_tenant, set_quiet_hours

    rt = _runtime()
    try:
        with rt.sessions() as session, session.begin():
            tenant = set_quiet_hours(
                session,
                get_tenant(session, slug),
                start=start,
                end=end,
                promo_start=promo_start,
                promo_end=promo_end,
            )
            typer.echo(
                f"quiet {tenant.quiet_start}-{tenant.quiet_end}, promotional"
                f" {tenant.promo_quiet_start}-{tenant.promo_quiet_end} ({tenant.timezone})"
            )
    except ServiceError as exc:
        _fail(exc.message)
    finally:
        rt.close()


@tenant_app.command("list")
def tenant_list() -> None:
    """List tenants."""
    from sqlalchemy import select

    from meterline.store.models import Tenant

    rt = _runtime()
    with rt.sessions() as session:
        for t in session.scalars(select(Tenant).order_by(Tenant.slug)):
            typer.echo(
                f"{t.slug}\t{t.name}\t{t.kind.value}\t{t.country}\t{t.currency}\t{t.timezone}"
            )


@user_app.command("create")
def user_create(
    username: str,
    tenant: Annotated[str, typer.Option(help="Tenant slug")],
    role: Annotated[Role, typer.Option(help="admin, operator or viewer")] = Role.operator,
    language: Annotated[str, typer.Option(help="Console language: en, hi, bn, ru")] = "en",
    password: Annotated[
        str | None,
        typer.Option(help="Omit to be prompted, or set METERLINE_NEW_PASSWORD", show_default=False),
    ] = None,
) -> None:
    """Create a console operator (password stored as an argon2 hash)."""
    from meterline.services.security import create_operator
    from meterline.services.tenants import get_tenant

    password = password or os.environ.get("METERLINE_NEW_PASSWORD")
    if not password:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    rt = _runtime()
    try:
        with rt.sessions() as session, session.begin():
            op = create_operator(
                session, get_tenant(session, tenant), username, password, role, language
            )
            typer.echo(f"created {op.role.value} {op.username} for tenant {tenant}")
    except ServiceError as exc:
        _fail(exc.message)


@apikey_app.command("create")
def apikey_create(
    tenant: Annotated[str, typer.Option(help="Tenant slug")],
    name: Annotated[str, typer.Option(help="What the key is for")],
    role: Annotated[Role, typer.Option()] = Role.operator,
) -> None:
    """Create an API key; it is printed once and only its hash is stored."""
    from meterline.services.security import create_api_key
    from meterline.services.tenants import get_tenant

    rt = _runtime()
    try:
        with rt.sessions() as session, session.begin():
            _key, secret = create_api_key(session, get_tenant(session, tenant), name, role)
    except ServiceError as exc:
        _fail(exc.message)
    typer.echo(secret)


@app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(help="xlsx, xls, ods or csv")],
    tenant: Annotated[str, typer.Option(help="Tenant slug")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check everything, store nothing")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as one JSON object")
    ] = False,
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="FIELD=COLUMN, e.g. account='Cons ID' or account=C"),
    ] = None,
    sheet: Annotated[str | None, typer.Option(help="Sheet name (default: first visible)")] = None,
) -> None:
    """Import consumers and accounts from a master sheet."""
    from meterline.domain.headers import parse_mapping
    from meterline.services.importer import ImportFailed, import_master

    if not file.exists():
        _fail(f"{file}: no such file")
    try:
        mapping = parse_mapping(";".join(map_ or []))
    except ValueError as exc:
        _fail(str(exc), 2)
    rt = _runtime()
    try:
        report = import_master(
            rt.sessions,
            tenant,
            file,
            dry_run=dry_run,
            mapping=mapping,
            sheet=sheet,
            batch_size=rt.settings.import_batch_size,
            max_bytes=rt.settings.import_max_bytes,
            started_by="cli",
        )
    except ImportFailed as exc:
        if as_json:
            body = exc.report.as_dict() if exc.report else {}
            body["message"] = exc.message
            typer.echo(json.dumps(body, ensure_ascii=False, default=str))
        _fail(exc.message)
        return
    except ServiceError as exc:
        _fail(exc.message)
        return
    if as_json:
        typer.echo(json.dumps(report.as_dict(), ensure_ascii=False, default=str))
        return
    verb = "would import" if dry_run else "imported"
    typer.echo(
        f"{verb} {report.filename}: {report.inserted} inserted, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.rejected} rejected, {report.skipped} skipped"
    )
    for w in report.warnings:
        typer.echo(f"warning: {w}")
    for e in report.errors[:50]:
        col = f" [{e['column']}]" if e["column"] else ""
        val = f" {e['value']!r}" if e["value"] is not None else ""
        typer.echo(f"row {e['row']}{col}{val}: {e['reason']}")
    if len(report.errors) > 50:
        typer.echo(f"... and {len(report.errors) - 50} more (use --json for all)")


@app.command("serve")
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    no_dispatcher: Annotated[
        bool,
        typer.Option("--no-dispatcher", help="Leave sending to `meterline worker` processes"),
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Web processes (uvicorn workers); the dispatcher still runs once, in the"
            " parent process. On SQLite they queue for the write lock (see docs/deployment.md)",
        ),
    ] = 1,
) -> None:
    """Serve the API and the operator console, with a dispatcher in-process."""
    import uvicorn

    from meterline.logs import configure_logging
    from meterline.web.app import create_app

    rt = _runtime()
    configure_logging(rt.settings.log_json, rt.settings.log_level)
    if workers == 1:
        uvicorn.run(
            create_app(rt, dispatcher=not no_dispatcher), host=host, port=port, log_level="info"
        )
        return
    from meterline.services.dispatch import Dispatcher, DispatcherThread, dispatch_settings

    # Each worker builds its app from the same environment (`web.asgi.create`, no
    # dispatcher); the one dispatcher runs here, in the supervising process. Console
    # sessions must be signed alike in every worker: one secret for all of them.
    if not rt.settings.secret_key.get_secret_value():
        import secrets

        os.environ["METERLINE_SECRET_KEY"] = secrets.token_urlsafe(32)
    dispatcher = None
    if not no_dispatcher:
        dispatcher = DispatcherThread(
            Dispatcher(rt.sessions, settings=dispatch_settings(rt.settings))
        )
        dispatcher.start()
    try:
        uvicorn.run(
            "meterline.web.asgi:create",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
        )
    finally:
        if dispatcher is not None:
            dispatcher.stop()
        rt.close()


@app.command("demo")
def demo(
    host: str = "127.0.0.1",
    port: int = 8000,
    consumers: Annotated[int, typer.Option(help="Rows in the generated master sheet")] = 3000,
    directory: Annotated[Path, typer.Option("--dir", help="Where the demo database lives")] = Path(
        "demo-data"
    ),
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Prepare the data and exit")] = False,
    meters: Annotated[int, typer.Option(help="Simulated prepaid meters (0: none)")] = 300,
    rate: Annotated[float, typer.Option(help="Their events per second")] = 4.0,
) -> None:
    """A demo utility on SQLite: generated master sheet imported, reminders with payment
    links sent (WhatsApp, falling back to SMS), console served, and a small fleet of
    simulated prepaid meters reporting so alerts appear as you watch."""
    from pydantic import SecretStr

    from meterline.config import get_settings
    from meterline.demo import LiveMeters, prepare_demo, prepare_fleet

    # The reminders' payment links point at the address served below (or at
    # METERLINE_PUBLIC_URL when set, e.g. a tunnel to show the demo on a phone).
    settings = get_settings()
    public_url = (
        settings.public_url if os.environ.get("METERLINE_PUBLIC_URL") else f"http://{host}:{port}"
    )
    info = prepare_demo(directory, consumers, public_url=public_url)
    typer.echo(info.summary())
    if meters > 0:
        fleet = prepare_fleet(info.database_url, meters)
        typer.echo(f"meters: {fleet.created} simulated prepaid meters, {rate:g} events/s")
    if no_serve:
        return
    import uvicorn

    from meterline.logs import configure_logging
    from meterline.runtime import open_runtime
    from meterline.web.app import create_app

    settings = settings.model_copy(
        update={"secret_key": SecretStr(info.secret_key), "public_url": info.public_url}
    )
    rt = open_runtime(settings, database_url=info.database_url)
    configure_logging(False, "INFO")
    typer.echo(f"console: http://{host}:{port}/console  (login {info.username} / {info.password})")
    sys.stdout.flush()
    live = LiveMeters(rt.sessions, meters, rate=rate) if meters > 0 else None
    if live is not None:
        live.start()
    try:
        uvicorn.run(create_app(rt, dispatcher=True), host=host, port=port, log_level="warning")
    finally:
        if live is not None:
            live.stop()


def _register_payments(app: typer.Typer) -> None:
    from meterline.cli_payments import register

    register(app)


def _register_messaging() -> None:
    from meterline.cli_messaging import register

    register(app)


_register_messaging()
_register_payments(app)


def _register_routes() -> None:
    from meterline.cli_routes import route_app

    app.add_typer(route_app, name="route")


_register_routes()


def _register_events() -> None:
    from meterline.cli_events import events_app

    app.add_typer(events_app, name="events")


_register_events()


def _register_stream() -> None:
    from meterline.cli_stream import register

    register(app)


_register_stream()

if __name__ == "__main__":  # pragma: no cover
    app()

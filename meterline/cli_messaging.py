"""The messaging commands of `meterline`: sms estimate, worker, channel, credit, send."""

from __future__ import annotations

import json
import signal
import threading
from datetime import UTC, datetime
from typing import Annotated

import typer

from meterline.domain.enums import Medium
from meterline.services.errors import ServiceError

sms_app = typer.Typer(help="SMS encoding, segments and cost.", no_args_is_help=True)
channel_app = typer.Typer(help="Provider accounts (channels).", no_args_is_help=True)
credit_app = typer.Typer(help="Prepaid messaging credit.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(sms_app, name="sms")
    app.add_typer(channel_app, name="channel")
    app.add_typer(credit_app, name="credit")
    app.command("worker")(worker)
    app.command("send")(send)


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@sms_app.command("estimate")
def sms_estimate(
    text: str,
    tenant: Annotated[str | None, typer.Option(help="Price at this tenant's rate")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object")] = False,
) -> None:
    """Encoding (GSM-7 / UCS-2), characters, segments and cost of a text."""
    from meterline.services import credit

    price, parts, currency = 0, 10, ""
    if tenant:
        from meterline.cli import _runtime
        from meterline.services.tenants import get_tenant

        rt = _runtime()
        try:
            with rt.sessions() as session, session.begin():
                t = get_tenant(session, tenant)
                account = credit.credit_account(session, t.id)
                price, parts, currency = account.sms_price_minor, account.max_sms_parts, t.currency
        except ServiceError as exc:
            _fail(exc.message)
        finally:
            rt.close()
    view = credit.estimate_view(text, price, parts, currency or "XXX")
    if not tenant:
        view.pop("cost", None)
        view["currency"] = None
    if as_json:
        typer.echo(json.dumps(view, ensure_ascii=False))
    else:
        typer.echo(
            f"{view['encoding']}: {view['characters']} characters, {view['segments']} segment(s)"
            + (f", cost {view['cost']}" if tenant else "")
        )
    if view["too_long"]:
        _fail(view["error"], 2)


def worker(
    once: Annotated[bool, typer.Option("--once", help="Send what is due now, then exit")] = False,
) -> None:
    """A dispatch worker: claims due messages and sends them (run as many as you like)."""
    from meterline.cli import _runtime
    from meterline.logs import configure_logging
    from meterline.services.dispatch import Dispatcher, dispatch_settings, drain, run_loop

    rt = _runtime()
    configure_logging(rt.settings.log_json, rt.settings.log_level)
    dispatcher = Dispatcher(rt.sessions, settings=dispatch_settings(rt.settings))
    if once:
        report = drain(dispatcher)
        typer.echo(json.dumps(vars(report)))
        return
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    run_loop(dispatcher.run(stop))
    rt.close()


@channel_app.command("add")
def channel_add(
    name: str,
    type_name: Annotated[str, typer.Option("--type", help="sandbox, sms_http, twilio, ...")],
    tenant: Annotated[str, typer.Option(help="Tenant slug")],
    config: Annotated[str, typer.Option(help="Settings as JSON; secrets as env:NAME")] = "{}",
    medium: Annotated[Medium | None, typer.Option(help="Override the type's medium")] = None,
    rate: Annotated[
        float | None, typer.Option(help="Messages per second at most (default: the type's)")
    ] = None,
    default: Annotated[bool, typer.Option(help="The tenant's default for its medium")] = True,
) -> None:
    """Add a provider account to a tenant."""
    from meterline.cli import _runtime
    from meterline.services.channel_accounts import add_channel_account, public_view
    from meterline.services.tenants import get_tenant

    try:
        settings = json.loads(config)
    except json.JSONDecodeError as exc:
        _fail(f"--config is not JSON: {exc}")
    rt = _runtime()
    try:
        with rt.sessions() as session, session.begin():
            t = get_tenant(session, tenant)
            account = add_channel_account(
                session,
                t.id,
                name=name,
                type_name=type_name,
                config=settings,
                medium=medium,
                rate_per_second=rate,
                is_default=default,
            )
            view = public_view(account)
        view["callback_url"] = f"{rt.settings.public_url.rstrip('/')}/api/v1/callbacks/{view['id']}"
        typer.echo(json.dumps(view))
    except ServiceError as exc:
        _fail(exc.message)
    finally:
        rt.close()


@channel_app.command("list")
def channel_list(tenant: Annotated[str, typer.Option(help="Tenant slug")]) -> None:
    from meterline.cli import _runtime
    from meterline.services.channel_accounts import list_channel_accounts, public_view
    from meterline.services.tenants import get_tenant

    rt = _runtime()
    try:
        with rt.sessions() as session:
            t = get_tenant(session, tenant)
            for account in list_channel_accounts(session, t.id):
                typer.echo(json.dumps(public_view(account)))
    except ServiceError as exc:
        _fail(exc.message)
    finally:
        rt.close()


@credit_app.command("topup")
def credit_topup(
    amount: Annotated[str, typer.Argument(help="In major units, e.g. 500.00")],
    tenant: Annotated[str, typer.Option(help="Tenant slug")],
    note: str | None = None,
) -> None:
    """Add prepaid messaging credit."""
    from meterline.cli import _runtime
    from meterline.services import credit
    from meterline.services.tenants import get_tenant
    from meterline.services.transactions import to_minor

    rt = _runtime()
    try:
        with rt.sessions() as session, session.begin():
            t = get_tenant(session, tenant)
            totals = credit.top_up(session, t.id, to_minor(amount, t.currency), by="cli", note=note)
            typer.echo(
                f"balance {credit.money_text(totals.balance_minor, t.currency)},"
                f" held {credit.money_text(totals.held_minor, t.currency)}"
            )
    except ServiceError as exc:
        _fail(exc.message)
    finally:
        rt.close()


@credit_app.command("pricing")
def credit_pricing(
    tenant: Annotated[str, typer.Option(help="Tenant slug")],
    sms_price: Annotated[str | None, typer.Option(help="Per SMS segment, major units")] = None,
    overdraft: Annotated[str | None, typer.Option(help="Allowed below zero, major units")] = None,
    max_parts: Annotated[int | None, typer.Option(help="Longest SMS allowed, in parts")] = None,
) -> None:
    """Set the per-segment SMS price, the overdraft and the maximum parts."""
    from meterline.cli import _runtime
    from meterline.services import credit
    from meterline.services.tenants import get_tenant
    from meterline.services.transactions import to_minor

    rt = _runtime()
    try:
        with rt.sessions() as session, session.begin():
            t = get_tenant(session, tenant)

            def minor(v: str | None) -> int | None:
                return None if v is None else to_minor(v, t.currency, allow_zero=True)

            account = credit.set_pricing(
                session,
                t.id,
                sms_price_minor=minor(sms_price),
                overdraft_minor=minor(overdraft),
                max_sms_parts=max_parts,
            )
            typer.echo(
                f"SMS {credit.money_text(account.sms_price_minor, t.currency)} per segment,"
                f" overdraft {credit.money_text(account.overdraft_minor, t.currency)},"
                f" at most {account.max_sms_parts} parts"
            )
    except ServiceError as exc:
        _fail(exc.message)
    finally:
        rt.close()


def send(
    to: Annotated[str, typer.Argument(help="A phone number")],
    text: Annotated[str, typer.Argument(help="The message")],
    tenant: Annotated[str, typer.Option(help="Tenant slug")],
    key: Annotated[str | None, typer.Option(help="Idempotency key")] = None,
) -> None:
    """Queue one custom SMS (a worker or `meterline serve` sends it)."""
    import uuid

    from meterline.cli import _runtime
    from meterline.services.notify import Notification, notify
    from meterline.services.tenants import get_tenant

    rt = _runtime()
    try:
        with rt.sessions() as session, session.begin():
            t = get_tenant(session, tenant)
            queued = notify(
                session,
                t,
                Notification(
                    kind="custom",
                    data={"text": text},
                    idempotency_key=key or f"cli:{uuid.uuid4().hex}",
                    phone=to,
                ),
                now=datetime.now(UTC),
            )
        typer.echo(
            json.dumps(
                {
                    "message_id": queued.message_id,
                    "created": queued.created,
                    "status": str(queued.status),
                    "segments": queued.segments,
                    "encoding": queued.encoding,
                    "cost_minor": queued.cost_minor,
                }
            )
        )
    except ServiceError as exc:
        _fail(exc.message)
    finally:
        rt.close()

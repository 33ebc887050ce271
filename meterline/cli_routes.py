"""`meterline route`: each notification kind's ordered channels (fallback routing)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from meterline.services.errors import ServiceError

route_app = typer.Typer(
    help="Routes: the channels each notification kind tries, in order.", no_args_is_help=True
)


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _steps(media: str, after: list[str]) -> list[object]:
    """'whatsapp,sms' and ['whatsapp=600'] -> the route's steps."""
    timeouts: dict[str, int | None] = {}
    for item in after:
        name, sep, seconds = item.partition("=")
        if not sep:
            _fail(f"--after {item!r}: write MEDIUM=SECONDS, e.g. whatsapp=900 (0 = off)")
        try:
            timeouts[name.strip().lower()] = int(seconds)
        except ValueError:
            _fail(f"--after {item!r}: {seconds!r} is not a whole number of seconds")
    names = [m.strip().lower() for m in media.split(",") if m.strip()]
    unknown = sorted(set(timeouts) - set(names))
    if unknown:
        _fail(f"--after {unknown[0]}: that medium is not in the route {media!r}")
    return [
        {"medium": n, "fallback_after_seconds": timeouts[n]} if n in timeouts else n for n in names
    ]


def _show(route: dict[str, object], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(route))
        return
    parts = []
    for step in route["steps"]:  # type: ignore[attr-defined]
        after = step["fallback_after_seconds"]
        parts.append(f"{step['medium']} (after {after} s)" if after else str(step["medium"]))
    suffix = "  [default]" if route["default"] else ""
    typer.echo(f"{route['kind']}: {' -> '.join(parts)}{suffix}")


@route_app.command("set")
def route_set(
    kind: str,
    media: Annotated[str, typer.Argument(help="Channels in order, e.g. whatsapp,sms")],
    tenant: Annotated[str, typer.Option(help="Tenant slug")],
    after: Annotated[
        list[str] | None,
        typer.Option(help="MEDIUM=SECONDS without a delivery status before falling back"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Set the tenant's route for a notification kind."""
    from meterline.cli import _runtime
    from meterline.services.routes import set_route
    from meterline.services.tenants import get_tenant

    steps = _steps(media, after or [])
    rt = _runtime()
    try:
        with rt.sessions() as session, session.begin():
            t = get_tenant(session, tenant)
            _show(set_route(session, t.id, kind, steps, by="cli").as_json(), as_json)
    except ServiceError as exc:
        _fail(exc.message)
    finally:
        rt.close()


@route_app.command("reset")
def route_reset(kind: str, tenant: Annotated[str, typer.Option(help="Tenant slug")]) -> None:
    """Back to the shipped default route for a kind."""
    from meterline.cli import _runtime
    from meterline.services.routes import reset_route
    from meterline.services.tenants import get_tenant

    rt = _runtime()
    try:
        with rt.sessions() as session, session.begin():
            t = get_tenant(session, tenant)
            _show(reset_route(session, t.id, kind).as_json(), False)
    except ServiceError as exc:
        _fail(exc.message)
    finally:
        rt.close()


@route_app.command("list")
def route_list(
    tenant: Annotated[str, typer.Option(help="Tenant slug")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Every kind's route for the tenant (its own or the default)."""
    from meterline.cli import _runtime
    from meterline.services.routes import list_routes
    from meterline.services.tenants import get_tenant

    rt = _runtime()
    try:
        with rt.sessions() as session:
            t = get_tenant(session, tenant)
            routes = [r.as_json() for r in list_routes(session, t.id)]
    except ServiceError as exc:
        _fail(exc.message)
    finally:
        rt.close()
    if as_json:
        typer.echo(json.dumps({"routes": routes}))
        return
    for route in routes:
        _show(route, False)

"""Per-tenant routes: the ordered media each notification kind tries (domain.routing).

A tenant's own route for a kind is a row in ``routes``; a kind without one uses the
shipped default (`domain.routing.DEFAULT_ROUTES`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from meterline.domain.notification_kinds import KINDS
from meterline.domain.routing import Route, RouteRefused, default_route, parse_route
from meterline.services.errors import ServiceError
from meterline.store.models import RouteConfig


@dataclass(frozen=True)
class KindRoute:
    kind: str
    route: Route
    is_default: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "steps": [s.as_json() for s in self.route],
            "media": [str(s.medium) for s in self.route],
            "default": self.is_default,
        }


def _stored(row: RouteConfig) -> Route:
    return parse_route(row.kind, row.steps)


def tenant_routes(session: Session, tenant_id: int) -> dict[str, Route]:
    """The tenant's own routes by kind (kinds without one are absent: use the default)."""
    rows = session.scalars(select(RouteConfig).where(RouteConfig.tenant_id == tenant_id))
    return {row.kind: _stored(row) for row in rows}


def route_for(session: Session, tenant_id: int, kind: str) -> Route:
    row = session.scalar(
        select(RouteConfig).where(RouteConfig.tenant_id == tenant_id, RouteConfig.kind == kind)
    )
    return _stored(row) if row is not None else default_route(kind)


def list_routes(session: Session, tenant_id: int) -> list[KindRoute]:
    """Every kind's route for the tenant, its own or the default, in kind order."""
    own = tenant_routes(session, tenant_id)
    return [
        KindRoute(kind, own.get(kind, default_route(kind)), kind not in own)
        for kind in sorted(KINDS)
    ]


def set_route(
    session: Session, tenant_id: int, kind: str, steps: Sequence[Any], *, by: str
) -> KindRoute:
    """Store the tenant's route for `kind` (checked: see `domain.routing.parse_route`)."""
    try:
        route = parse_route(kind, steps)
    except RouteRefused as exc:
        raise ServiceError(str(exc)) from None
    row = session.scalar(
        select(RouteConfig).where(RouteConfig.tenant_id == tenant_id, RouteConfig.kind == kind)
    )
    if row is None:
        row = RouteConfig(tenant_id=tenant_id, kind=kind)
        session.add(row)
    row.steps = [s.as_json() for s in route]
    row.updated_by = by
    session.flush()
    return KindRoute(kind, route, False)


def reset_route(session: Session, tenant_id: int, kind: str) -> KindRoute:
    """Back to the shipped default for `kind`."""
    try:
        parse_route(kind, ["sms"])  # checks the kind
    except RouteRefused as exc:
        raise ServiceError(str(exc)) from None
    session.execute(
        delete(RouteConfig).where(RouteConfig.tenant_id == tenant_id, RouteConfig.kind == kind)
    )
    return KindRoute(kind, default_route(kind), True)

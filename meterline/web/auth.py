"""Who is calling: an API key (integrating systems) or a console session (operators).

Every route states the least role it needs; the principal also fixes the tenant, so
no handler ever sees another tenant's rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request, status

from meterline.domain.enums import Role
from meterline.services.security import api_key_holder, operator_with_tenant

RANK = {Role.viewer: 0, Role.operator: 1, Role.admin: 2}


@dataclass(frozen=True)
class Principal:
    tenant_id: int
    tenant_slug: str
    role: Role
    name: str  # operator username or "api-key:<name>"

    def allows(self, needed: Role) -> bool:
        return RANK[self.role] >= RANK[needed]


def _from_api_key(request: Request) -> Principal | None:
    header = request.headers.get("authorization", "")
    presented = header[7:].strip() if header.lower().startswith("bearer ") else ""
    presented = presented or request.headers.get("x-api-key", "").strip()
    if not presented:
        return None
    with request.app.state.runtime.reader() as session:
        holder = api_key_holder(session, presented)
        if holder is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid or revoked API key")
        return Principal(
            holder.tenant_id, holder.tenant_slug, holder.role, f"api-key:{holder.name}"
        )


def operator_from_session(request: Request) -> Principal | None:
    op_id = request.session.get("operator_id") if "session" in request.scope else None
    if op_id is None:
        return None
    with request.app.state.runtime.reader() as session:
        row = operator_with_tenant(session, op_id)
        if row is None:
            return None
        op, tenant = row
        return Principal(tenant.id, tenant.slug, op.role, op.username)


def require(role: Role) -> Callable[[Request], Principal]:
    """FastAPI dependency: the caller, who must hold at least `role`."""

    def dependency(request: Request) -> Principal:
        principal = _from_api_key(request) or operator_from_session(request)
        if principal is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "authentication required: send 'Authorization: Bearer <API key>' or log in",
            )
        if not principal.allows(role):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this needs the {role.value} role")
        return principal

    return dependency

"""Operators' passwords (argon2) and API keys (random secret, SHA-256 stored)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from meterline.domain.enums import Role
from meterline.services.errors import Conflict, ServiceError
from meterline.store.models import ApiKey, Operator, Tenant

_hasher = PasswordHasher()
API_KEY_PREFIX = "ml_"
# Spent when the user does not exist, so login time does not reveal who has an account.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise ServiceError("password: use at least 8 characters")
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def create_operator(
    session: Session, tenant: Tenant, username: str, password: str, role: Role, language: str = "en"
) -> Operator:
    username = username.strip()
    if not username:
        raise ServiceError("username is empty")
    if session.scalar(select(Operator.id).where(Operator.username == username)) is not None:
        raise Conflict(f"user {username!r} already exists")
    op = Operator(
        tenant_id=tenant.id,
        username=username,
        password_hash=hash_password(password),
        role=role,
        language=language,
    )
    session.add(op)
    session.flush()
    return op


def authenticate(session: Session, username: str, password: str) -> Operator | None:
    op = session.scalar(select(Operator).where(Operator.username == username.strip()))
    if op is None:
        verify_password(_DUMMY_HASH, password)
        return None
    return op if verify_password(op.password_hash, password) else None


def operator_with_tenant(session: Session, operator_id: int) -> tuple[Operator, Tenant] | None:
    """A logged-in operator and their tenant; None when the operator no longer exists."""
    row = session.execute(
        select(Operator, Tenant)
        .join(Tenant, Operator.tenant_id == Tenant.id)
        .where(Operator.id == operator_id)
    ).first()
    return (row[0], row[1]) if row is not None else None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(session: Session, tenant: Tenant, name: str, role: Role) -> tuple[ApiKey, str]:
    """Returns the row and the full key; the key is shown once and never stored."""
    prefix = secrets.token_hex(6)
    secret = f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(tenant_id=tenant.id, name=name, prefix=prefix, key_hash=_digest(secret), role=role)
    session.add(key)
    session.flush()
    return key, secret


def verify_api_key(session: Session, presented: str) -> ApiKey | None:
    parts = presented.split("_")
    if len(parts) < 3 or not presented.startswith(API_KEY_PREFIX):
        return None
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
    if key is None or key.revoked_at is not None:
        return None
    return key if hmac.compare_digest(key.key_hash, _digest(presented)) else None


@dataclass(frozen=True)
class KeyHolder:
    """Who a verified API key speaks for."""

    tenant_id: int
    tenant_slug: str
    role: Role
    name: str


# One prepared statement: the key and its tenant are looked up on every API call.
_KEY_WITH_TENANT = (
    select(ApiKey.key_hash, ApiKey.revoked_at, ApiKey.role, ApiKey.name, Tenant.id, Tenant.slug)
    .join(Tenant, Tenant.id == ApiKey.tenant_id)
    .where(ApiKey.prefix == bindparam("prefix"))
)


def api_key_holder(session: Session, presented: str) -> KeyHolder | None:
    """verify_api_key and the key's tenant in one query; None for an unknown, wrong or
    revoked key."""
    parts = presented.split("_")
    if len(parts) < 3 or not presented.startswith(API_KEY_PREFIX):
        return None
    row = session.connection().execute(_KEY_WITH_TENANT, {"prefix": parts[1]}).first()
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.key_hash, _digest(presented)):
        return None
    return KeyHolder(row.id, row.slug, row.role, row.name)


def revoke_api_key(session: Session, key: ApiKey) -> None:
    key.revoked_at = datetime.now(UTC)

"""Browser push subscriptions: saved as a consumer's ``webpush`` contact point.

The contact's ``value`` is the subscription's endpoint and its ``details`` hold the keys
(``{"keys": {"p256dh", "auth"}}``), which the dispatcher hands the Web Push adapter. The
endpoint identifies the browser, so saving the same endpoint again updates that contact
(new keys, or a new consumer signed in on the same browser) instead of adding one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from meterline.channels.webpush.keys import check_endpoint, check_subscription_keys
from meterline.domain.enums import LANGUAGES, ContactKind, Medium
from meterline.services.channel_accounts import default_account
from meterline.services.errors import NotFound, ServiceError
from meterline.store.models import Account, Consumer, ContactPoint


@dataclass(frozen=True)
class Saved:
    contact_id: int
    consumer_id: int
    created: bool  # False: this endpoint was already saved (updated in place)


def _consumer(
    session: Session, tenant_id: int, consumer_id: int | None, account_number: str | None
) -> Consumer:
    if (consumer_id is None) == (account_number is None):
        raise ServiceError("give consumer_id or account_number (one of them)")
    if consumer_id is not None:
        consumer = session.get(Consumer, consumer_id)
        if consumer is None or consumer.tenant_id != tenant_id:
            raise NotFound(f"no consumer {consumer_id}")
        return consumer
    found = session.scalar(
        select(Consumer)
        .join(Account, Account.consumer_id == Consumer.id)
        .where(Account.tenant_id == tenant_id, Account.number == account_number)
    )
    if found is None:
        raise NotFound(f"no account {account_number!r}")
    return found


def save_subscription(
    session: Session,
    tenant_id: int,
    *,
    subscription: Mapping[str, Any],
    consumer_id: int | None = None,
    account_number: str | None = None,
    language: str | None = None,
    allow_local: bool = False,
) -> Saved:
    """Save a browser's ``PushSubscription`` JSON for a consumer (idempotent by endpoint).

    ``language``, when given, is the language the consumer uses the app in: it becomes
    their preferred language, so pushes (and other messages) come in it. Endpoints on
    local or private addresses are refused unless ``allow_local`` (tests, development).
    """
    try:
        endpoint = check_endpoint(subscription.get("endpoint"), allow_local=allow_local)
        keys = subscription.get("keys")
        if not isinstance(keys, Mapping):
            raise ValueError("keys is missing (keys.p256dh and keys.auth)")
        checked = check_subscription_keys(keys.get("p256dh"), keys.get("auth"))
    except ValueError as exc:
        raise ServiceError(f"subscription: {exc}") from None
    if language is not None and language not in LANGUAGES:
        raise ServiceError(f"language {language!r} not supported; use {', '.join(LANGUAGES)}")
    consumer = _consumer(session, tenant_id, consumer_id, account_number)
    if language is not None:
        consumer.preferred_language = language
    contact = session.scalar(
        select(ContactPoint).where(
            ContactPoint.tenant_id == tenant_id,
            ContactPoint.kind == ContactKind.webpush,
            ContactPoint.value == endpoint,
        )
    )
    created = contact is None
    if contact is None:
        contact = ContactPoint(
            tenant_id=tenant_id, consumer_id=consumer.id, kind=ContactKind.webpush, value=endpoint
        )
        session.add(contact)
    contact.consumer_id = consumer.id
    contact.details = checked.as_details()
    session.flush()
    return Saved(contact.id, consumer.id, created)


def remove_subscription(session: Session, tenant_id: int, endpoint: str) -> int:
    """Forget a subscription (the browser unsubscribed); how many contacts went (0 or 1)."""
    if not endpoint or not endpoint.strip():
        raise ServiceError("endpoint is missing")
    result = session.execute(
        delete(ContactPoint).where(
            ContactPoint.tenant_id == tenant_id,
            ContactPoint.kind == ContactKind.webpush,
            ContactPoint.value == endpoint.strip(),
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def vapid_public_key(session: Session, tenant_id: int) -> str:
    """The tenant's VAPID public key: ``applicationServerKey`` for ``pushManager.subscribe``."""
    account = default_account(session, tenant_id, Medium.webpush)
    key = (account.config or {}).get("vapid_public_key") if account is not None else None
    if not key:
        raise NotFound("no webpush channel account is set up for this tenant")
    return str(key)

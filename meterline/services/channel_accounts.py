"""A tenant's provider accounts: which adapter, its checked settings, its rate limit."""

from __future__ import annotations

from typing import Any

import aiohttp
import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from meterline.channels.base import Channel, ChannelConfigError
from meterline.channels.registry import CHANNEL_TYPES, build_channel
from meterline.channels.telegram import DEFAULT_RATE_PER_SECOND as TELEGRAM_RATE_PER_SECOND
from meterline.channels.telegram import TelegramChannel
from meterline.domain.enums import Medium
from meterline.services.errors import Conflict, NotFound, ServiceError
from meterline.store.models import ChannelAccount

# What each adapter carries, unless the account says otherwise (a sandbox may stand in
# for any medium).
MEDIUM_OF_TYPE = {
    "sandbox": Medium.sms,
    "sms_http": Medium.sms,
    "twilio": Medium.sms,
    "inapp": Medium.inapp,
    "telegram": Medium.telegram,
    "webpush": Medium.webpush,
    "whatsapp_cloud": Medium.whatsapp,
}
# A provider's own limit where it is not our general default (Telegram: 30 messages a
# second per bot).
DEFAULT_RATE_PER_SECOND = 50.0
RATE_OF_TYPE = {TelegramChannel.type_name: TELEGRAM_RATE_PER_SECOND}


def add_channel_account(
    session: Session,
    tenant_id: int,
    *,
    name: str,
    type_name: str,
    config: dict[str, Any],
    medium: Medium | None = None,
    rate_per_second: float | None = None,
    is_default: bool = True,
) -> ChannelAccount:
    if type_name not in CHANNEL_TYPES:
        raise ServiceError(
            f"unknown channel type {type_name!r}; known: {', '.join(sorted(CHANNEL_TYPES))}"
        )
    try:
        build_channel(type_name, config, None)  # validates the settings (and env: secrets)
    except ChannelConfigError as exc:
        raise ServiceError(f"channel {name!r}: {exc}") from None
    if rate_per_second is None:
        rate_per_second = RATE_OF_TYPE.get(type_name, DEFAULT_RATE_PER_SECOND)
    if rate_per_second <= 0:
        raise ServiceError("rate_per_second must be above zero")
    exists = session.scalar(
        select(ChannelAccount.id).where(
            ChannelAccount.tenant_id == tenant_id, ChannelAccount.name == name
        )
    )
    if exists is not None:
        raise Conflict(f"channel account {name!r} already exists")
    medium = medium or MEDIUM_OF_TYPE.get(type_name, Medium.sms)
    if is_default:
        session.execute(
            update(ChannelAccount)
            .where(ChannelAccount.tenant_id == tenant_id, ChannelAccount.medium == medium)
            .values(is_default=False)
        )
    account = ChannelAccount(
        tenant_id=tenant_id,
        name=name,
        type_name=type_name,
        medium=medium,
        config=config,
        rate_per_second=rate_per_second,
        is_default=is_default,
        tokens=0.0,
    )
    session.add(account)
    session.flush()
    return account


def default_account(session: Session, tenant_id: int, medium: Medium) -> ChannelAccount | None:
    return session.scalar(
        select(ChannelAccount).where(
            ChannelAccount.tenant_id == tenant_id,
            ChannelAccount.medium == medium,
            ChannelAccount.is_default.is_(True),
        )
    )


def get_channel_account(session: Session, tenant_id: int, account_id: int) -> ChannelAccount:
    account = session.get(ChannelAccount, account_id)
    if account is None or account.tenant_id != tenant_id:
        raise NotFound(f"no channel account {account_id}")
    return account


def list_channel_accounts(session: Session, tenant_id: int) -> list[ChannelAccount]:
    return list(
        session.scalars(
            select(ChannelAccount)
            .where(ChannelAccount.tenant_id == tenant_id)
            .order_by(ChannelAccount.name)
        )
    )


def channel_for(
    account: ChannelAccount,
    http: httpx.AsyncClient | None,
    aio: aiohttp.ClientSession | None = None,
) -> Channel:
    """The adapter for an account (raises ChannelConfigError if its settings went bad)."""
    return build_channel(account.type_name, dict(account.config or {}), http, aio)


def public_view(account: ChannelAccount) -> dict[str, Any]:
    """What the API and console show: never the settings' values (they hold secrets)."""
    return {
        "id": account.id,
        "name": account.name,
        "type": account.type_name,
        "medium": str(account.medium),
        "is_default": account.is_default,
        "rate_per_second": account.rate_per_second,
        "settings": sorted((account.config or {}).keys()),
        "disabled_reason": account.disabled_reason,
    }

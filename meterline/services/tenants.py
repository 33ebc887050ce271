"""Creating and finding tenants (a utility or a cooperative)."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from babel import Locale
from babel.numbers import get_currency_precision, list_currencies
from sqlalchemy import select
from sqlalchemy.orm import Session

from meterline.domain.enums import LANGUAGES, TenantKind
from meterline.services.errors import Conflict, NotFound, ServiceError
from meterline.store.models import Tenant

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


def create_tenant(
    session: Session,
    *,
    slug: str,
    name: str,
    country: str,
    currency: str,
    timezone: str,
    kind: TenantKind = TenantKind.utility,
    languages: list[str] | None = None,
    phone_region: str | None = None,
) -> Tenant:
    if not SLUG.match(slug):
        raise ServiceError(f"slug {slug!r}: use 2-63 lowercase letters, digits and dashes")
    country = country.upper()
    if country not in phonenumbers.SUPPORTED_REGIONS:
        raise ServiceError(f"country {country!r} is not an ISO 3166 two-letter code")
    currency = currency.upper()
    if currency not in list_currencies():
        raise ServiceError(f"currency {currency!r} is not an ISO 4217 code")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ServiceError(
            f"time zone {timezone!r} is not an IANA zone such as Asia/Kolkata"
        ) from None
    langs = languages or default_languages(country)
    unknown = [x for x in langs if x not in LANGUAGES]
    if unknown:
        raise ServiceError(f"language(s) {', '.join(unknown)} not supported; use en, hi, bn, ru")
    region = (phone_region or country).upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ServiceError(f"phone region {region!r} is not known to phonenumbers")
    if session.scalar(select(Tenant.id).where(Tenant.slug == slug)) is not None:
        raise Conflict(f"tenant {slug!r} already exists")
    tenant = Tenant(
        slug=slug,
        name=name,
        kind=kind,
        country=country,
        phone_region=region,
        currency=currency,
        timezone=timezone,
        languages=",".join(langs),
    )
    session.add(tenant)
    session.flush()
    return tenant


def default_languages(country: str) -> list[str]:
    """The country's language first, English always available."""
    first = {"IN": "hi", "BD": "bn", "RU": "ru", "BY": "ru", "KZ": "ru"}.get(country)
    return [first, "en"] if first else ["en"]


def get_tenant(session: Session, slug: str) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.slug == slug))
    if tenant is None:
        raise NotFound(f"no tenant {slug!r}; create it with `meterline tenant create`")
    return tenant


def currency_exponent(currency: str) -> int:
    return int(get_currency_precision(currency))


def locale_for(language: str, country: str) -> Locale:
    """bn + BD -> bn_BD; falls back to the bare language when Babel lacks the pair."""
    try:
        return Locale.parse(f"{language}_{country}")
    except Exception:
        return Locale.parse(language)


def set_quiet_hours(
    session: Session,
    tenant: Tenant,
    *,
    start: str | None = None,
    end: str | None = None,
    promo_start: str | None = None,
    promo_end: str | None = None,
) -> Tenant:
    """Change the tenant's quiet hours ("HH:MM" in its time zone; start == end: none).

    Messages already queued keep the time they were given; new ones follow the change.
    """
    from meterline.domain.quiet_hours import parse_hhmm

    for name, value in (
        ("start", start),
        ("end", end),
        ("promo_start", promo_start),
        ("promo_end", promo_end),
    ):
        if value is not None:
            try:
                parse_hhmm(value)
            except ValueError as exc:
                raise ServiceError(f"quiet hours {name}: {exc}") from None
    if start is not None:
        tenant.quiet_start = start.strip()
    if end is not None:
        tenant.quiet_end = end.strip()
    if promo_start is not None:
        tenant.promo_quiet_start = promo_start.strip()
    if promo_end is not None:
        tenant.promo_quiet_end = promo_end.strip()
    session.flush()
    return tenant

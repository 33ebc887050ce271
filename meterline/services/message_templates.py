"""Templates per tenant, kind, medium and language: the tenant's own text or the default."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from meterline.domain.default_templates import default_template
from meterline.domain.enums import LANGUAGES, Medium
from meterline.domain.notification_kinds import UnknownKind, kind_spec
from meterline.domain.templates import TemplateRefused, validate_template
from meterline.services.errors import ServiceError
from meterline.store.models import MessageTemplate


def save_template(
    session: Session,
    tenant_id: int,
    *,
    kind: str,
    medium: Medium,
    language: str,
    body: str,
    by: str,
) -> MessageTemplate:
    """Store a tenant's template after checking it: an unknown variable is refused here,
    so no message ever goes out with a blank."""
    try:
        kind_spec(kind)
        validate_template(kind, body)
    except (UnknownKind, TemplateRefused) as exc:
        raise ServiceError(str(exc)) from None
    if language not in LANGUAGES:
        raise ServiceError(f"language {language!r} not supported; use {', '.join(LANGUAGES)}")
    row = session.scalar(
        select(MessageTemplate).where(
            MessageTemplate.tenant_id == tenant_id,
            MessageTemplate.kind == kind,
            MessageTemplate.medium == medium,
            MessageTemplate.language == language,
        )
    )
    if row is None:
        row = MessageTemplate(tenant_id=tenant_id, kind=kind, medium=medium, language=language)
        session.add(row)
    row.body = body
    row.updated_by = by
    session.flush()
    return row


class TemplateBook:
    """Looks each (kind, medium, language) up once per use case, then serves it from memory."""

    def __init__(self, session: Session, tenant_id: int) -> None:
        self._session = session
        self._tenant_id = tenant_id
        self._cache: dict[tuple[str, Medium, str], str] = {}

    def source(self, kind: str, medium: Medium, language: str) -> str:
        key = (kind, medium, language)
        found = self._cache.get(key)
        if found is None:
            found = self._session.scalar(
                select(MessageTemplate.body).where(
                    MessageTemplate.tenant_id == self._tenant_id,
                    MessageTemplate.kind == kind,
                    MessageTemplate.medium == medium,
                    MessageTemplate.language == language,
                )
            ) or default_template(kind, language)
            self._cache[key] = found
        return found

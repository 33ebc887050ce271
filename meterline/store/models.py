"""SQLAlchemy 2 models: the whole data model in one place.

Money columns end in ``_minor`` and hold integer minor units (paisa, poisha, kopeck).
Every row that belongs to a tenant carries ``tenant_id`` so every query can be scoped.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Computed,
    Date,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    column,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from meterline.domain.enums import (
    AreaLevel,
    Billing,
    BillStatus,
    ContactKind,
    CreditEntryKind,
    CreditState,
    ImportStatus,
    LedgerKind,
    Medium,
    MessageStatus,
    Reachability,
    Role,
    Service,
    TenantKind,
)
from meterline.store.types import UTCDateTime, UTCDay


def utcnow() -> datetime:
    return datetime.now(UTC)


def _enum(cls: type, name: str) -> Enum:
    # VARCHAR + CHECK on both databases: no PostgreSQL enum types to migrate later.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=20,
        values_callable=lambda e: [m.value for m in e],
    )


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime()}  # noqa: RUF012


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[TenantKind] = mapped_column(_enum(TenantKind, "tenant_kind"))
    country: Mapped[str] = mapped_column(String(2))
    phone_region: Mapped[str] = mapped_column(String(2))
    currency: Mapped[str] = mapped_column(String(3))
    timezone: Mapped[str] = mapped_column(String(64))
    # Comma-separated language codes; the first is the default for new consumers.
    languages: Mapped[str] = mapped_column(String(64), default="en")
    # Quiet hours in the tenant's time zone ("HH:MM"): non-urgent messages wait them out;
    # promotional SMS additionally never go out in the promotional window.
    quiet_start: Mapped[str] = mapped_column(String(5), default="21:00", server_default="21:00")
    quiet_end: Mapped[str] = mapped_column(String(5), default="08:00", server_default="08:00")
    promo_quiet_start: Mapped[str] = mapped_column(
        String(5), default="00:00", server_default="00:00"
    )
    promo_quiet_end: Mapped[str] = mapped_column(String(5), default="06:00", server_default="06:00")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def language_list(self) -> list[str]:
        return [x for x in self.languages.split(",") if x]

    @property
    def default_language(self) -> str:
        langs = self.language_list
        return langs[0] if langs else "en"


class Area(Base):
    """A node of the tenant's area tree (circle > division > sub-division > feeder ...)."""

    __tablename__ = "areas"
    __table_args__ = (UniqueConstraint("tenant_id", "path", name="uq_areas_tenant_path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"), index=True)
    level: Mapped[AreaLevel] = mapped_column(_enum(AreaLevel, "area_level"))
    name: Mapped[str] = mapped_column(String(200))
    # "Circle / Division / Feeder": unique per tenant, so an import finds a node in one lookup.
    path: Mapped[str] = mapped_column(String(1000))


class Consumer(Base):
    __tablename__ = "consumers"
    __table_args__ = (
        UniqueConstraint("tenant_id", "import_key", name="uq_consumers_tenant_import_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(300))
    # The account number this consumer was first imported with: lets a bulk import find
    # the rows it has just inserted without relying on the order of RETURNING rows.
    import_key: Mapped[str | None] = mapped_column(String(64))
    preferred_language: Mapped[str] = mapped_column(String(8), default="en")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    accounts: Mapped[list[Account]] = relationship(back_populates="consumer")
    contacts: Mapped[list[ContactPoint]] = relationship(back_populates="consumer")


class ContactPoint(Base):
    """One way to reach a consumer: a phone (E.164), a Telegram chat, a push subscription."""

    __tablename__ = "contact_points"
    __table_args__ = (
        UniqueConstraint("consumer_id", "kind", "value", name="uq_contact_points_consumer_value"),
        Index("ix_contact_points_tenant_value", "tenant_id", "kind", "value"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    consumer_id: Mapped[int] = mapped_column(ForeignKey("consumers.id", ondelete="CASCADE"))
    kind: Mapped[ContactKind] = mapped_column(_enum(ContactKind, "contact_kind"))
    value: Mapped[str] = mapped_column(String(500))
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)
    whatsapp: Mapped[Reachability] = mapped_column(
        _enum(Reachability, "reachability"), default=Reachability.unknown
    )
    # Web Push subscription keys (p256dh, auth) and similar channel details.
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    verified_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    consumer: Mapped[Consumer] = relationship(back_populates="contacts")


class Account(Base):
    """An account at the utility: an external account number or payer code."""

    __tablename__ = "accounts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "number", name="uq_accounts_tenant_number"),
        # The area filter (by its prefix), the defaulters filter (dues above zero past
        # the due date) and both together: one index, one entry per row to write
        # (migration 0010).
        Index("ix_accounts_tenant_area_due", "tenant_id", "area_id", "due_date", "dues_minor"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    consumer_id: Mapped[int] = mapped_column(ForeignKey("consumers.id"), index=True)
    number: Mapped[str] = mapped_column(String(64))
    service: Mapped[Service] = mapped_column(_enum(Service, "service"))
    billing: Mapped[Billing] = mapped_column(_enum(Billing, "billing"))
    address: Mapped[str | None] = mapped_column(String(500))
    apartment: Mapped[str | None] = mapped_column(String(50))
    sanctioned_load_kw: Mapped[Decimal | None] = mapped_column(Numeric(10, 3))
    area_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"))
    # The master sheet's view of what is owed and by when; bills hold the history.
    dues_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    due_date: Mapped[date | None] = mapped_column(Date)
    balance_minor: Mapped[int | None] = mapped_column(BigInteger)
    # Digest of the last imported row: re-importing an unchanged row costs one comparison.
    import_digest: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    consumer: Mapped[Consumer] = relationship(back_populates="accounts")
    area: Mapped[Area | None] = relationship()
    meters: Mapped[list[Meter]] = relationship(back_populates="account")
    # Smart-meter alerts: this account's low-balance threshold instead of the tenant's.
    low_balance_minor: Mapped[int | None] = mapped_column(BigInteger)


class Meter(Base):
    __tablename__ = "meters"
    __table_args__ = (UniqueConstraint("tenant_id", "serial", name="uq_meters_tenant_serial"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    serial: Mapped[str] = mapped_column(String(64))
    kind: Mapped[Service] = mapped_column(_enum(Service, "meter_kind"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    account: Mapped[Account | None] = relationship(back_populates="meters")


class Bill(Base):
    __tablename__ = "bills"
    __table_args__ = (
        UniqueConstraint("account_id", "period", name="uq_bills_account_period"),
        Index("ix_bills_tenant_status_due", "tenant_id", "status", "due_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    period: Mapped[str] = mapped_column(String(20))  # "2024-03", or the billing system's label
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    due_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[BillStatus] = mapped_column(_enum(BillStatus, "bill_status"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class LedgerEntry(Base):
    """Money moving on an account. ``amount_minor`` is signed: credits positive."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("tenant_id", "external_ref", name="uq_ledger_entries_tenant_ref"),
        Index("ix_ledger_entries_account_time", "account_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    kind: Mapped[LedgerKind] = mapped_column(_enum(LedgerKind, "ledger_kind"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    balance_after_minor: Mapped[int] = mapped_column(BigInteger)
    external_ref: Mapped[str | None] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(String(500))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Operator(Base):
    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))
    language: Mapped[str] = mapped_column(String(8), default="en")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """An integrating system's key. Only a SHA-256 of the secret is stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    role: Mapped[Role] = mapped_column(_enum(Role, "api_role"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()


class ImportRun(Base):
    __tablename__ = "import_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(300))
    file_sha256: Mapped[str] = mapped_column(String(64))
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[ImportStatus] = mapped_column(_enum(ImportStatus, "import_status"))
    inserted: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str | None] = mapped_column(Text)
    # Header row, column mapping, reader warnings: what the operator needs to trust the run.
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    started_by: Mapped[str | None] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()


class ImportRowError(Base):
    """A rejected or skipped row of an import, kept for the report and its CSV download."""

    __tablename__ = "import_row_errors"
    __table_args__ = (Index("ix_import_row_errors_run_row", "import_run_id", "row"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    import_run_id: Mapped[int] = mapped_column(ForeignKey("import_runs.id", ondelete="CASCADE"))
    row: Mapped[int] = mapped_column(Integer)
    column: Mapped[str | None] = mapped_column(String(200))
    value: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(String(500))
    skipped: Mapped[bool] = mapped_column(Boolean, default=False)
    # The raw cells, so the operator can download the rejected rows, fix and re-upload them.
    raw: Mapped[list[Any] | None] = mapped_column(JSON)


class ChannelAccount(Base):
    """A tenant's account at one provider: which adapter, its settings, its rate limit.

    ``config`` may hold secrets written as ``env:NAME`` (resolved from the environment when
    the adapter is built); the API and the console never show config values back.
    """

    __tablename__ = "channel_accounts"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_channel_accounts_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    type_name: Mapped[str] = mapped_column(String(40))
    medium: Mapped[Medium] = mapped_column(_enum(Medium, "medium"))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The default account of its medium for the tenant: where notify() routes messages.
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    rate_per_second: Mapped[float] = mapped_column(Float, default=50.0)
    # Token bucket shared by every worker process (the row is locked while it is read).
    tokens: Mapped[float] = mapped_column(Float, default=0.0)
    tokens_at: Mapped[datetime | None] = mapped_column()
    # Set when the provider refused our credentials: messages wait until an operator fixes it.
    disabled_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MessageTemplate(Base):
    """A tenant's own text for a kind, medium and language (defaults ship in the domain)."""

    __tablename__ = "message_templates"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id", "kind", "medium", "language", name="uq_message_templates_key"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    medium: Mapped[Medium] = mapped_column(_enum(Medium, "template_medium"))
    language: Mapped[str] = mapped_column(String(8))
    body: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str | None] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Message(Base):
    """One notification to one recipient: the outbox row, the delivery report and, for a
    consumer, their in-app inbox entry. ``(tenant_id, idempotency_key)`` is unique, so the
    same key twice is one message, forever."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_messages_tenant_key"),
        # What workers claim: per channel account, rows with a due time, most urgent first.
        Index(
            "ix_messages_due",
            "channel_account_id",
            "priority",
            "due_at",
            sqlite_where=text("due_at IS NOT NULL"),
            postgresql_where=text("due_at IS NOT NULL"),
        ),
        Index("ix_messages_tenant_created", "tenant_id", "created_at"),
        # Status callbacks find their message; only sent messages have a provider id.
        Index(
            "ix_messages_provider_id",
            "channel_account_id",
            "provider_message_id",
            sqlite_where=text("provider_message_id IS NOT NULL"),
            postgresql_where=text("provider_message_id IS NOT NULL"),
        ),
        Index("ix_messages_consumer", "consumer_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    # Which notify call wrote the row: tells a new message from an old one with the same key.
    batch_id: Mapped[str | None] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(40))
    priority: Mapped[int] = mapped_column(Integer)
    promotional: Mapped[bool] = mapped_column(Boolean, default=False)
    consumer_id: Mapped[int | None] = mapped_column(ForeignKey("consumers.id"))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    medium: Mapped[Medium] = mapped_column(_enum(Medium, "message_medium"))
    channel_account_id: Mapped[int | None] = mapped_column(ForeignKey("channel_accounts.id"))
    to_address: Mapped[str | None] = mapped_column(String(500))
    language: Mapped[str] = mapped_column(String(8))
    body: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    encoding: Mapped[str | None] = mapped_column(String(8))
    segments: Mapped[int] = mapped_column(Integer, default=1)
    cost_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    credit_state: Mapped[CreditState] = mapped_column(_enum(CreditState, "credit_state"))
    status: Mapped[MessageStatus] = mapped_column(_enum(MessageStatus, "message_status"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Set while the message waits for a worker (queued) or a worker holds it (sending: the
    # claim's expiry, after which another worker takes it); NULL once it is out of our hands.
    due_at: Mapped[datetime | None] = mapped_column()
    claimed_by: Mapped[str | None] = mapped_column(String(80))
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    error_code: Mapped[str | None] = mapped_column(String(80))
    error_text: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)  # = queued
    sending_at: Mapped[datetime | None] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()
    delivered_at: Mapped[datetime | None] = mapped_column()
    read_at: Mapped[datetime | None] = mapped_column()
    failed_at: Mapped[datetime | None] = mapped_column()
    inbox_read_at: Mapped[datetime | None] = mapped_column()  # the consumer opened it in-app
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Fallback routing (domain.routing): the plan's steps still to try and where the
    # message is in it (NULL: a single step, nothing to fall back to); when a step that
    # was accepted moves on for want of a delivery status.
    route: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    route_step: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    fallback_at: Mapped[datetime | None] = mapped_column()
    # The bill a dues reminder is about: a payment for the bill cancels what is still queued.
    # No foreign key: adding it would make SQLite rebuild the (large) messages table.
    bill_id: Mapped[int | None] = mapped_column(Integer, index=True)


class MessageEvent(Base):
    """Every attempt and every status change of a message, with its time (append-only)."""

    __tablename__ = "message_events"
    __table_args__ = (Index("ix_message_events_message", "message_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    # "attempt" rows carry the outcome of one send; status rows the provider's reports.
    event: Mapped[str] = mapped_column(String(20))
    status: Mapped[str | None] = mapped_column(String(20))
    attempt: Mapped[int | None] = mapped_column(Integer)
    channel_account_id: Mapped[int | None] = mapped_column(ForeignKey("channel_accounts.id"))
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    error_code: Mapped[str | None] = mapped_column(String(80))
    error_text: Mapped[str | None] = mapped_column(String(1000))
    worker: Mapped[str | None] = mapped_column(String(80))


class CreditAccount(Base):
    """A tenant's prepaid messaging credit. ``balance - held`` is what can still be spent."""

    __tablename__ = "credit_accounts"

    tenant_id: Mapped[int] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    balance_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    held_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    overdraft_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    sms_price_minor: Mapped[int] = mapped_column(BigInteger, default=0)  # per segment
    max_sms_parts: Mapped[int] = mapped_column(Integer, default=10)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CreditEntry(Base):
    """The credit ledger: top-ups, holds, debits and releases, each with the totals after."""

    __tablename__ = "credit_entries"
    __table_args__ = (Index("ix_credit_entries_tenant_id", "tenant_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    kind: Mapped[CreditEntryKind] = mapped_column(_enum(CreditEntryKind, "credit_entry_kind"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    messages: Mapped[int] = mapped_column(Integer, default=0)  # how many messages it covers
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    balance_after_minor: Mapped[int] = mapped_column(BigInteger)
    held_after_minor: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MessagePart(Base):
    """One separately acknowledged part of a message (an SMPP submit_sm of a long SMS).

    Receipts arrive per part under the part's provider id; a message is delivered when every
    part is, failed when any part fails (``services.message_parts``). The rows are the parts
    the provider accepted, so they are also the parts it bills.
    """

    __tablename__ = "message_parts"
    __table_args__ = (
        UniqueConstraint("message_id", "part_no", name="uq_message_parts_part"),
        Index("ix_message_parts_provider_id", "channel_account_id", "provider_message_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    channel_account_id: Mapped[int] = mapped_column(ForeignKey("channel_accounts.id"))
    part_no: Mapped[int] = mapped_column(Integer)  # 1-based
    provider_message_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="sent")
    error_code: Mapped[str | None] = mapped_column(String(80))
    error_text: Mapped[str | None] = mapped_column(String(1000))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# Fallback routing: the sweeper finds accepted steps whose delivery status is overdue, and a
# late status about an earlier step finds its message through the attempt that sent it.
Index(
    "ix_messages_fallback_at",
    Message.fallback_at,
    sqlite_where=text("fallback_at IS NOT NULL"),
    postgresql_where=text("fallback_at IS NOT NULL"),
)
Index(
    "ix_message_events_provider_id",
    MessageEvent.channel_account_id,
    MessageEvent.provider_message_id,
    sqlite_where=text("provider_message_id IS NOT NULL"),
    postgresql_where=text("provider_message_id IS NOT NULL"),
)


class RouteConfig(Base):
    """A tenant's own route for a notification kind (domain.routing has the defaults):
    ``steps`` is a list of ``{"medium", "fallback_after_seconds"}``, tried in order."""

    __tablename__ = "routes"
    __table_args__ = (UniqueConstraint("tenant_id", "kind", name="uq_routes_tenant_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    updated_by: Mapped[str | None] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- payments and dues reminders (issue 4, items 6-8) -------------------------------------


class PaymentGateway(Base):
    """A tenant's account at a payment gateway (``sandbox``, ``razorpay``): which plug-in and
    its settings (secrets as ``env:NAME``, never shown back)."""

    __tablename__ = "payment_gateways"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_payment_gateways_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    type_name: Mapped[str] = mapped_column(String(40))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The gateway new payment links hand over to.
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PaymentLink(Base):
    """A signed, expiring short link (``/p/CODE``) to pay one bill a fixed amount.

    ``signature`` is an HMAC (app secret) over tenant, code, account, bill, amount, currency
    and expiry: a row changed behind our back (another amount, another tenant) is refused.
    """

    __tablename__ = "payment_links"
    __table_args__ = (
        Index("ix_payment_links_bill", "bill_id"),
        Index("ix_payment_links_tenant_created", "tenant_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(32), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    bill_id: Mapped[int] = mapped_column(ForeignKey("bills.id"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    expires_at: Mapped[datetime] = mapped_column()
    signature: Mapped[str] = mapped_column(String(64))
    gateway_id: Mapped[int | None] = mapped_column(ForeignKey("payment_gateways.id"))
    # The gateway's own id for the checkout (Razorpay's plink_...) and where it lives.
    provider_ref: Mapped[str | None] = mapped_column(String(200))
    provider_url: Mapped[str | None] = mapped_column(String(1000))
    clicks: Mapped[int] = mapped_column(Integer, default=0)
    first_clicked_at: Mapped[datetime | None] = mapped_column()
    last_clicked_at: Mapped[datetime | None] = mapped_column()
    paid_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Payment(Base):
    """One payment a gateway reported (verified webhook or server-side status check).

    ``(gateway_id, provider_payment_id)`` is unique: the same event delivered three times at
    once credits the account once."""

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("gateway_id", "provider_payment_id", name="uq_payments_gateway_payment"),
        Index("ix_payments_tenant_created", "tenant_id", "created_at"),
        Index("ix_payments_link", "link_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    gateway_id: Mapped[int] = mapped_column(ForeignKey("payment_gateways.id"))
    provider_payment_id: Mapped[str] = mapped_column(String(200))
    link_id: Mapped[int] = mapped_column(ForeignKey("payment_links.id"))
    bill_id: Mapped[int] = mapped_column(ForeignKey("bills.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    source: Mapped[str] = mapped_column(String(20))  # "webhook" or "status_check"
    ledger_entry_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReminderRun(Base):
    """One dues-reminder run: an operator's send (with its filter) or a schedule step."""

    __tablename__ = "reminder_runs"
    __table_args__ = (Index("ix_reminder_runs_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(20))  # "manual" or "schedule"
    # Days from the due date for a schedule step (-7 = a week before); None for manual runs.
    step_days: Mapped[int | None] = mapped_column(Integer)
    filter: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    selected: Mapped[int] = mapped_column(Integer, default=0)
    queued: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    refused: Mapped[int] = mapped_column(Integer, default=0)
    cost_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReminderItem(Base):
    """A bill reminded in a run: its message and payment link (the report joins these)."""

    __tablename__ = "reminder_items"
    __table_args__ = (
        UniqueConstraint("run_id", "bill_id", name="uq_reminder_items_run_bill"),
        Index("ix_reminder_items_tenant_created", "tenant_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    run_id: Mapped[int] = mapped_column(ForeignKey("reminder_runs.id", ondelete="CASCADE"))
    bill_id: Mapped[int] = mapped_column(ForeignKey("bills.id"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    link_id: Mapped[int | None] = mapped_column(ForeignKey("payment_links.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReminderSchedule(Base):
    """A tenant's reminder steps in days from the due date (e.g. [-7, 0, 3])."""

    __tablename__ = "reminder_schedules"

    tenant_id: Mapped[int] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    steps: Mapped[list[int]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- Smart-meter events and alerts (docs/events.md) -------------------------------------


class MeterState(Base):
    """The newest of each event stream of one meter and its open episodes (rules state).

    Ingest rewrites a state with nearly every event, so no index holds a column that moves
    with each one: the silent-meters list finds its meters by ``seen_day`` (the UTC day of
    ``last_seen``, generated by the database) and rechecks ``last_seen``. On PostgreSQL
    that keeps the updates HOT (heap-only: no new index entries), with room left on each
    page for them (fillfactor, set in migration 0009).
    """

    __tablename__ = "meter_states"
    __table_args__ = (Index("ix_meter_states_tenant_seen_day", "tenant_id", "seen_day"),)

    meter_id: Mapped[int] = mapped_column(
        ForeignKey("meters.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    balance_minor: Mapped[int | None] = mapped_column(BigInteger)
    balance_at: Mapped[datetime | None] = mapped_column()
    last_recharge_minor: Mapped[int | None] = mapped_column(BigInteger)
    low_alerted_minor: Mapped[int | None] = mapped_column(BigInteger)
    zero_open: Mapped[bool] = mapped_column(Boolean, default=False)
    reading_value: Mapped[Decimal | None] = mapped_column(Numeric(18, 3))
    reading_unit: Mapped[str | None] = mapped_column(String(8))
    reading_at: Mapped[datetime | None] = mapped_column()
    demand_kw: Mapped[Decimal | None] = mapped_column(Numeric(12, 3))
    demand_at: Mapped[datetime | None] = mapped_column()
    over_count: Mapped[int] = mapped_column(Integer, default=0)
    overload_open: Mapped[bool] = mapped_column(Boolean, default=False)
    # {code: [active, ISO time of its newest event]}
    tamper: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    power_state: Mapped[str | None] = mapped_column(String(12))
    power_at: Mapped[datetime | None] = mapped_column()
    relay_state: Mapped[str | None] = mapped_column(String(12))
    relay_at: Mapped[datetime | None] = mapped_column()
    last_seen: Mapped[datetime | None] = mapped_column()
    seen_day: Mapped[date | None] = mapped_column(
        Date, Computed(UTCDay(column("last_seen")), persisted=True)
    )
    updated_at: Mapped[datetime | None] = mapped_column()


class MeterAlert(Base):
    """One alert episode of a meter: opened, maybe closed, and the messages it sent."""

    __tablename__ = "meter_alerts"
    __table_args__ = (
        UniqueConstraint("meter_id", "episode_key", name="uq_meter_alerts_episode"),
        Index("ix_meter_alerts_tenant_opened", "tenant_id", "opened_at"),
        Index("ix_meter_alerts_meter_open", "meter_id", "subject", "closed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id", ondelete="CASCADE"))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    kind: Mapped[str] = mapped_column(String(20))  # low_balance, zero_balance, overload, tamper
    subject: Mapped[str] = mapped_column(String(64))  # kind, or "tamper:<code>"
    episode_key: Mapped[str] = mapped_column(String(120))
    opened_at: Mapped[datetime] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column()
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    close_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL")
    )
    # Why no message went out: stale event, opted out, no consumer, refused by notify.
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MeterUsage(Base):
    """Consumption aggregates of a meter per day (tenant's local dates); months are folded
    from the days when read (`meter_views.usage`), which halves the writes of ingest.

    The register's lowest and highest value in the period make usage idempotent under
    duplicates and reordering; recharges are counted once, from the rules' balance jumps.
    """

    __tablename__ = "meter_usage"

    meter_id: Mapped[int] = mapped_column(
        ForeignKey("meters.id", ondelete="CASCADE"), primary_key=True
    )
    period: Mapped[str] = mapped_column(String(5), primary_key=True)  # "day" (room for "hour")
    start: Mapped[date] = mapped_column(Date, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    reading_min: Mapped[Decimal | None] = mapped_column(Numeric(18, 3))
    reading_max: Mapped[Decimal | None] = mapped_column(Numeric(18, 3))
    unit: Mapped[str | None] = mapped_column(String(8))
    max_demand_kw: Mapped[Decimal | None] = mapped_column(Numeric(12, 3))
    recharges: Mapped[int] = mapped_column(Integer, default=0)
    recharged_minor: Mapped[int] = mapped_column(BigInteger, default=0)


class MeterUnknownSerial(Base):
    """Events for a serial the tenant has no meter for: counted, listed, not stored."""

    __tablename__ = "meter_unknown_serials"

    tenant_id: Mapped[int] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    serial: Mapped[str] = mapped_column(String(64), primary_key=True)
    events: Mapped[int] = mapped_column(BigInteger, default=0)
    first_seen: Mapped[datetime] = mapped_column()
    last_seen: Mapped[datetime] = mapped_column()
    last_source: Mapped[str | None] = mapped_column(String(100))


class MeterEventBatch(Base):
    """One ingested batch and its counts (append-only: no row every worker fights over)."""

    __tablename__ = "meter_event_batches"
    __table_args__ = (Index("ix_meter_event_batches_tenant", "tenant_id", "received_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column()
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    unknown: Mapped[int] = mapped_column(Integer, default=0)
    alerts: Mapped[int] = mapped_column(Integer, default=0)
    # The first rejected lines with their reasons, for the operator.
    errors: Mapped[list[Any] | None] = mapped_column(JSON)


class MeterAlertSettings(Base):
    """A tenant's alert rule settings; no row means the defaults (docs/events.md)."""

    __tablename__ = "meter_alert_settings"

    tenant_id: Mapped[int] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    low_balance_minor: Mapped[int | None] = mapped_column(BigInteger)
    percent_levels: Mapped[str] = mapped_column(String(40), default="")  # "30,10"
    hysteresis_minor: Mapped[int | None] = mapped_column(BigInteger)
    overload_intervals: Mapped[int] = mapped_column(Integer, default=2)
    stale_after_s: Mapped[int] = mapped_column(Integer, default=7200)
    silent_after_s: Mapped[int] = mapped_column(Integer, default=86400)
    max_skew_s: Mapped[int] = mapped_column(Integer, default=300)
    grace_text: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # language -> text
    mandatory_kinds: Mapped[str] = mapped_column(String(200), default="zero_balance,tamper")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AlertOptOut(Base):
    """A consumer who does not want alerts of one kind (ignored for mandatory kinds)."""

    __tablename__ = "alert_opt_outs"

    consumer_id: Mapped[int] = mapped_column(
        ForeignKey("consumers.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

"""fallback routing: a message's plan and step, per-tenant routes, sweeper indexes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "routes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_routes_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routes")),
        sa.UniqueConstraint("tenant_id", "kind", name="uq_routes_tenant_kind"),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("route", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("route_step", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("fallback_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_messages_fallback_at",
            ["fallback_at"],
            unique=False,
            sqlite_where=sa.text("fallback_at IS NOT NULL"),
            postgresql_where=sa.text("fallback_at IS NOT NULL"),
        )
    with op.batch_alter_table("message_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_message_events_provider_id",
            ["channel_account_id", "provider_message_id"],
            unique=False,
            sqlite_where=sa.text("provider_message_id IS NOT NULL"),
            postgresql_where=sa.text("provider_message_id IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("message_events", schema=None) as batch_op:
        batch_op.drop_index("ix_message_events_provider_id")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_fallback_at")
        batch_op.drop_column("fallback_at")
        batch_op.drop_column("route_step")
        batch_op.drop_column("route")
    op.drop_table("routes")

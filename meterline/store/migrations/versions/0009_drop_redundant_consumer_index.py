"""consumers: drop ix_consumers_tenant_id, the leading column of uq_consumers_tenant_import_key

Every query that filters consumers by tenant alone (counts, name search, the cascade
from tenants) can use the unique (tenant_id, import_key) index instead; the single-column
copy only cost every insert (the master import writes one consumer per account) and,
on PostgreSQL, tempted the planner away from the unique index for the import's lookups.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_consumers_tenant_id", table_name="consumers")


def downgrade() -> None:
    op.create_index("ix_consumers_tenant_id", "consumers", ["tenant_id"], unique=False)

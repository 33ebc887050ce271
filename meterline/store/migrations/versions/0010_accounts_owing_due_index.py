"""accounts: the defaulters index holds only accounts that owe, ordered by due date

ix_accounts_tenant_due was (tenant_id, due_date, dues_minor) over every account. Dues are
all different, so a master import put each new account's entry at a random place in the
index, and every batch rewrote pages all over it (docs/benchmarks.md). The defaulters
filter is `dues_minor > 0 AND due_date < today`: a partial index on (tenant_id, due_date)
where dues_minor > 0 answers it as well, is smaller (accounts that owe nothing are not
in it), and takes an import's entries at the end of each due date's run.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_accounts_tenant_due", table_name="accounts")
    op.create_index(
        "ix_accounts_tenant_owing_due",
        "accounts",
        ["tenant_id", "due_date"],
        sqlite_where=sa.text("dues_minor > 0"),
        postgresql_where=sa.text("dues_minor > 0"),
    )


def downgrade() -> None:
    op.drop_index("ix_accounts_tenant_owing_due", table_name="accounts")
    op.create_index("ix_accounts_tenant_due", "accounts", ["tenant_id", "due_date", "dues_minor"])

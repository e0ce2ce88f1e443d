"""idempotency_keys.status dropped (issue 12): written on every keyed create (always 201), never read

A repeat of an X-Idempotency key answers the connection the first request created (its id is in
`response`); the status was never consulted.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A store whose alembic_version was set back by hand (the readiness tests do, and so would a
    # restored backup of that table) may have lost the column already: migrating again must not fail.
    if "status" not in {column["name"] for column in sa.inspect(op.get_bind()).get_columns("idempotency_keys")}:
        return
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:  # SQLite: a table copy
        batch_op.drop_column("status")


def downgrade() -> None:
    # Back as an older connhub wrote it; existing rows get the only value it ever held.
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status", sa.Integer(), nullable=False, server_default=sa.text("201")))

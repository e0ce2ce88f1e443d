"""key-check values per key id (issue 15)

Revision ID: 0003
Revises: 0002

One row per encryption key id: a value derived from the key's bytes (HMAC-SHA256 of a fixed label),
so a replica whose bytes differ for a known id finds out before it seals anything others cannot open.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("key_checks"):  # a store whose version row was set back
        return
    op.create_table(
        "key_checks",
        sa.Column("key_id", sa.String(length=255), nullable=False),
        sa.Column("check_value", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key_id"),
    )


def downgrade() -> None:
    op.drop_table("key_checks")

"""indexes and query shapes that hold without statistics (issue 19): an intentional no-op

Numbered ahead, with 0003-0005, for the issues then in flight; issue 19 ended up needing no schema
change, so this revision changes nothing, on purpose. It is kept because stores already record it
(alembic_version holds it or a later id that revises it): removing or renumbering it would leave
them at a revision Alembic no longer knows.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

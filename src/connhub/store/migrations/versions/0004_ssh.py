"""SSH tunnel settings (issue 16): the connections.ssh column

The non-secret half of a connection's SSH tunnel: bastion host, port, user name, the trusted host
key (typed by the user, or recorded by the first successful test) and whether a password, private
key or passphrase is held; the same for the jump host. The secrets themselves are rows of
connection_secrets (fields ssh.password, ssh.privateKey, ssh.passphrase, ssh.jumpHost.*), sealed
like every other secret, so key rotation, duplication and the wipe on delete cover them unchanged.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A store whose alembic_version was set back by hand (the readiness tests do, and so would a
    # restored backup of that table) already has the column: migrating again must not fail.
    if "ssh" in {column["name"] for column in sa.inspect(op.get_bind()).get_columns("connections")}:
        return
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ssh", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.drop_column("ssh")

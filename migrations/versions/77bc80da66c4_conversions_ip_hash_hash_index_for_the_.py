"""conversions ip_hash hash index for the duplicate-IP rule

The duplicate-IP fraud rule counts an offer's conversions from the same IP in the last
24 hours on every new conversion with an IP; with no index on ``ip_hash`` it read every
conversion of the offer, a cost that grew with the program's history. The fast path compares
it with ``clicks.ip_hash``, which is byte-ordered (``COLLATE "C"``) on PostgreSQL; a column of
another collation cannot use its index for that comparison, so the column gets the same one
(as the models say) before the index is built.

Revision ID: 77bc80da66c4
Revises: c31691e92257
Create Date: 2026-11-29 11:44:06.767646

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '77bc80da66c4'
down_revision = 'c31691e92257'
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("conversions", "ip_hash", type_=sa.String(64, collation="C"),
                        existing_type=sa.String(64))
    with op.batch_alter_table('conversions', schema=None) as batch_op:
        batch_op.create_index('ix_conversions_iphash', ['ip_hash'], unique=False, postgresql_using='hash')



def downgrade():
    with op.batch_alter_table('conversions', schema=None) as batch_op:
        batch_op.drop_index('ix_conversions_iphash', postgresql_using='hash')
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("conversions", "ip_hash", type_=sa.String(64),
                        existing_type=sa.String(64, collation="C"),
                        postgresql_using='ip_hash COLLATE "default"')


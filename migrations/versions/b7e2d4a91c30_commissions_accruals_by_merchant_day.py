"""commissions: accruals by merchant and day, for the report rollups

Recomputing one merchant's day of commission rollups filtered on the conversion's day or,
for an accrual (CPC, CPM: no conversion), the commission's own, across an outer join: no
index served it, and every commission the merchant ever had was read for one day. The
rollup now reads the day's conversions and the day's accruals separately; the accruals
are found by this partial index, which a conversion's commission never enters.

Revision ID: b7e2d4a91c30
Revises: 77bc80da66c4
Create Date: 2026-11-29 19:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b7e2d4a91c30'
down_revision = '77bc80da66c4'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('commissions', schema=None) as batch_op:
        batch_op.create_index('ix_commissions_accruals_merchant_created', ['merchant_id', 'created_at'],
                              unique=False, postgresql_where=sa.text('conversion_id IS NULL'),
                              sqlite_where=sa.text('conversion_id IS NULL'))


def downgrade():
    with op.batch_alter_table('commissions', schema=None) as batch_op:
        batch_op.drop_index('ix_commissions_accruals_merchant_created')

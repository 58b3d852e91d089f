"""drop offer_id indexes a composite already leads with

Every new conversion and commission paid the upkeep of an index on ``offer_id`` that
``ix_conversions_offer_event_id`` (offer_id, event, id) and ``uq_commissions_cpc_day``
(offer_id, partner_id, accrual_date) already serve: every lookup by offer (and the foreign
key's checks when an offer row changes) uses the composite.

Revision ID: c31691e92257
Revises: 8351c26a0591
Create Date: 2026-11-29 11:24:08.498560

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c31691e92257'
down_revision = '8351c26a0591'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('commissions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_commissions_offer_id'))

    with op.batch_alter_table('conversions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_conversions_offer_id'))



def downgrade():
    with op.batch_alter_table('conversions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_conversions_offer_id'), ['offer_id'], unique=False)

    with op.batch_alter_table('commissions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_commissions_offer_id'), ['offer_id'], unique=False)


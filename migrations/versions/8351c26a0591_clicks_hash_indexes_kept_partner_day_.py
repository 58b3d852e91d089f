"""clicks hash indexes, kept partner-day report rows

- ``clicks``: the two wide btrees (visitor_id, offer_id, created_at) and (link_id, ip_hash,
  created_at) become hash indexes on visitor_id and ip_hash (PostgreSQL; plain indexes on
  SQLite). Every reader looks those tokens up by equality; the hash index costs the click
  flush's COPY a fraction of the btrees' upkeep (benchmarks/README.md, Redirect). On a large
  partitioned table, build them per partition with CONCURRENTLY and attach, before running
  this, if the lock matters.
- ``report_partner_day_rows``: the partner x day report kept whole by the rollup job. Empty
  here; the job fills it on its first run, and reports read it only once its watermark
  (``partner_day_rows``) exists.

Revision ID: 8351c26a0591
Revises: a3c5e7f90b12
Create Date: 2026-11-29 11:07:17.580947

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '8351c26a0591'
down_revision = 'a3c5e7f90b12'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('report_partner_day_rows',
    sa.Column('merchant_id', sa.BigInteger(), nullable=False),
    sa.Column('day', sa.String(length=10).with_variant(sa.String(length=10, collation='C'), 'postgresql'), nullable=False),
    sa.Column('partner_id', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3).with_variant(sa.String(length=3, collation='C'), 'postgresql'), nullable=False),
    sa.Column('clicks', sa.BigInteger(), nullable=False),
    sa.Column('unique_clicks', sa.BigInteger(), nullable=False),
    sa.Column('bot_clicks', sa.BigInteger(), nullable=False),
    sa.Column('conversions', sa.BigInteger(), nullable=False),
    sa.Column('sales', sa.BigInteger(), nullable=False),
    sa.Column('leads', sa.BigInteger(), nullable=False),
    sa.Column('conversion_rate', sa.String(length=32), nullable=True),
    sa.Column('revenue', sa.String(length=32), nullable=True),
    sa.Column('refunds', sa.String(length=32), nullable=True),
    sa.Column('refunded_conversions', sa.BigInteger(), nullable=False),
    sa.Column('commission', sa.String(length=32), nullable=True),
    sa.Column('epc', sa.String(length=32), nullable=True),
    sa.Column('revenue_per_click', sa.String(length=32), nullable=True),
    sa.Column('cpa', sa.String(length=32), nullable=True),
    sa.Column('cpl', sa.String(length=32), nullable=True),
    sa.Column('roas', sa.String(length=32), nullable=True),
    sa.Column('reversal_rate', sa.String(length=32), nullable=True),
    sa.Column('held', sa.BigInteger(), nullable=False),
    sa.Column('rejected', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('merchant_id', 'day', 'partner_id', 'currency', name=op.f('pk_report_partner_day_rows'))
    )
    with op.batch_alter_table('clicks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_clicks_link_iphash_created'))
        batch_op.drop_index(batch_op.f('ix_clicks_visitor_offer_created'))
        batch_op.create_index('ix_clicks_iphash', ['ip_hash'], unique=False, postgresql_using='hash')
        batch_op.create_index('ix_clicks_visitor', ['visitor_id'], unique=False, postgresql_using='hash')



def downgrade():
    with op.batch_alter_table('clicks', schema=None) as batch_op:
        batch_op.drop_index('ix_clicks_visitor', postgresql_using='hash')
        batch_op.drop_index('ix_clicks_iphash', postgresql_using='hash')
        batch_op.create_index(batch_op.f('ix_clicks_visitor_offer_created'), ['visitor_id', 'offer_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_clicks_link_iphash_created'), ['link_id', 'ip_hash', 'created_at'], unique=False)

    op.drop_table('report_partner_day_rows')

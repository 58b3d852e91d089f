"""clicks' ASCII keys in byte order ("C") on PostgreSQL

The models have asked for ``COLLATE "C"`` on ``clicks.id``, ``ip_hash`` and ``visitor_id``
since the flush was tuned (index upkeep under a linguistic collation costs the COPY much
more), but alembic does not compare collations, so databases built by the migrations kept
the database's default. On a database whose default is already byte order nothing changes
but the catalogue; elsewhere the three columns' indexes are rebuilt (one pass over clicks).

Revision ID: a3c5e7f90b12
Revises: f173951e13d2
Create Date: 2026-11-29 10:05:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a3c5e7f90b12'
down_revision = 'f173951e13d2'
branch_labels = None
depends_on = None

COLUMNS = (("id", 32), ("ip_hash", 64), ("visitor_id", 64))


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, length in COLUMNS:
        op.alter_column("clicks", name, type_=sa.String(length, collation="C"),
                        existing_type=sa.String(length))


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, length in COLUMNS:
        op.alter_column("clicks", name, type_=sa.String(length),
                        existing_type=sa.String(length, collation="C"),
                        postgresql_using=f'{name} COLLATE "default"')

"""The migration chain builds the schema the models describe, on SQLite and PostgreSQL."""

import os
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from partnernet.config import normalize_database_url
from tests.conftest import ON_POSTGRES, base_config


@pytest.fixture
def empty_database_url(tmp_path, pg_url):
    if not ON_POSTGRES:
        yield f"sqlite:///{tmp_path / 'migrated.db'}"
        return
    base = make_url(normalize_database_url(os.environ["DATABASE_URL"]))
    name = f"pn_mig_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield base.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _not_a_partition(name, type_, parent_names):
    return not (type_ == "table" and name and (name.startswith("clicks_p")
                                                or name == "clicks_default"))


def _model_collations(conn, metadata):
    """(table, column) -> collation the models ask for on this dialect (None: the default)."""
    wanted = {}
    for table in metadata.sorted_tables:
        for column in table.columns:
            type_ = column.type.dialect_impl(conn.dialect)
            wanted[(table.name, column.name)] = getattr(type_, "collation", None)
    return {key: value for key, value in wanted.items() if value}


def _collations(conn, metadata):
    """The same, read from PostgreSQL's catalogue, for the columns the models collate."""
    found = {}
    for table_name, column_name in _model_collations(conn, metadata):
        found[(table_name, column_name)] = conn.scalar(text(
            "select collation_name from information_schema.columns "
            "where table_schema = current_schema() and table_name = :t and column_name = :c"),
            {"t": table_name, "c": column_name})
    return found


def test_upgrade_matches_models_and_is_repeatable(empty_database_url):
    from flask_migrate import upgrade

    from partnernet.app import create_app
    from partnernet.extensions import db

    app = create_app(base_config(empty_database_url))
    with app.app_context():
        upgrade()
        tables = set(inspect(db.engine).get_table_names())
        assert {"merchants", "offers", "clicks", "conversions", "commissions",
                "ledger_entries", "payouts", "payout_items"} <= tables
        with db.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True,
                                                         "include_name": _not_a_partition})
            diff = compare_metadata(ctx, db.metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
        with db.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                triggers = conn.scalar(text("select count(*) from pg_trigger "
                                            "where tgname = 'ledger_entries_append_only'"))
                partitions = conn.scalar(text("select count(*) from pg_inherits i join pg_class p "
                                              "on p.oid = i.inhparent where p.relname = 'clicks'"))
                assert partitions >= 2, "clicks has its default and day partitions"
                assert _collations(conn, db.metadata) == _model_collations(conn, db.metadata), (
                    "a column the models give a collation (byte order for ASCII keys) has another "
                    "in the migrated database: alembic's comparison does not see collations")
            else:
                triggers = conn.scalar(text("select count(*) from sqlite_master where type = "
                                            "'trigger' and tbl_name = 'ledger_entries'"))
            assert triggers >= 1, "the ledger's append-only trigger is installed by the migration"
        upgrade()  # a second upgrade is a no-op
        with db.engine.connect() as conn:
            heads = conn.execute(text("select version_num from alembic_version")).scalars().all()
        assert len(heads) == 1
        db.engine.dispose()

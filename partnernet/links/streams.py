"""A Redis stream buffer of rows for one table, flushed into the database in bulk.

Used by the clicks (``links.buffer``) and the impressions (``creatives.pixel``): a row is
appended to the stream as one compact JSON array (the table's columns in order; ``created_at``
in ISO form) with ``is_unique`` beside it; ``flush`` moves entries into the table in bulk —
``COPY`` on PostgreSQL (into a staging table + ``INSERT ... ON CONFLICT DO NOTHING`` only when a
rerun meets ids already there), executemany elsewhere — and only then trims the stream, so a
flush that dies half way and is run again inserts nothing twice. Rows the database refuses go to
a dead-letter stream instead of blocking the buffer.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import Table, insert
from sqlalchemy.exc import DataError, IntegrityError

from partnernet.extensions import db

log = logging.getLogger(__name__)

FLUSH_BATCH = 5000
FLUSH_MAX_BATCHES = 40
LOCK_SECONDS = 120


class StreamBuffer:
    """The stream ``<prefix><name>:buffer`` of rows of ``table_name`` with ``columns``.

    ``columns`` may only grow at the end: entries buffered before a column was added decode
    with NULL in it.
    """

    def __init__(self, name: str, table_name: str, columns: tuple[str, ...],
                 after_batch: Callable[[Any, list[dict[str, Any]]], None] | None = None) -> None:
        self.name = name
        self.table_name = table_name
        self.columns = columns
        #: Called with the Redis pipeline and the batch's rows after it is stored (extra cleanup).
        self.after_batch = after_batch
        self._created = columns.index("created_at")
        self._unique = columns.index("is_unique")

    @property
    def table(self) -> Table:
        return db.metadata.tables[self.table_name]

    def key(self, suffix: str = "buffer") -> str:
        return f"{current_app.config['REDIS_KEY_PREFIX']}{self.name}:{suffix}"

    # -- encoding --------------------------------------------------------------------------

    def encode(self, row: dict[str, Any]) -> str:
        """A row as the JSON kept in Redis (``is_unique`` travels beside it)."""
        values = [row.get(c) for c in self.columns]
        values[self._created] = row["created_at"].isoformat()
        return json.dumps(values, separators=(",", ":"))

    def values(self, payload: bytes | str, unique: bytes | str | int) -> list[Any]:
        """A buffered payload as the row's values in column order (what COPY writes)."""
        values = json.loads(payload)
        if len(values) < len(self.columns):
            values += [None] * (len(self.columns) - len(values))
        values[self._created] = datetime.fromisoformat(values[self._created])
        values[self._unique] = unique in (b"1", "1", 1)
        return values  # type: ignore[no-any-return]

    def decode(self, payload: bytes | str, unique: bytes | str | int) -> dict[str, Any]:
        """The row of a buffered payload."""
        return dict(zip(self.columns, self.values(payload, unique), strict=True))

    # -- writing ---------------------------------------------------------------------------

    def insert_ignore(self, rows: list[dict[str, Any]]) -> None:
        """INSERT the rows, skipping ids already there (the flush and the fallback may overlap)."""
        dialect = db.session.get_bind().dialect.name
        stmt: Any
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt = pg_insert(self.table).on_conflict_do_nothing()
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(self.table).on_conflict_do_nothing()
        else:  # pragma: no cover - other databases are not supported
            stmt = insert(self.table)
        db.session.execute(stmt, rows)

    def _copy(self, batch: list[list[Any]]) -> None:
        """PostgreSQL: COPY straight into the table; if some ids are already there (a rerun
        after a flush died between commit and trim), COPY into a staging table and
        ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` instead."""
        import psycopg

        raw = db.session.connection().connection.driver_connection
        cols = ", ".join(self.columns)
        table, stage = self.table_name, f"{self.table_name}_stage"
        with raw.cursor() as cur:  # type: ignore[union-attr]
            cur.execute(f"SAVEPOINT {table}_copy")
            try:
                with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                    for values in batch:
                        copy.write_row(values)
                cur.execute(f"RELEASE SAVEPOINT {table}_copy")
                return
            except psycopg.errors.UniqueViolation:
                cur.execute(f"ROLLBACK TO SAVEPOINT {table}_copy")
            cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
                        f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
            with cur.copy(f"COPY {stage} ({cols}) FROM STDIN") as copy:
                for values in batch:
                    copy.write_row(values)
            # Table and column names are constants, never input.
            cur.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage} "  # noqa: S608
                        "ON CONFLICT DO NOTHING")

    def store_batch(self, batch: list[list[Any]]) -> list[tuple[dict[str, Any], str]]:
        """Insert one batch (rows as value lists) and commit; rows the database refuses are
        returned with the reason."""
        try:
            if db.session.get_bind().dialect.name == "postgresql":
                self._copy(batch)
            else:
                self.insert_ignore([dict(zip(self.columns, v, strict=True)) for v in batch])
            db.session.commit()
            return []
        except (DataError, IntegrityError) as exc:
            db.session.rollback()
            log.warning("%s batch refused (%s); inserting row by row", self.name, exc.__class__.__name__)
        except Exception as exc:
            db.session.rollback()
            # psycopg errors raised inside COPY are not wrapped by SQLAlchemy.
            import psycopg

            if not isinstance(exc, psycopg.DataError | psycopg.IntegrityError):
                raise
        refused = []
        for values in batch:
            row = dict(zip(self.columns, values, strict=True))
            try:
                with db.session.begin_nested():
                    self.insert_ignore([row])
            except (DataError, IntegrityError) as exc:
                refused.append((row, str(exc.orig)[:500]))
        db.session.commit()
        return refused

    def flush(self, client: Any, batch_size: int = FLUSH_BATCH,
              max_batches: int = FLUSH_MAX_BATCHES) -> dict[str, Any]:
        """Move buffered rows into the database in bulk. Idempotent; one flush at a time.

        Entries leave the stream only after their batch is committed; a rerun after a crash
        re-inserts them with ON CONFLICT DO NOTHING, so nothing is doubled.
        """
        lock_key = self.key("flush-lock")
        token = secrets.token_hex(8)
        if not client.set(lock_key, token, nx=True, ex=LOCK_SECONDS):
            return {"flushed": 0, "skipped": "another flush is running"}
        flushed = refused_total = 0
        stream = self.key()
        try:
            for _ in range(max_batches):
                entries = client.xrange(stream, count=batch_size)
                if not entries:
                    break
                batch = [self.values(fields[b"c"], fields[b"u"]) for _, fields in entries]
                refused = self.store_batch(batch)
                pipe = client.pipeline(transaction=False)
                for row, reason in refused:
                    pipe.xadd(self.key("dead"), {"c": self.encode(row), "error": reason})
                # Everything up to the batch's last id was in the batch (read from the start, one
                # flusher at a time, ids only grow): trim up to it in one small command.
                last_ms, _, last_seq = entries[-1][0].decode().partition("-")
                pipe.xtrim(stream, minid=f"{last_ms}-{int(last_seq) + 1}", approximate=False)
                if self.after_batch is not None:
                    self.after_batch(pipe, batch)
                pipe.expire(lock_key, LOCK_SECONDS)
                pipe.execute()
                flushed += len(batch) - len(refused)
                refused_total += len(refused)
                if len(entries) < batch_size:
                    break
        finally:
            if client.get(lock_key) == token.encode():
                client.delete(lock_key)
        return {"flushed": flushed, "refused": refused_total}

"""Daily partitions of the clicks table on PostgreSQL, and click retention.

``clicks`` is declared ``PARTITION BY RANGE (created_at)`` (see ``Click``). Each UTC
day gets a partition ``clicks_pYYYYMMDD``; a ``clicks_default`` partition catches any
row outside the days made so far (a click is never refused for lack of a partition).
``install_partitions`` is the dbsetup installer (tests' schema builder, fresh
databases) and what the migration calls after creating the table; the periodic job
``click-partitions`` keeps partitions made ahead and drops those past retention.
On SQLite the table is plain: retention deletes rows instead.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, text, tuple_

# Table and partition names below are built from constants and dates, never from input.
from sqlalchemy.engine import Connection, Engine

from partnernet import clock

log = logging.getLogger(__name__)

TABLE = "clicks"
DEFAULT_PARTITION = "clicks_default"
#: Partitions are made this many days ahead of today (and one day back).
DAYS_AHEAD = 7


def partition_name(day: date) -> str:
    """The name of the partition holding ``day``'s clicks."""
    return f"{TABLE}_p{day:%Y%m%d}"


def _bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


def is_partitioned(conn: Connection) -> bool:
    """Whether ``clicks`` is a partitioned table here (PostgreSQL, made from the model)."""
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.scalar(text("SELECT c.relkind FROM pg_class c JOIN pg_namespace n "
                            "ON n.oid = c.relnamespace WHERE c.relname = :t "
                            "AND n.nspname = current_schema()"), {"t": TABLE})
    return bool(kind == "p")


def existing_partitions(conn: Connection) -> set[str]:
    """The names of ``clicks``' partitions (the day partitions and the default one).

    Names only, from the catalog: reading each partition's bound (``pg_get_expr``) locks each
    partition while it reads it (about 400 a year in), so the listing waited behind any
    partition another transaction held exclusively.
    """
    return set(conn.scalars(text(
        "SELECT c.relname FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
        "WHERE p.relname = :t"), {"t": TABLE}))


def create_day_partition(conn: Connection, day: date, existing: set[str] | None = None) -> bool:
    """Create the partition of ``day`` if missing; move any rows of that day out of the default
    partition first (PostgreSQL refuses to attach a range the default already holds).
    ``existing``: the partitions' names if the caller has them (kept up to date here)."""
    if existing is None:
        existing = existing_partitions(conn)
    name = partition_name(day)
    if name in existing:
        return False
    start, end = _bounds(day)
    params = {"s": start, "e": end}
    strays = conn.scalar(text(
        f"SELECT count(*) FROM {DEFAULT_PARTITION} WHERE created_at >= :s AND created_at < :e"),  # noqa: S608
        params) if DEFAULT_PARTITION in existing else 0
    bounds = f"FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
    if not strays:
        conn.execute(text(f'CREATE TABLE IF NOT EXISTS "{name}" PARTITION OF {TABLE} FOR VALUES {bounds}'))
        existing.add(name)
        return True
    # Rows of this day sit in the default partition: make the table, move them, attach.
    conn.execute(text(f'CREATE TABLE "{name}" (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)'))
    conn.execute(text(
        f'WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE created_at >= :s AND created_at < :e '  # noqa: S608
        f'RETURNING *) INSERT INTO "{name}" SELECT * FROM moved'), params)
    conn.execute(text(f'ALTER TABLE {TABLE} ATTACH PARTITION "{name}" FOR VALUES {bounds}'))
    log.info("created click partition %s, moving %s rows from the default partition", name, strays)
    existing.add(name)
    return True


def ensure_partitions(conn: Connection, today: date, days_ahead: int = DAYS_AHEAD) -> list[str]:
    """Make the default partition and one per day from yesterday to ``today + days_ahead``."""
    if not is_partitioned(conn):
        return []
    made = []
    existing = existing_partitions(conn)
    if DEFAULT_PARTITION not in existing:
        conn.execute(text(f"CREATE TABLE IF NOT EXISTS {DEFAULT_PARTITION} PARTITION OF {TABLE} DEFAULT"))
        existing.add(DEFAULT_PARTITION)
        made.append(DEFAULT_PARTITION)
    for offset in range(-1, days_ahead + 1):
        day = today + timedelta(days=offset)
        if create_day_partition(conn, day, existing):
            made.append(partition_name(day))
    return made


def drop_partitions_before(conn: Connection, cutoff_day: date) -> list[str]:
    """Drop the day partitions whose whole day is before ``cutoff_day``."""
    if not is_partitioned(conn):
        return []
    dropped = []
    for name in sorted(existing_partitions(conn)):
        if not name.startswith(f"{TABLE}_p") or len(name) != len(TABLE) + 10:
            continue
        try:
            day = datetime.strptime(name[len(TABLE) + 2:], "%Y%m%d").date()
        except ValueError:
            continue
        if day < cutoff_day:
            conn.execute(text(f'DROP TABLE "{name}"'))
            dropped.append(name)
    return dropped


def install_partitions(engine: Engine | Connection) -> None:
    """dbsetup installer (and what the migration calls): default + near-term day partitions.

    Idempotent; does nothing on SQLite or when ``clicks`` is not partitioned.
    """
    if isinstance(engine, Connection):
        ensure_partitions(engine, clock.now().date())
        return
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as conn:
        ensure_partitions(conn, clock.now().date())


#: Rows deleted per statement by retention on PostgreSQL (short locks, bounded WAL per commit).
RETENTION_BATCH = 10_000


def delete_older_rows(merchant_ids: list[int], cutoff: datetime, batch_size: int = RETENTION_BATCH) -> int:
    """Delete these merchants' clicks older than ``cutoff``; commits. Batched on PostgreSQL
    (one commit per batch, so a big purge never holds one long transaction), one plain
    DELETE on SQLite. Returns the number of rows deleted."""
    from partnernet.extensions import db
    from partnernet.links.models import Click

    if db.session.get_bind().dialect.name != "postgresql":
        # A DELETE's result is a CursorResult (Session.execute is typed as returning a Result).
        result = cast(CursorResult[Any], db.session.execute(delete(Click).where(
            Click.merchant_id.in_(merchant_ids), Click.created_at < cutoff)))
        db.session.commit()
        return int(result.rowcount or 0)
    deleted = 0
    while True:
        # The (merchant_id, created_at) index finds the rows; created_at prunes to old partitions.
        old = (select(Click.id, Click.created_at)
               .where(Click.merchant_id.in_(merchant_ids), Click.created_at < cutoff)
               .limit(batch_size))
        result = cast(CursorResult[Any], db.session.execute(delete(Click).where(
            tuple_(Click.id, Click.created_at).in_(old))))
        db.session.commit()
        deleted += int(result.rowcount or 0)
        if (result.rowcount or 0) < batch_size:
            return deleted


def maintain(now: datetime | None = None, batch_size: int = RETENTION_BATCH) -> dict[str, Any]:
    """Periodic job: make partitions ahead, apply each merchant's click retention. Commits.

    Day partitions go once the longest retention of all merchants has passed them; the
    rows of merchants with a shorter retention go by (batched) DELETE.
    """
    from partnernet.accounts.models import Merchant
    from partnernet.extensions import db

    now = now or clock.now()
    conn = db.session.connection()
    made = ensure_partitions(conn, now.date())
    retentions = dict(db.session.execute(select(Merchant.id, Merchant.click_retention_days)).all())
    dropped: list[str] = []
    deleted = 0
    if retentions:
        longest = max(retentions.values())
        dropped = drop_partitions_before(conn, (now - timedelta(days=longest)).date())
    db.session.commit()
    # Merchants grouped by retention: one batched DELETE per distinct retention. The longest
    # group too: its rows in the partly kept cutoff day and in the default partition.
    groups: dict[int, list[int]] = {}
    for merchant_id, days in retentions.items():
        groups.setdefault(days, []).append(merchant_id)
    for days, merchant_ids in sorted(groups.items()):
        deleted += delete_older_rows(merchant_ids, now - timedelta(days=days), batch_size)
    return {"created": made, "dropped": dropped, "deleted_rows": deleted}

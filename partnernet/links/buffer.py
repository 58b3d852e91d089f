"""The click sink: a Redis stream buffer flushed in bulk, or the database directly.

With Redis, a redirect makes one round trip: a Lua script that sets the one-hour
uniqueness key (``SET NX EX``), appends the click to the stream, keeps a copy under
the click id (so the postback path resolves it before the flush) and indexes it by
visitor. ``flush_clicks`` moves the stream into the database in bulk — ``COPY`` into
a staging table then ``INSERT ... ON CONFLICT DO NOTHING`` on PostgreSQL, executemany
elsewhere — and only then deletes the entries, so a flush that dies half way and is
run again inserts nothing twice. Without Redis, or while Redis is not answering, the
click goes straight to the database: a click that got its 302 is never lost.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import insert, select
from sqlalchemy.exc import DataError, IntegrityError

from partnernet.extensions import db
from partnernet.links.models import Click

log = logging.getLogger(__name__)

#: Columns of a click row, in COPY order.
COLUMNS = (
    "id", "created_at", "link_id", "merchant_id", "offer_id", "partner_id", "ip_truncated",
    "ip_hash", "user_agent", "referer", "sub1", "sub2", "sub3", "sub4", "sub5", "visitor_id",
    "is_unique", "is_bot", "paid_ads_param", "country",
)
#: A click stays readable under its id this long if no flush removes it first.
CLICK_KEY_TTL = 3600
UNIQUE_WINDOW = 3600
#: After a Redis error, this process writes clicks to the database for this long.
REDIS_BACKOFF_SECONDS = 5.0
FLUSH_BATCH = 5000
FLUSH_MAX_BATCHES = 40

# KEYS: uniqueness key, stream, click key, visitor index
# ARGV: payload, click id, score (epoch seconds), unique window, click ttl, check unique (1/0)
_RECORD_LUA = """
local uniq = 0
if ARGV[6] == '1' then
  if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[4]) then uniq = 1 end
end
redis.call('XADD', KEYS[2], '*', 'c', ARGV[1], 'u', uniq)
redis.call('SET', KEYS[3], uniq .. ARGV[1], 'EX', ARGV[5])
if ARGV[7] == '1' then
  redis.call('ZADD', KEYS[4], ARGV[3], ARGV[2])
  redis.call('EXPIRE', KEYS[4], ARGV[5])
end
return uniq
"""


class _State:
    """Per-app, per-process state of the Redis click path."""

    def __init__(self) -> None:
        self.client: Any = None
        self.down_until = 0.0
        self.lock = threading.Lock()
        #: One raw connection per thread for the redirect's script call (see ``_evalsha``).
        self.local = threading.local()


def _state(app: Flask) -> _State:
    ext = app.extensions.setdefault("partnernet_links", {})
    state = ext.get("buffer")
    if state is None:
        state = ext["buffer"] = _State()
    return state


def redis_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "Redis is not answering": the caller falls back to the database."""
    import redis

    return (redis.exceptions.RedisError, OSError)


def click_redis(app: Flask | None = None) -> Any:
    """The Redis client of the click path (short timeouts), or None: no Redis, or backing off."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    url = app.config.get("REDIS_URL")
    if not url or app.config.get("CLICK_SINK", "auto") == "database":
        return None
    state = _state(app)
    if state.down_until and time.monotonic() < state.down_until:
        return None
    if state.client is None:
        import redis

        with state.lock:
            if state.client is None:
                state.client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    return state.client


def mark_redis_down(app: Flask | None = None) -> None:
    """Remember a Redis failure: skip Redis for a few seconds instead of waiting on each click."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    backoff = float(app.config.get("CLICK_REDIS_BACKOFF_SECONDS", REDIS_BACKOFF_SECONDS))
    _state(app).down_until = time.monotonic() + backoff


def _prefix() -> str:
    return str(current_app.config["REDIS_KEY_PREFIX"])


def stream_key() -> str:
    return f"{_prefix()}clicks:buffer"


def click_key(click_id: str) -> str:
    return f"{_prefix()}click:{click_id}"


def visitor_key(visitor_id: str, offer_id: int) -> str:
    return f"{_prefix()}vclicks:{visitor_id}:{offer_id}"


def unique_key(link_id: int, fingerprint: str) -> str:
    return f"{_prefix()}uq:{link_id}:{fingerprint}"


# -- encoding ---------------------------------------------------------------------------

def encode(row: dict[str, Any]) -> str:
    """A click row as the JSON kept in Redis (``is_unique`` travels beside it)."""
    values = [row.get(c) for c in COLUMNS]
    values[1] = row["created_at"].isoformat()
    return json.dumps(values, separators=(",", ":"))


def decode(payload: bytes | str, unique: bytes | str | int) -> dict[str, Any]:
    """The click row of a buffered payload."""
    values = json.loads(payload)
    row = dict(zip(COLUMNS, values, strict=True))
    row["created_at"] = datetime.fromisoformat(row["created_at"])
    row["is_unique"] = str(unique if not isinstance(unique, bytes) else unique.decode()) == "1"
    return row


# -- the write path ---------------------------------------------------------------------

_RECORD_SHA = hashlib.sha1(_RECORD_LUA.encode()).hexdigest().encode()  # noqa: S324 - Redis names scripts so


def _pack(parts: list[bytes]) -> bytes:
    """One Redis command in RESP (https://redis.io/docs/reference/protocol-spec/)."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


def _evalsha(state: _State, parts: list[bytes]) -> Any:
    """EVALSHA on this thread's own connection, packed here.

    redis-py's generic command path costs several times the round trip itself in
    CPU (pool checkout, argument encoding, retry wrappers); the redirect makes one
    call per click, so it talks to one held connection directly.
    """
    import redis

    conn = getattr(state.local, "conn", None)
    if conn is None:
        conn = state.local.conn = state.client.connection_pool.make_connection()
    command = _pack([b"EVALSHA", _RECORD_SHA, b"4", *parts])
    try:
        conn.send_packed_command([command], check_health=False)
        return conn.read_response()
    except redis.exceptions.NoScriptError:
        state.client.script_load(_RECORD_LUA)  # Redis restarted: load it again, then once more
        conn.send_packed_command([command], check_health=False)
        return conn.read_response()
    except BaseException:
        conn.disconnect()
        state.local.conn = None
        raise


def buffer_click(row: dict[str, Any], fingerprint: str | None) -> bool | None:
    """Append a click to the Redis buffer; its ``is_unique``, or None if Redis is not usable.

    ``fingerprint`` (IP hash + user agent digest) names the one-hour uniqueness key;
    None (bots) means the click is not unique.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    client = click_redis(app)
    if client is None:
        return None
    state = _state(app)
    prefix = str(app.config["REDIS_KEY_PREFIX"])
    visitor = row.get("visitor_id")
    click_id = row["id"]
    parts = [
        f"{prefix}uq:{row['link_id']}:{fingerprint or '-'}".encode(),
        f"{prefix}clicks:buffer".encode(),
        f"{prefix}click:{click_id}".encode(),
        f"{prefix}vclicks:{visitor}:{row['offer_id']}".encode() if visitor else f"{prefix}vclicks:-".encode(),
        encode(row).encode(), click_id.encode(), b"%d" % int(row["created_at"].timestamp()),
        b"%d" % UNIQUE_WINDOW, b"%d" % CLICK_KEY_TTL, b"1" if fingerprint else b"0",
        b"1" if visitor else b"0",
    ]
    try:
        result = _evalsha(state, parts)
    except redis_errors() as exc:
        log.warning("Redis not answering (%s: %s); clicks go to the database for a few seconds",
                    exc.__class__.__name__, exc)
        mark_redis_down(app)
        return None
    return bool(int(result))


def insert_ignore(rows: list[dict[str, Any]]) -> None:
    """INSERT the rows, skipping ids already there (the flush and the fallback may overlap)."""
    table = Click.__table__
    dialect = db.session.get_bind().dialect.name
    stmt: Any
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(table).on_conflict_do_nothing()
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table).on_conflict_do_nothing()
    else:  # pragma: no cover - other databases are not supported
        stmt = insert(table)
    db.session.execute(stmt, rows)


def write_click_to_database(row: dict[str, Any], check_unique: bool) -> bool:
    """The direct path: decide uniqueness with a query, insert, commit. Returns ``is_unique``."""
    unique = False
    if check_unique:
        since = row["created_at"] - timedelta(seconds=UNIQUE_WINDOW)
        # Like the Redis key: the window runs from the last *unique* click, for one hour.
        seen = db.session.scalar(select(Click.id).where(
            Click.link_id == row["link_id"], Click.ip_hash.is_not_distinct_from(row["ip_hash"]),
            Click.user_agent.is_not_distinct_from(row["user_agent"]), Click.is_unique.is_(True),
            Click.created_at > since, Click.created_at <= row["created_at"]).limit(1))
        unique = seen is None
    row["is_unique"] = unique
    insert_ignore([row])
    db.session.commit()
    return unique


# -- reading the buffer -----------------------------------------------------------------

def buffered_click(click_id: str) -> dict[str, Any] | None:
    """A click still in the buffer (not flushed yet), as a row; None if absent or no Redis."""
    client = click_redis()
    if client is None:
        return None
    try:
        raw = client.get(click_key(click_id))
    except redis_errors():
        mark_redis_down()
        return None
    if raw is None:
        return None
    return decode(raw[1:], raw[:1])


def buffered_visitor_clicks(visitor_id: str, offer_id: int, since: datetime) -> list[dict[str, Any]]:
    """The visitor's clicks on the offer still in the buffer, since ``since``."""
    client = click_redis()
    if client is None:
        return []
    try:
        ids = client.zrangebyscore(visitor_key(visitor_id, offer_id), int(since.timestamp()), "+inf")
        if not ids:
            return []
        raws = client.mget([click_key(i.decode()) for i in ids])
    except redis_errors():
        mark_redis_down()
        return []
    rows = [decode(raw[1:], raw[:1]) for raw in raws if raw is not None]
    return [r for r in rows if r["created_at"] >= since]


def buffer_length() -> int | None:
    """How many clicks wait in the buffer (None without Redis)."""
    client = click_redis()
    if client is None:
        return None
    return int(client.xlen(stream_key()))


# -- the flush --------------------------------------------------------------------------

def _copy_rows(rows: list[dict[str, Any]]) -> None:
    """PostgreSQL: COPY straight into clicks; if some ids are already there (a rerun after a
    flush died between commit and stream delete), COPY into a staging table and
    ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` instead."""
    import psycopg

    conn = db.session.connection()
    raw = conn.connection.driver_connection
    cols = ", ".join(COLUMNS)
    with raw.cursor() as cur:  # type: ignore[union-attr]
        cur.execute("SAVEPOINT click_copy")
        try:
            with cur.copy(f"COPY clicks ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([row[c] for c in COLUMNS])
            cur.execute("RELEASE SAVEPOINT click_copy")
            return
        except psycopg.errors.UniqueViolation:
            cur.execute("ROLLBACK TO SAVEPOINT click_copy")
        cur.execute("CREATE TEMP TABLE IF NOT EXISTS clicks_stage "
                    "(LIKE clicks INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
        with cur.copy(f"COPY clicks_stage ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[c] for c in COLUMNS])
        # Column names are the COLUMNS constant, never input.
        cur.execute(f"INSERT INTO clicks ({cols}) SELECT {cols} FROM clicks_stage "  # noqa: S608
                    "ON CONFLICT DO NOTHING")


def _store_batch(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str]]:
    """Insert one batch and commit; rows the database refuses are returned with the reason."""
    try:
        if db.session.get_bind().dialect.name == "postgresql":
            _copy_rows(rows)
        else:
            insert_ignore(rows)
        db.session.commit()
        return []
    except (DataError, IntegrityError) as exc:
        db.session.rollback()
        log.warning("click batch refused (%s); inserting row by row", exc.__class__.__name__)
    except Exception as exc:
        db.session.rollback()
        # psycopg errors raised inside COPY are not wrapped by SQLAlchemy.
        import psycopg

        if not isinstance(exc, psycopg.DataError | psycopg.IntegrityError):
            raise
    refused = []
    for row in rows:
        try:
            with db.session.begin_nested():
                insert_ignore([row])
        except (DataError, IntegrityError) as exc:
            refused.append((row, str(exc.orig)[:500]))
    db.session.commit()
    return refused


def flush_clicks(batch_size: int = FLUSH_BATCH, max_batches: int = FLUSH_MAX_BATCHES) -> dict[str, Any]:
    """Move buffered clicks into the database in bulk. Idempotent; one flush at a time.

    Entries are deleted from the stream only after their batch is committed; a rerun
    after a crash re-inserts them with ON CONFLICT DO NOTHING, so nothing is doubled.
    Rows the database refuses go to a dead-letter stream instead of blocking the buffer.
    """
    client = click_redis()
    if client is None:
        return {"flushed": 0, "buffer": None}
    lock_key = f"{_prefix()}clicks:flush-lock"
    token = secrets.token_hex(8)
    if not client.set(lock_key, token, nx=True, ex=120):
        return {"flushed": 0, "skipped": "another flush is running"}
    flushed = refused_total = 0
    try:
        for _ in range(max_batches):
            entries = client.xrange(stream_key(), count=batch_size)
            if not entries:
                break
            rows = [decode(fields[b"c"], fields[b"u"]) for _, fields in entries]
            refused = _store_batch(rows)
            pipe = client.pipeline(transaction=False)
            for row, reason in refused:
                pipe.xadd(f"{_prefix()}clicks:dead", {"c": encode(row), "error": reason})
            # Everything up to the batch's last id was in the batch (read from the start, one
            # flusher at a time, ids only grow): trim up to it in one small command.
            last_ms, _, last_seq = entries[-1][0].decode().partition("-")
            pipe.xtrim(stream_key(), minid=f"{last_ms}-{int(last_seq) + 1}", approximate=False)
            pipe.delete(*[click_key(row["id"]) for row in rows])
            pipe.expire(lock_key, 120)
            pipe.execute()
            flushed += len(rows) - len(refused)
            refused_total += len(refused)
            if len(entries) < batch_size:
                break
    finally:
        if client.get(lock_key) == token.encode():
            client.delete(lock_key)
    return {"flushed": flushed, "refused": refused_total}

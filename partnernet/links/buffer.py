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
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import select

from partnernet.extensions import app_state, db
from partnernet.links.models import Click
from partnernet.links.streams import FLUSH_BATCH, FLUSH_MAX_BATCHES, StreamBuffer

log = logging.getLogger(__name__)

#: Columns of a click row, in COPY order.
COLUMNS = (
    "id", "created_at", "link_id", "merchant_id", "offer_id", "partner_id", "ip_truncated",
    "ip_hash", "user_agent", "referer", "sub1", "sub2", "sub3", "sub4", "sub5", "visitor_id",
    "is_unique", "is_bot", "paid_ads_param", "country", "variant_id", "creative_id",
)
#: A click stays readable under its id this long if no flush removes it first.
CLICK_KEY_TTL = 3600
UNIQUE_WINDOW = 3600
#: After a Redis error, this process writes clicks to the database for this long.
REDIS_BACKOFF_SECONDS = 5.0

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
        #: One raw connection per thread for the redirect's script call (see ``run_script``).
        self.local = threading.local()


def _state(app: Flask) -> _State:
    return app_state(app, "partnernet_links", "buffer", _State)


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
    return CLICKS.key()


def click_key(click_id: str) -> str:
    return f"{_prefix()}click:{click_id}"


def visitor_key(visitor_id: str, offer_id: int) -> str:
    return f"{_prefix()}vclicks:{visitor_id}:{offer_id}"


def unique_key(link_id: int, fingerprint: str) -> str:
    return f"{_prefix()}uq:{link_id}:{fingerprint}"


# -- encoding ---------------------------------------------------------------------------

def _entry_click_id(payload: bytes) -> str:
    """The click id of a buffered entry (the first field, in either format)."""
    if payload[:1] == b"[":
        return str(json.loads(payload)[0])
    return payload.split(b"\t", 1)[0].decode()


def _drop_click_keys(batch: list[tuple[bytes, bytes]]) -> list[list[bytes]]:
    """Flushed clicks resolve from the database now: their copies under the click id go.

    A packed line starts with the click id and a tab: the key is made from its bytes (10,000
    of these per batch; going through ``click_key`` per entry cost 2.5 µs a click)."""
    prefix = click_key("").encode()
    return [[b"UNLINK", *[
        prefix + (payload.partition(b"\t")[0] if payload[:1] != b"[" else _entry_click_id(payload).encode())
        for payload, _ in batch]]]


#: The clicks' stream buffer (``<prefix>clicks:buffer``).
CLICKS = StreamBuffer("clicks", "clicks", COLUMNS, after_batch=_drop_click_keys)


def encode(row: dict[str, Any]) -> str:
    """A click row as the JSON kept in Redis (``is_unique`` travels beside it)."""
    return CLICKS.encode(row)


def decode(payload: bytes | str, unique: bytes | str | int) -> dict[str, Any]:
    """The click row of a buffered payload (older entries: the columns added since are NULL)."""
    return CLICKS.decode(payload, unique)


# -- the write path ---------------------------------------------------------------------

class Script:
    """A Lua script run by EVALSHA on a held per-thread connection (see ``run_script``)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest().encode()  # noqa: S324 - Redis names scripts so


RECORD_CLICK = Script(_RECORD_LUA)


def _pack(parts: list[bytes]) -> bytes:
    """One Redis command in RESP (https://redis.io/docs/reference/protocol-spec/)."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


def _held_connection(state: _State) -> Any:
    conn = getattr(state.local, "conn", None)
    if conn is None:
        conn = state.local.conn = state.client.connection_pool.make_connection()
    return conn


def run_commands(app: Flask, commands: list[list[bytes]]) -> list[Any]:
    """Several commands in one write on this thread's held connection; their replies, as
    hiredis parses them (no redis-py response callbacks: XRANGE stays nested lists).

    The flush's commands are safe to repeat, so a held connection that Redis closed (it
    restarted since) is replaced once and the commands sent again.
    """
    import redis

    state = _state(app)
    for attempt in (1, 2):
        reused = getattr(state.local, "conn", None) is not None
        conn = _held_connection(state)
        try:
            conn.send_packed_command([b"".join([_pack(c) for c in commands])], check_health=False)
            return [conn.read_response() for _ in commands]
        except BaseException as exc:
            conn.disconnect()
            state.local.conn = None
            if attempt == 1 and reused and isinstance(exc, redis.exceptions.ConnectionError):
                continue
            raise
    raise AssertionError("unreachable")  # pragma: no cover


class Pipe:
    """Commands written now, replies read later, in order, on this thread's held connection.

    The flush writes the read of its next batch before it starts the COPY of the current
    one, and the trim of a batch before the COPY of the next: Redis does its part while
    PostgreSQL does the COPY instead of the two waiting on each other. Any error drops the
    connection (replies still in flight would answer the wrong commands); the flush is safe
    to run again.
    """

    def __init__(self, app: Flask) -> None:
        self.state = _state(app)
        self.conn: Any = None

    def send(self, commands: list[list[bytes]]) -> None:
        if self.conn is None:  # taken at the first send (the flushing thread's, as ``run`` left it)
            self.conn = _held_connection(self.state)
        try:
            self.conn.send_packed_command([b"".join([_pack(c) for c in commands])], check_health=False)
        except BaseException:
            self.abort()
            raise

    def read(self) -> Any:
        """The reply to the oldest command sent and not read yet."""
        try:
            return self.conn.read_response()
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Drop the connection (the thread that owns it opens a new one when next needed)."""
        if self.conn is None:
            return
        self.conn.disconnect()
        if getattr(self.state.local, "conn", None) is self.conn:
            self.state.local.conn = None
        self.conn = None


def run_script(app: Flask, script: Script, keys: list[bytes], args: list[bytes]) -> Any:
    """EVALSHA on this thread's own connection, packed here; raises ``redis_errors()``.

    redis-py's generic command path costs several times the round trip itself in
    CPU (pool checkout, argument encoding, retry wrappers); the redirect and the pixel
    make one call per request, so they talk to one held connection directly.
    """
    import redis

    state = _state(app)
    conn = _held_connection(state)
    command = _pack([b"EVALSHA", script.sha, b"%d" % len(keys), *keys, *args])
    try:
        conn.send_packed_command([command], check_health=False)
        return conn.read_response()
    except redis.exceptions.NoScriptError:
        state.client.script_load(script.source)  # Redis restarted: load it again, then once more
        conn.send_packed_command([command], check_health=False)
        return conn.read_response()
    except BaseException:
        conn.disconnect()
        state.local.conn = None
        raise


def buffer_click(row: dict[str, Any], fingerprint: str | None, app: Flask | None = None,
                 index_visitor: bool = True) -> bool | None:
    """Append a click to the Redis buffer; its ``is_unique``, or None if Redis is not usable.

    ``fingerprint`` (IP hash + user agent digest) names the one-hour uniqueness key;
    None (bots) means the click is not unique. ``app`` given: no app context needed.
    ``index_visitor``: also file the click under its visitor (first-click offers read that).
    A switch to first click reaches every process within ``tracking.LOCAL_TTL`` seconds: a
    click buffered before then and still unflushed when its visitor converts is not seen as
    the first (the flush runs every few seconds, so the window is seconds wide, once).
    """
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    client = click_redis(app)
    if client is None:
        return None
    prefix = str(app.config["REDIS_KEY_PREFIX"])
    visitor = row.get("visitor_id")
    click_id = row["id"]
    keys = [
        f"{prefix}uq:{row['link_id']}:{fingerprint or '-'}".encode(),
        f"{prefix}clicks:buffer".encode(),
        f"{prefix}click:{click_id}".encode(),
        f"{prefix}vclicks:{visitor}:{row['offer_id']}".encode() if visitor else f"{prefix}vclicks:-".encode(),
    ]
    args = [
        encode(row).encode(), click_id.encode(), b"%d" % int(row["created_at"].timestamp()),
        b"%d" % UNIQUE_WINDOW, b"%d" % CLICK_KEY_TTL, b"1" if fingerprint else b"0",
        b"1" if visitor and index_visitor else b"0",
    ]
    try:
        result = run_script(app, RECORD_CLICK, keys, args)
    except redis_errors() as exc:
        log.warning("Redis not answering (%s: %s); clicks go to the database for a few seconds",
                    exc.__class__.__name__, exc)
        mark_redis_down(app)
        return None
    return bool(int(result))


def insert_ignore(rows: list[dict[str, Any]]) -> None:
    """INSERT click rows, skipping ids already there (the flush and the fallback may overlap)."""
    CLICKS.insert_ignore(rows)


def write_click_to_database(row: dict[str, Any], check_unique: bool) -> bool:
    """The direct path: decide uniqueness with a query, insert, commit. Returns ``is_unique``."""
    unique = False
    if check_unique:
        since = row["created_at"] - timedelta(seconds=UNIQUE_WINDOW)
        # Like the Redis key: the window runs from the last *unique* click, for one hour.
        # ``=`` on the IP hash, not IS NOT DISTINCT FROM (which no index can serve): the
        # hash index finds this IP's few clicks, the rest is filtered from them.
        hashed = row["ip_hash"]
        same_ip = Click.ip_hash == hashed if hashed is not None else Click.ip_hash.is_(None)
        seen = db.session.scalar(select(Click.id).where(
            same_ip, Click.link_id == row["link_id"],
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

def _store_batch(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str]]:
    """Insert one batch of click rows and commit; refused rows come back with the reason."""
    return CLICKS.store_rows(rows)


def flush_clicks(batch_size: int = FLUSH_BATCH, max_batches: int = FLUSH_MAX_BATCHES) -> dict[str, Any]:
    """Move buffered clicks into the database in bulk (see ``StreamBuffer.flush``)."""
    client = click_redis()
    if client is None:
        return {"flushed": 0, "buffer": None}
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return CLICKS.flush(client, lambda commands: run_commands(app, commands), batch_size, max_batches,
                        pipe=Pipe(app))

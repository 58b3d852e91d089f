"""``GET /postback`` before Flask, on PostgreSQL with Redis: the common case in two Redis and
two PostgreSQL round trips, on raw psycopg.

The common case: token or signature authentication, a new or duplicate sale, lead or
custom event attributed by ``click_id``. Everything else — POST, refunds, coupons,
first-click offers, any error the request would get (unattributed, click_expired,
order_conflict, bad parameters, ...), any failure here — is answered by the Flask view
(``views.postback``) exactly as before. The hand-over happens before anything is written,
or, once the raw log row exists, with that row's id so the view completes *that* row
instead of logging the request twice (``environ["partnernet.postback_id"]``).

One postback here is:

1. Redis: the rate limit — Flask-Limiter's own storage and strategy, same key, same limit
   as the view's decorator (when the limit is reached the view answers the 429 and counts
   the request again on a bucket that is already full, which changes nothing); after a hit
   here the view is told not to count the request again (``partnernet.postback_limited``).
2. Redis: the merchant's config version and the click, if still in the click buffer
   (``links.buffer``), in one write.
3. PostgreSQL, one pipelined flight: the raw log row (``INSERT``, committed at once with
   ``synchronous_commit`` off) and one read statement: the click (unless buffered: from the
   one partition its id's day names, never from the partitioned table, see ``ClickTables``), the
   order's existing conversion and its commission, the partner, the partner's override,
   and what the commission engine counts (the month's conversions for tiers, the same-IP
   conversions, the count and median of the offer's trailing amounts, the partner's
   conversions today) — each only when the engine would read it.
4. The commission from the engine (``commissions.services.compute_commission`` with those
   facts: the money rules are not repeated here).
5. PostgreSQL: one statement writes the conversion (``ON CONFLICT DO NOTHING``), its
   commission and the log row's outcome — all or nothing, committed synchronously. For a
   duplicate: the outcome ``UPDATE`` alone. Either commit flushes the WAL up to and including
   the raw log's own commit, so the log is durable before the answer (invariant 5).

The merchant's settings and the offer's terms come from ``terms_cache`` (in process,
checked against the merchant's config version read in step 2).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl

import psycopg
import werkzeug.urls  # noqa: F401 - registers the "werkzeug.url_quote" codec error handler
from flask import Flask
from flask.json.provider import DefaultJSONProvider
from psycopg.types.json import Json

from partnernet import clock, tokens
from partnernet.commissions import calc, fraud
from partnernet.commissions import services as commissions
from partnernet.conversions import outgoing, services, terms_cache
from partnernet.conversions.attribution import within_window
from partnernet.conversions.auth import PostbackRequest, authenticate, source_allowed
from partnernet.conversions.exceptions import OrderConflict
from partnernet.errors import PartnernetError, error_body
from partnernet.money import MoneyError

log = logging.getLogger(__name__)

#: environ keys the fast path hands to the view (a client cannot set keys with dots).
POSTBACK_ID_KEY = "partnernet.postback_id"
LIMITED_KEY = "partnernet.postback_limited"
WRITTEN_KEY = "partnernet.postback_written"
ENDPOINT = "conversions.postback"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Handover(Exception):  # noqa: N818 - a signal, not an error
    """The Flask view answers this request."""


# -- SQL (PostgreSQL), built once ----------------------------------------------------------

def _pg_type(column: Any) -> str:
    from sqlalchemy.dialects import postgresql

    return str(column.type.compile(dialect=postgresql.dialect()))


#: The raw log row's columns that are the same for every request here.
_LOG_CONSTANTS = {"outcome": "'received'", "http_status": "NULL", "conversion_id": "NULL",
                  "message": "NULL", "method": "'GET'", "merchant_id": "%(m)s::bigint"}


def _build_sql() -> dict[str, str]:
    from partnernet.commissions.models import Commission
    from partnernet.conversions.models import Conversion, Postback

    pb = Postback.__table__
    log_cols = [c.name for c in pb.c if c.name != "id"]
    # The raw log row, committed by the read statement itself *asynchronously*: set_config(...,
    # true) lasts for the statement's own (implicit) transaction. The synchronous commit that
    # ends every answer (the write, the duplicate's outcome, or the view's) flushes the WAL
    # past it, so the row is durable before any answer.
    insert_log = (
        "cfg AS (SELECT set_config('synchronous_commit', 'off', true) AS v), "  # noqa: S608 - names from the models, values bound
        f"logged AS (INSERT INTO postbacks ({', '.join(log_cols)}) SELECT "
        + ", ".join(_LOG_CONSTANTS.get(n) or ("%(at)s::timestamptz" if n == "received_at" else
                                              f"%(l_{n})s::{_pg_type(pb.c[n])}") for n in log_cols)
        + " FROM cfg RETURNING id), ")

    conv = Conversion.__table__
    conv_cols = [c.name for c in conv.c if c.name != "id"]
    comm = Commission.__table__
    comm_cols = [c.name for c in comm.c if c.name not in ("id", "conversion_id")]
    # The write, with {placeholders} for each column's value: ``write_sql`` fills them in.
    write = (
        "WITH new_conversion AS ("  # noqa: S608 - names from the models, values bound
        f"INSERT INTO conversions ({', '.join(conv_cols)}) VALUES ("
        + ", ".join(f"{{v_{n}}}" for n in conv_cols)
        + ") ON CONFLICT (merchant_id, event, order_id) DO NOTHING "
        f"RETURNING id, {', '.join(_FROM_CONVERSION)}), "
        "new_commission AS ("
        f"INSERT INTO commissions ({', '.join(comm_cols)}, conversion_id) SELECT "
        + ", ".join(f"{{m_{n}}}" for n in comm_cols)
        + ", id FROM new_conversion RETURNING id, conversion_id), "
        "outcome AS (UPDATE postbacks SET outcome = 'accepted', http_status = 200, message = NULL, "
        "conversion_id = (SELECT conversion_id FROM new_commission) "
        "WHERE id = %(pb_id)s AND EXISTS (SELECT 1 FROM new_commission) RETURNING id) "
        "SELECT nc.id, nm.id FROM new_conversion nc JOIN new_commission nm ON nm.conversion_id = nc.id")
    _WRITE_TYPES.update({f"v_{n}": _pg_type(conv.c[n]) for n in conv_cols})
    _WRITE_TYPES.update({f"m_{n}": _pg_type(comm.c[n]) for n in comm_cols})

    cm_cols = [c.name for c in comm.c]
    # The engine's counts, each only when it would read it (commissions.services), and only
    # in the statements of merchants and rule settings that can need it (``read_sql``): a
    # count left out is not executor work, not a lock, and not a parameter on every postback.
    # The windows are worked out from the one timestamp ``at`` (UTC: the connection's TimeZone).
    lookback = int(commissions.OUTLIER_LOOKBACK.total_seconds())
    counts = {
        "tiers": "CASE WHEN ex.id IS NULL AND ov.id IS NULL AND EXISTS (SELECT 1 FROM commission_plans pl "
        " JOIN plan_tiers t ON t.plan_id = pl.id WHERE pl.offer_id = c.offer_id AND pl.event = %(e)s) "
        "THEN (SELECT count(*) FROM conversions v JOIN commissions k ON k.conversion_id = v.id "
        " WHERE v.offer_id = c.offer_id AND v.partner_id = c.partner_id AND v.event = %(e)s "
        " AND v.created_at >= date_trunc('month', %(at)s::timestamptz) "
        " AND k.status NOT IN ('rejected', 'reversed')) END",
        "dup_ip": "CASE WHEN ex.id IS NULL AND c.ip_hash IS NOT NULL "
        "THEN (SELECT count(*) FROM conversions v WHERE v.offer_id = c.offer_id "
        " AND v.ip_hash = c.ip_hash AND v.created_at > %(at)s::timestamptz - interval '24 hours' "
        " AND v.created_at <= %(at)s::timestamptz) END",
        # ``event`` as a range, not an equality: with an equality the planner drops the
        # offer and event from the ORDER BY and may walk pk_conversions backwards over every
        # offer's rows (a small offer among big ones); with the range only an index on
        # (offer_id, event, id) gives this order without sorting the offer's conversions.
        # How many of the trailing amounts there are and their two middle ones (the same one
        # for an odd count), not the amounts themselves (200 numbers out as text, parsed and
        # sorted in Python on every postback); the median is worked out exactly from those
        # two (fraud.middle), as the engine does from the amounts. No float.
        "outlier": "CASE WHEN ex.id IS NULL THEN (SELECT ARRAY[count(*), "  # noqa: S608 - constants
        " percentile_disc(0.5) WITHIN GROUP (ORDER BY s.a), "
        " percentile_disc(0.5) WITHIN GROUP (ORDER BY s.a DESC)] FROM (SELECT v.amount_minor AS a "
        " FROM conversions v WHERE v.offer_id = c.offer_id AND v.event >= %(e)s AND v.event <= %(e)s "
        " AND v.amount_minor IS NOT NULL "
        f" AND v.created_at >= %(at)s::timestamptz - interval '{lookback} seconds' "
        f" ORDER BY v.event DESC, v.id DESC LIMIT {commissions.OUTLIER_SAMPLE}) s) END",
        "cap": "CASE WHEN ex.id IS NULL AND o.daily_cap IS NOT NULL "
        "THEN (SELECT count(*) FROM conversions v WHERE v.offer_id = c.offer_id "
        " AND v.partner_id = c.partner_id AND v.created_at >= date_trunc('day', %(at)s::timestamptz) "
        " AND v.created_at <= %(at)s::timestamptz) END",
    }
    read = (
        "WITH " + insert_log + "c AS ({click}) "  # noqa: S608 - names from the models, values bound
        "SELECT logged.id, ex.id, ex.currency, ex.amount_minor, "
        + ", ".join(f"cm.{n}" for n in cm_cols) + ", "  # noqa: S608 - names from the models, values bound
        "c.id, c.created_at, c.merchant_id, c.offer_id, c.partner_id, c.ip_hash, c.ip_truncated, "
        "c.is_bot, c.paid_ads_param, p.id, p.email, p.postback_url, ov.id, ov.percent, "
        "ov.amount_minor, {tiers}, {dup_ip}, {outlier}, {cap} "
        "FROM logged "
        "LEFT JOIN conversions ex ON ex.merchant_id = %(m)s AND ex.event = %(e)s AND ex.order_id = %(o)s "
        "LEFT JOIN commissions cm ON cm.conversion_id = ex.id "
        "LEFT JOIN c ON true "
        "{offer}"
        # by primary key (a LIMIT keeps it a probe per click, not a hash of every partner)
        "LEFT JOIN LATERAL (SELECT p.id, p.email, p.postback_url FROM partners p "
        " WHERE p.id = c.partner_id LIMIT 1) p ON true "
        "LEFT JOIN plan_overrides ov ON ov.offer_id = c.offer_id AND ov.partner_id = c.partner_id "
        " AND ov.event = %(e)s")
    outcome = ("UPDATE postbacks SET outcome = %(outcome)s, http_status = 200, message = NULL, "
               "conversion_id = %(conversion_id)s WHERE id = %(pb_id)s")
    merchant = ("SELECT fraud_settings, ip_blocklist, default_hold_days, "
                # whether any offer has tiers or a daily cap (else those counts are left out)
                "EXISTS (SELECT 1 FROM offers o JOIN commission_plans pl ON pl.offer_id = o.id "
                " JOIN plan_tiers t ON t.plan_id = pl.id WHERE o.merchant_id = %(m)s), "
                "EXISTS (SELECT 1 FROM offers WHERE merchant_id = %(m)s AND daily_cap IS NOT NULL) "
                "FROM merchants WHERE id = %(m)s")
    # By id from one table: a day's partition, the default partition or an unpartitioned
    # table (``ClickTables``); whether the click is still within its offer's window is checked
    # afterwards (an expired click: the view answers click_expired).
    click_from_table = (
        "SELECT id, created_at, merchant_id, offer_id, partner_id, ip_hash, ip_truncated, is_bot, "  # noqa: S608 - a table name from pg_class, checked
        "paid_ads_param FROM {table} WHERE id = %(cid)s LIMIT 1")
    click_from_buffer = (
        "SELECT %(cid)s::varchar AS id, %(b_created_at)s::timestamptz AS created_at, "
        "%(b_merchant_id)s::bigint AS merchant_id, %(b_offer_id)s::bigint AS offer_id, "
        "%(b_partner_id)s::bigint AS partner_id, %(b_ip_hash)s::varchar AS ip_hash, "
        "%(b_ip_truncated)s::varchar AS ip_truncated, %(b_is_bot)s::boolean AS is_bot, "
        "%(b_paid_ads_param)s::varchar AS paid_ads_param")
    return {"write": write, "read": read, "click_from_table": click_from_table,
            "click_from_buffer": click_from_buffer, "outcome": outcome,
            "merchant": merchant, "cm_cols": ",".join(cm_cols),
            **{f"count_{k}": v for k, v in counts.items()}}


_SQL: dict[str, str] = {}
_READS: dict[tuple[str | None, bool, bool, bool, bool], str] = {}
_WRITES: dict[tuple[str, ...], str] = {}
_WRITE_TYPES: dict[str, str] = {}
#: Commission columns that, when the engine gives the conversion's own value, are taken
#: from the inserted conversion instead of being sent again.
_FROM_CONVERSION = ("merchant_id", "partner_id", "offer_id", "currency")


def sql() -> dict[str, str]:
    if not _SQL:
        _SQL.update(_build_sql())
    return _SQL


def write_sql(params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The write statement for these values and the parameters it takes: a NULL is written
    as a literal, a commission's merchant, partner, offer and currency when they are the
    conversion's are taken from the inserted row, and an ``updated_at`` equal to its
    ``created_at`` is that parameter again (20 of the 37 values are sent on a common postback).
    The values written are exactly the given ones."""
    template = sql()["write"]  # (fills _WRITE_TYPES on first use)
    fill: dict[str, str] = {}
    sent: dict[str, Any] = {"pb_id": params["pb_id"]}
    for name, value in params.items():
        kind = _WRITE_TYPES.get(name)
        if kind is None:
            continue
        prefix, column = name[:2], name[2:]
        if value is None:
            fill[name] = f"NULL::{kind}"
        elif prefix == "m_" and column in _FROM_CONVERSION and value == params.get(f"v_{column}"):
            fill[name] = f"new_conversion.{column}"
        elif column == "updated_at" and value == params.get(f"{prefix}created_at"):
            fill[name] = f"%({prefix}created_at)s::{kind}"
        else:
            fill[name] = f"%({name})s::{kind}"
            sent[name] = value
    key = tuple(fill.values())
    text = _WRITES.get(key)
    if text is None:
        text = _WRITES[key] = template.format(**fill)
    return text, sent


def read_sql(click_table: str | None, tiers: bool, dup_ip: bool, outlier: bool, cap: bool) -> str:
    """The read statement with the click from ``click_table`` (None: from the click buffer's
    values) and only the counts this postback can need (a left-out count reads NULL, and the
    engine reads that fact itself if it turns out to need it)."""
    key = (click_table, tiers, dup_ip, outlier, cap)
    text = _READS.get(key)
    if text is None:
        if len(_READS) > 1024:  # a statement a day and flag set: months of uptime
            _READS.clear()
        q = sql()
        click = q["click_from_buffer"] if click_table is None else \
            q["click_from_table"].format(table=f'"{_checked_table(click_table)}"')
        text = q["read"].format(
            click=click,
            tiers=q["count_tiers"] if tiers else "NULL::bigint",
            dup_ip=q["count_dup_ip"] if dup_ip else "NULL::bigint",
            outlier=q["count_outlier"] if outlier else "NULL::bigint[]",
            cap=q["count_cap"] if cap else "NULL::bigint",
            offer="LEFT JOIN offers o ON o.id = c.offer_id " if cap else "")
        _READS[key] = text
    return text


_TABLE_NAME = re.compile(r"clicks(_p[0-9]{8}|_default)?")


def _checked_table(name: str) -> str:
    if not _TABLE_NAME.fullmatch(name):
        raise ValueError(f"not a clicks table: {name!r}")
    return name


class ClickTables:
    """Which table a click is read from: the partition of the day its id names.

    Never the partitioned ``clicks`` table itself. The statements here are prepared with a
    generic plan, and a generic plan on a partitioned table prunes partitions only when it
    runs: it still locks every partition and every index of theirs on each execution. With
    the default click retention (395 days, a partition a day) that was 2,866 locks a
    postback (eight at once: more than a default lock table is sized for, 64 × 100
    connections), 0.90 ms of PostgreSQL CPU a new postback instead of 0.64
    (``benchmarks/postback.py``), and every postback waiting while retention dropped an old
    day's partition.

    The names are PostgreSQL's own (``pg_inherits``), loaded on first use and again when a day
    is missing (at most once a ``REFRESH`` seconds): partitions are made days ahead, so a
    day's is known before its first click. A day without a partition has its clicks in the
    default partition; an unpartitioned ``clicks`` is read as it is.
    """

    REFRESH = 60.0

    def __init__(self) -> None:
        self.partitioned = True
        self.names: frozenset[str] | None = None
        self.loaded_at = float("-inf")
        self.lock = threading.Lock()

    def table_for(self, cur: Any, day: datetime) -> str | None:
        """The table holding the clicks of ``day`` (its start), or None: no table can."""
        from partnernet.links import partitions

        name = partitions.partition_name(day.date())
        names = self.names
        if names is None or (name not in names and time.monotonic() - self.loaded_at > self.REFRESH):
            names = self.load(cur)
        if not self.partitioned:
            return partitions.TABLE
        if name in names:
            return name
        return partitions.DEFAULT_PARTITION if partitions.DEFAULT_PARTITION in names else None

    def load(self, cur: Any) -> frozenset[str]:
        # ``links.partitions.existing_partitions``' names, read on this cursor (the fast
        # path's own connection), with whether ``clicks`` is partitioned at all.
        cur.execute("SELECT p.relkind, ARRAY(SELECT c.relname::text FROM pg_inherits i "
                    "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = p.oid) "
                    "FROM pg_class p WHERE p.oid = to_regclass('clicks')")
        row = cur.fetchone()
        with self.lock:
            self.partitioned = row is not None and row[0] == "p"
            self.names = frozenset(n for n in (row[1] if row else ()) if _TABLE_NAME.fullmatch(n))
            self.loaded_at = time.monotonic()
        return self.names

    def forget(self) -> None:
        """A partition named here is gone (retention dropped it): load the names again."""
        self.names = None


# -- the per-thread PostgreSQL connection ----------------------------------------------------

class _Connections:
    """One autocommit psycopg connection per thread, all closed when the app's engine is
    disposed (a thread then connects again on its next postback)."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.local = threading.local()
        self.lock = threading.Lock()
        self.made: set[Any] = set()
        self.click_tables = ClickTables()

    def get(self) -> Any:
        """This thread's cursor (on its connection): one cursor for every statement here,
        not one made per statement (``conn.execute``), which cost ~50 µs of worker CPU each."""
        import psycopg

        conn = getattr(self.local, "conn", None)
        if conn is None or conn.closed:
            # A generic plan is made once per connection and kept until the statistics change.
            # Made while a table is still small (a new install, a postbacks log that has not
            # been analyzed yet) it may scan that table, and keeps scanning it as it grows: the
            # outcome UPDATE by id read every row of the log. Every statement here is a keyed
            # look-up, so sequential scans are off for these connections.
            conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5,
                                   options="-c TimeZone=UTC -c plan_cache_mode=force_generic_plan "
                                           "-c enable_seqscan=off")
            conn.prepare_threshold = 0  # every statement here is prepared on first use
            self.local.conn = conn
            self.local.cursor = conn.cursor()
            with self.lock:
                self.made.add(conn)
        return self.local.cursor

    def discard(self) -> None:
        conn = getattr(self.local, "conn", None)
        self.local.conn = None
        if conn is not None:
            self._close(conn)

    def close_all(self) -> None:
        with self.lock:
            made, self.made = self.made, set()
        for conn in made:
            self._close(conn)

    def _close(self, conn: Any) -> None:
        with self.lock:
            self.made.discard(conn)
        with contextlib.suppress(Exception):  # it is going away anyway
            conn.close()


# -- the WSGI layer ---------------------------------------------------------------------------

_JSON_HEADERS = [
    ("Content-Type", "application/json"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy",
     "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
     "script-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"),
    ("Vary", "Cookie"),
]


class PostbackFastPath:
    """WSGI layer in front of Flask for ``GET /postback`` (see the module's docstring)."""

    def __init__(self, app: Flask, wsgi_app: WSGIApp) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self._pg: _Connections | None = None
        self._limit: tuple[str, Any] | None = None
        self._encoder: tuple[Any, json.JSONEncoder | None] | None = None

    def enabled(self) -> bool:
        config = self.app.config
        return bool(config.get("POSTBACK_FAST_PATH", True) and config.get("REDIS_URL")
                    and config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"))

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/postback" or environ.get("REQUEST_METHOD") != "GET" \
                or not self.enabled():
            return self.wsgi_app(environ, start_response)
        try:
            with self.app.app_context():
                body = self.handle(environ)
        except Handover:
            return self.wsgi_app(environ, start_response)
        except Exception:  # noqa: BLE001 - the view answers (and logs) anything unexpected
            if environ.get(WRITTEN_KEY):
                # The conversion is committed: the view would now call it a duplicate.
                log.exception("postback fast path failed after recording the conversion")
                body = (self.app.json.dumps(error_body(
                    "internal_error", "Something went wrong after the conversion was recorded; "
                    "sending the postback again answers it as a duplicate."),
                    separators=(",", ":")) + "\n").encode()
                start_response("500 INTERNAL SERVER ERROR",
                               [*_JSON_HEADERS, ("Content-Length", str(len(body)))])
                return [body]
            log.exception("postback fast path handed over after an unexpected error")
            if self._pg is not None:
                self._pg.discard()
            return self.wsgi_app(environ, start_response)
        headers = [*_JSON_HEADERS, ("Content-Length", str(len(body)))]
        if self.app.config.get("SESSION_COOKIE_SECURE"):
            headers.append(("Strict-Transport-Security", "max-age=31536000; includeSubDomains"))
        start_response("200 OK", headers)
        return [body]

    # -- steps -------------------------------------------------------------------------

    def connections(self) -> _Connections:
        if self._pg is None:
            from sqlalchemy import event

            from partnernet.extensions import db

            engine = db.engine
            url = engine.url.set(drivername="postgresql")
            pg = _Connections(url.render_as_string(hide_password=False))
            event.listen(engine, "engine_disposed", lambda _engine: pg.close_all())
            self._pg = pg
        return self._pg

    def rate_limit(self, environ: dict[str, Any], query: dict[str, str]) -> tuple[Any, list[str]] | None:
        """The view's Flask-Limiter limit and bucket for this request, or None (limits off)."""
        from limits import parse

        from partnernet.extensions import limiter

        config = self.app.config
        if not config.get("RATELIMIT_ENABLED", True) or not limiter.enabled:
            return None
        limit_text = config["POSTBACK_RATE_LIMIT"]
        if self._limit is None or self._limit[0] != limit_text:
            self._limit = (limit_text, parse(limit_text))
        # views._rate_key, for a GET
        token = query.get("token")
        if token:
            key = "pb:t:" + tokens.hash_secret(token)[:24]
        elif query.get("merchant_id"):
            key = "pb:m:" + query["merchant_id"][:20]
        else:
            key = "pb:ip:" + (environ.get("REMOTE_ADDR") or "")
        args = [key, ENDPOINT]  # the bucket Flask-Limiter uses: [prefix,] key, endpoint
        prefix = getattr(limiter, "_key_prefix", "")
        if prefix:
            args = [prefix, *args]
        return self._limit[1], args

    def _fixed_window_script(self) -> Any:
        """Flask-Limiter's fixed-window counter script on the click path's Redis, or None
        (another strategy or storage: counted through ``limits`` in a round trip of its own)."""
        from limits.storage import RedisStorage
        from limits.strategies import FixedWindowRateLimiter

        from partnernet.extensions import limiter

        strategy = limiter.limiter
        config = self.app.config
        if type(strategy) is FixedWindowRateLimiter and type(strategy.storage) is RedisStorage \
                and config.get("RATELIMIT_STORAGE_URI") == config.get("REDIS_URL"):
            return strategy.storage
        return None

    def handle(self, environ: dict[str, Any]) -> bytes:
        raw_query = environ.get("QUERY_STRING", "")
        if not raw_query.isascii():
            raise Handover
        # request.args.to_dict() (the first value of each name), then the view's _flat
        first: dict[str, str] = {}
        for key, value in parse_qsl(raw_query, keep_blank_values=True, errors="werkzeug.url_quote"):
            first.setdefault(key, value)
        query = {key[:64]: value for key, value in first.items()}
        if "coupon" in query or (query.get("status") or "").strip().lower() == "refunded":
            raise Handover
        source_ip = environ.get("REMOTE_ADDR")
        req = PostbackRequest(method="GET", query=query, body={}, raw_body=b"", raw_query=raw_query,
                              signature=environ.get("HTTP_X_PARTNERNET_SIGNATURE"),
                              source_ip=source_ip)
        now = clock.now()
        try:
            creds, auth_method, params = authenticate(req, now)
            if not source_allowed(list(creds.allowlist), source_ip):
                raise Handover
            event, status, order_id = services._order_key(params)
            currency_given = services._currency(services._param(params, "currency"))
            amount_text = services._param(params, "amount")
            click_id = services._param(params, "click_id")
            if status != "approved" or services._param(params, "coupon") or not click_id:
                raise Handover
            order_id = services._conversion_order_id(event, order_id, click_id)
            email = services._param(params, "customer_email")
            customer_id = services._param(params, "customer_id")
        except (PartnernetError, MoneyError):
            raise Handover from None
        click_id = click_id.lower()
        from partnernet.links.services import CLICK_ID_RE

        if len(click_id) != 32 or not CLICK_ID_RE.fullmatch(click_id):
            raise Handover
        merchant_id = creds.merchant_id

        # -- Redis, one write: the rate limit, the merchant's config version, the click ------
        import redis

        from partnernet.links import buffer

        app = self.app
        if buffer.click_redis(app) is None:
            raise Handover  # Redis is backing off after an error: the view copes
        version_key = terms_cache.version_key(app, merchant_id)
        fresh = terms_cache.new_version()
        commands = [
            [b"SET", version_key, fresh, b"NX", b"GET", b"EX", b"%d" % terms_cache.VERSION_TTL],
            [b"GET", buffer.click_key(click_id).encode()]]
        limit = self.rate_limit(environ, query)
        storage = self._fixed_window_script() if limit is not None else None
        if limit is not None and storage is not None:
            # limits' own fixed-window script (FixedWindowRateLimiter.hit), same key and expiry.
            item, args = limit
            commands.insert(0, [b"EVALSHA", storage.lua_incr_expire.sha.encode(), b"1",
                                storage.prefixed_key(item.key_for(*args)).encode(),
                                b"%d" % item.get_expiry(), b"1"])
            try:
                replies = buffer.run_commands(app, commands)
            except redis.exceptions.NoScriptError:
                # Redis restarted: count through limits (it loads the script), then the rest.
                from partnernet.extensions import limiter

                allowed = limiter.limiter.hit(item, *args)
                replies = [None, *buffer.run_commands(app, commands[1:])]
            else:
                allowed = int(replies[0]) <= item.amount
            replies = replies[1:]
        else:
            allowed = True
            if limit is not None:
                from partnernet.extensions import limiter

                allowed = limiter.limiter.hit(limit[0], *limit[1])
            replies = buffer.run_commands(app, commands)
        if not allowed:
            raise Handover  # the view counts it again (on a full bucket: no change) and 429s
        if limit is not None:
            environ[LIMITED_KEY] = True  # the view must not count it a second time
        version = replies[0] if replies[0] is not None else fresh
        buffered = buffer.decode(replies[1][1:], replies[1][:1]) if replies[1] is not None else None
        cache = terms_cache.cache(app)
        terms = cache.get(merchant_id, version)
        pg = self.connections()
        cur = pg.get()
        if terms is None:
            cur.execute(sql()["merchant"], {"m": merchant_id})
            row = cur.fetchone()
            if row is None:
                raise Handover
            terms = terms_cache.MerchantTerms(version, time.monotonic(), row[0], row[1], row[2],
                                              any_tiers=bool(row[3]), any_cap=bool(row[4]))
            cache.put(merchant_id, terms)
        rules = terms.rules

        # -- PostgreSQL: the raw log (committed first, asynchronously) and the read ---------------
        read_params = {
            "cid": click_id, "m": merchant_id, "e": event, "o": order_id, "at": now,
            "l_params": Json(services.loggable_params(params)),
            "l_source_ip": (source_ip or "")[:64] or None,
            "l_order_id": (params.get("order_id") or "")[:255] or None,
            "l_auth_method": auth_method,
        }
        if buffered is not None:
            for name in ("created_at", "merchant_id", "offer_id", "partner_id", "ip_hash",
                         "ip_truncated", "is_bot", "paid_ads_param"):
                read_params[f"b_{name}"] = buffered.get(name)
            click_table = None
        else:
            # The partition of the day the id names; an id made before ids carried their day
            # names no day or an arbitrary one, is not found there, and the view finds it.
            day = tokens.click_id_day(click_id)
            click_table = pg.click_tables.table_for(cur, day[0]) if day is not None else None
            if click_table is None:
                raise Handover
        statement = read_sql(
            click_table, terms.any_tiers, bool(rules["duplicate_ip"].get("enabled", True)),
            amount_text is not None and bool(rules["amount_outlier"].get("enabled", True)),
            terms.any_cap and bool(rules["cap_exceeded"].get("enabled", True)))
        try:
            cur.execute(statement, read_params)
        except psycopg.errors.UndefinedTable:
            # The day's partition was dropped since its name was loaded (retention: the click,
            # if there was one, is gone with it). Nothing was written: the view answers.
            pg.click_tables.forget()
            raise Handover from None
        row = cur.fetchone()
        postback_id = int(row[0])
        environ[POSTBACK_ID_KEY] = postback_id  # from here on, the view completes this row
        row = row[1:]
        n_cm = len(_CM_COLS)
        existing_id, existing_currency, existing_amount = row[0], row[1], row[2]
        cm_values = row[3:3 + n_cm]
        (c_id, c_created_at, c_merchant_id, c_offer_id, c_partner_id, c_ip_hash, c_ip_truncated,
         c_is_bot, c_paid_ads, p_id, p_email, p_postback_url, ov_id, ov_percent, ov_amount,
         nth_before, same_ip, trailing, today) = row[3 + n_cm:]

        if existing_id is not None:
            existing = SimpleNamespace(id=existing_id, currency=existing_currency,
                                       amount_minor=existing_amount)
            commission = _commission_row(cm_values) if cm_values[0] is not None else None
            try:
                answer = services.duplicate(existing, amount_text, currency_given, commission=commission)
            except (OrderConflict, PartnernetError, MoneyError):
                raise Handover from None
            cur.execute(sql()["outcome"], {"outcome": "duplicate", "conversion_id": existing_id,
                                           "pb_id": postback_id})
            return self._body(answer.body, postback_id)

        # -- attribution by click (other cases: the view) --------------------------------------
        if c_id is None or c_merchant_id != merchant_id or p_id is None:
            raise Handover  # unattributed
        c_created_at = clock.as_utc(c_created_at)
        offer = terms.offers.get(c_offer_id) if c_offer_id in terms.offers else _MISSING
        if offer is _MISSING:
            offer = commissions.load_offer_terms(c_offer_id)
            terms.offers[c_offer_id] = offer
        if offer is None or not within_window(c_created_at, now, offer.attribution_window_days) \
                or offer.attribution_model == "first_click":
            raise Handover  # click_expired, or the visitor's earliest click decides
        plan = next((p for p in offer.plans if p.event == event), None)
        currency = currency_given or offer.currency
        if plan is None or currency != offer.currency:
            raise Handover  # unknown_event, currency_mismatch
        try:
            amount_minor = services._amount(amount_text, currency)
        except (PartnernetError, MoneyError):
            raise Handover from None
        if plan.type == "cps" and amount_minor is None:
            raise Handover  # invalid_amount
        click = SimpleNamespace(id=c_id, created_at=c_created_at, partner_id=c_partner_id,
                                ip_hash=c_ip_hash, ip_truncated=c_ip_truncated, is_bot=c_is_bot,
                                paid_ads_param=c_paid_ads, merchant_id=c_merchant_id)
        values = dict(
            merchant_id=merchant_id, offer_id=offer.id, partner_id=c_partner_id, click_id=c_id,
            coupon_id=None, event=event, order_id=order_id, amount_minor=amount_minor,
            currency=currency, refunded_minor=0, customer_id=customer_id,
            customer_email_hash=services.email_hash(email) if email else None,
            customer_email_domain=email.rpartition("@")[2].lower()[:255] or None if email else None,
            ip_hash=c_ip_hash or None, status="approved", created_at=now, updated_at=now)
        conversion = SimpleNamespace(id=None, **values)
        known = commissions.KnownFacts(
            context=commissions.EngineContext(
                merchant=SimpleNamespace(id=merchant_id, fraud_settings=terms.fraud_settings,
                                         ip_blocklist=terms.ip_blocklist,
                                         default_hold_days=terms.default_hold_days),
                partner=SimpleNamespace(id=p_id, email=p_email, postback_url=p_postback_url),
                override=calc.Rate(ov_percent, ov_amount, "override") if ov_id is not None else None),
            nth_this_month=int(nth_before) + 1 if nth_before is not None else None,
            same_ip_conversions_24h=int(same_ip) if same_ip is not None else None,
            trailing_sample=_sample(trailing) if trailing is not None else None,
            partner_conversions_today=int(today) if today is not None else None)
        commission_values, wants_postbacks = commissions.compute_commission(
            conversion, click, postback_ip=source_ip, offer=offer, known=known)  # type: ignore[arg-type]
        assert commission_values is not None  # the offer has a plan for the event (checked)

        # -- PostgreSQL flight 2: conversion + commission + outcome, one statement --------------
        write = {f"v_{k}": v for k, v in values.items()}
        write.update({f"m_{k}": Json(v) if k == "flags" else v for k, v in commission_values.items()})
        write["pb_id"] = postback_id
        cur.execute(*write_sql(write))
        written = cur.fetchone()
        if written is None:
            # Another request inserted this order between the read and the write: the view
            # answers duplicate (or order_conflict) on the logged row.
            raise Handover
        environ[WRITTEN_KEY] = True
        conversion_id, commission_id = int(written[0]), int(written[1])
        commission = SimpleNamespace(id=commission_id, conversion_id=conversion_id, **commission_values)
        body = self._body({"conversion_id": conversion_id, "status": "accepted", "duplicate": False,
                           "commission": commissions.commission_view(commission)},  # type: ignore[arg-type]
                          postback_id)
        if wants_postbacks:
            outgoing.enqueue_notification(commission_id)
        return body

    def _body(self, body: dict[str, Any], postback_id: int) -> bytes:
        body["postback_id"] = postback_id
        encoder = self._encoder
        if encoder is None or encoder[0] is not self.app.json:
            provider: Any = self.app.json
            # what DefaultJSONProvider.dumps(body, separators=(",", ":")) does (json.dumps),
            # the encoder made once; another provider is asked each time
            made = json.JSONEncoder(
                default=provider.default, ensure_ascii=provider.ensure_ascii,
                sort_keys=provider.sort_keys, separators=(",", ":")) \
                if type(provider).dumps is DefaultJSONProvider.dumps else None
            encoder = self._encoder = (provider, made)
        if encoder[1] is None:
            return (self.app.json.dumps(body, separators=(",", ":")) + "\n").encode()
        return (encoder[1].encode(body) + "\n").encode()


def _sample(counted: list[int | None]) -> tuple[int, Decimal | None]:
    """(count, median) from the read's ``[count, lower middle, upper middle]`` (NULL: none)."""
    count, lower, upper = counted
    assert count is not None  # count(*): never NULL
    if lower is None or upper is None:
        return int(count), None
    return int(count), fraud.middle(lower, upper)


_MISSING: Any = object()
_CM_COLS: list[str] = []


def _commission_row(values: tuple[Any, ...]) -> Any:
    row = SimpleNamespace(**dict(zip(_CM_COLS, values, strict=True)))
    for name in ("hold_until", "reviewed_at", "approved_at", "created_at", "updated_at"):
        if getattr(row, name) is not None:
            setattr(row, name, clock.as_utc(getattr(row, name)))
    return row


def install(app: Flask) -> None:
    """Wrap the app's WSGI callable (inside ProxyFix, so the client address is already fixed)."""
    from werkzeug.middleware.proxy_fix import ProxyFix

    if not _CM_COLS:
        _CM_COLS.extend(sql()["cm_cols"].split(","))
    outer = app.wsgi_app
    if isinstance(outer, ProxyFix):
        outer.app = PostbackFastPath(app, outer.app)
    else:
        app.wsgi_app = PostbackFastPath(app, outer)  # type: ignore[method-assign]

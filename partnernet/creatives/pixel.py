"""Impressions: the pixel's write path, the clicks' buffer generalised (links/streams.py): one
Redis round trip (a Lua script sets the one-day uniqueness key and appends to the stream, run
by EVALSHA on the held per-thread connection the redirect uses), flushed in bulk by a job;
without Redis, or while it is not answering, the impression goes straight to the database.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select

from partnernet import clock, tokens
from partnernet.creatives.models import Impression
from partnernet.extensions import db
from partnernet.links import buffer
from partnernet.links.streams import FLUSH_BATCH, StreamBuffer
from partnernet.links.tracking import LinkTarget, Visit, ip_hash, is_crawler

log = logging.getLogger(__name__)

COLUMNS = ("id", "created_at", "link_id", "merchant_id", "offer_id", "partner_id", "creative_id",
           "ip_hash", "user_agent", "visitor_id", "is_unique", "is_bot")
#: An impression is unique once per link, creative and viewer per day (CPM pays these).
UNIQUE_WINDOW = 24 * 3600

# KEYS: uniqueness key, stream.  ARGV: payload, window, check unique (1/0)
RECORD_IMPRESSION = buffer.Script("""
local uniq = 0
if ARGV[3] == '1' then
  if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then uniq = 1 end
end
redis.call('XADD', KEYS[2], '*', 'c', ARGV[1], 'u', uniq)
return uniq
""")

#: The impressions' stream buffer (``<prefix>impressions:buffer``).
IMPRESSIONS = StreamBuffer("impressions", "impressions", COLUMNS)


def encode(row: dict[str, Any]) -> str:
    return IMPRESSIONS.encode(row)


def decode(payload: bytes | str, unique: bytes | str | int) -> dict[str, Any]:
    return IMPRESSIONS.decode(payload, unique)


def insert_ignore(rows: list[dict[str, Any]]) -> None:
    """INSERT skipping ids already present (flush reruns and the fallback may overlap)."""
    IMPRESSIONS.insert_ignore(rows)


def record_impression(target: LinkTarget, visit: Visit, creative_id: int | None) -> bool:
    """Record one impression (Redis buffer, else the database); returns whether it is unique."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if creative_id not in target.creative_ids:  # not a creative of this offer: the link's view
        creative_id = None
    is_bot = visit.is_head or not visit.user_agent or is_crawler(visit.user_agent)
    hashed = ip_hash(visit.ip, app.config["SECRET_KEY"])
    row: dict[str, Any] = {
        "id": tokens.new_click_id(), "created_at": clock.now(), "link_id": target.link_id,
        "merchant_id": target.merchant_id, "offer_id": target.offer_id,
        "partner_id": target.partner_id, "creative_id": creative_id, "ip_hash": hashed,
        "user_agent": visit.user_agent, "visitor_id": visit.visitor_id, "is_unique": False,
        "is_bot": is_bot,
    }
    viewer = visit.visitor_id or hashlib.sha256(f"{hashed}\x00{visit.user_agent}".encode()).hexdigest()[:24]
    client = buffer.click_redis(app)
    if client is not None:
        prefix = app.config["REDIS_KEY_PREFIX"]
        keys = [f"{prefix}iuq:{target.link_id}:{creative_id or 0}:{viewer}".encode(),
                f"{prefix}impressions:buffer".encode()]
        args = [encode(row).encode(), b"%d" % UNIQUE_WINDOW, b"0" if is_bot else b"1"]
        try:
            return bool(int(buffer.run_script(app, RECORD_IMPRESSION, keys, args)))
        except buffer.redis_errors() as exc:
            log.warning("Redis not answering (%s); impressions go to the database", exc.__class__.__name__)
            buffer.mark_redis_down(app)
    return write_impression_to_database(row, viewer_visitor=visit.visitor_id, check_unique=not is_bot)


def write_impression_to_database(row: dict[str, Any], viewer_visitor: str | None, check_unique: bool) -> bool:
    """The fallback path: uniqueness by query, insert, commit."""
    unique = False
    if check_unique:
        since = row["created_at"] - timedelta(seconds=UNIQUE_WINDOW)
        stmt = select(Impression.id).where(
            Impression.link_id == row["link_id"],
            Impression.creative_id.is_not_distinct_from(row["creative_id"]),
            Impression.is_unique.is_(True), Impression.created_at > since)
        if viewer_visitor:
            stmt = stmt.where(Impression.visitor_id == viewer_visitor)
        else:
            stmt = stmt.where(Impression.ip_hash.is_not_distinct_from(row["ip_hash"]),
                              Impression.user_agent.is_not_distinct_from(row["user_agent"]))
        unique = db.session.scalar(stmt.limit(1)) is None
    row["is_unique"] = unique
    insert_ignore([row])
    db.session.commit()
    return unique


def flush_impressions(batch_size: int = FLUSH_BATCH, max_batches: int = 40) -> dict[str, Any]:
    """Move buffered impressions into the database; entries leave the stream only after commit."""
    client = buffer.click_redis()
    if client is None:
        return {"flushed": 0, "buffer": None}
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return IMPRESSIONS.flush(client, lambda commands: buffer.run_commands(app, commands), batch_size,
                             max_batches)

"""The click write path: Redis buffer, bulk flush, crash-safe reruns, the database fallback
when Redis stops answering, and daily partitions on PostgreSQL."""

import json
import shutil
import socket
import subprocess
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from sqlalchemy import event, func, select, text

from partnernet import clock
from partnernet.extensions import db
from partnernet.links import buffer, partitions, services
from partnernet.links.models import Click
from tests.factories import make_merchant, make_offer, make_partner

UA = "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0"


def make_link():
    shop = make_merchant()
    partner = make_partner(shop.merchant.id)
    offer = make_offer(shop.merchant.id)
    return services.create_link(shop.merchant.id, {"offer_id": offer.id, "partner_id": partner.id})


def hit(client, code, ip="192.0.2.10"):
    r = client.get(f"/r/{code}", headers={"User-Agent": UA}, environ_base={"REMOTE_ADDR": ip})
    assert r.status_code == 302
    return parse_qs(urlsplit(r.headers["Location"]).query)["click_id"][0]


def stored_count():
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(Click))


@pytest.fixture
def needs_redis(redis_url):
    if not redis_url:
        pytest.skip("needs REDIS_URL")


class StatementCounter:
    def __init__(self, engine):
        self.engine, self.statements = engine, []

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._on)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._on)

    def _on(self, conn, cursor, statement, *args):
        self.statements.append(statement)


def test_cached_redirect_runs_no_sql(app, client, needs_redis):
    code = make_link().code
    hit(client, code)  # first one loads the link into the caches
    with StatementCounter(db.engine) as counter:
        ids = [hit(client, code, ip=f"192.0.2.{i}") for i in range(20)]
    assert counter.statements == []
    assert buffer.buffer_length() == 21 and stored_count() == 0
    assert buffer.flush_clicks()["flushed"] == 21
    assert stored_count() == 21 and buffer.buffer_length() == 0
    assert set(ids) <= {c.id for c in db.session.scalars(select(Click))}


def test_link_cached_in_redis_serves_another_process_without_sql(app, app_factory, redis_url,
                                                                 needs_redis):
    code = make_link().code
    hit(app.test_client(), code)  # fills Redis (and this app's LRU)
    other = app_factory(redis_url)  # another process: its own empty LRU, the same Redis
    other.config["REDIS_KEY_PREFIX"] = app.config["REDIS_KEY_PREFIX"]
    with other.app_context():
        with StatementCounter(db.engine) as counter:
            hit(other.test_client(), code)
        assert counter.statements == []
    assert buffer.buffer_length() == 2
    db.session.remove()  # no open transaction while the other app's cleanup truncates


def test_rerun_after_a_flush_died_half_way_inserts_nothing_twice(app, client, needs_redis):
    link = make_link()
    ids = {hit(client, link.code, ip=f"198.51.100.{i}") for i in range(30)}
    # A flush that stored the first batch then died before deleting it from the stream:
    conn = buffer.click_redis()
    entries = conn.xrange(buffer.stream_key(), count=20)
    assert buffer._store_batch([buffer.decode(f[b"c"], f[b"u"]) for _, f in entries]) == []
    assert stored_count() == 20
    result = buffer.flush_clicks(batch_size=7)
    assert result == {"flushed": 30, "refused": 0}
    assert stored_count() == 30 and buffer.buffer_length() == 0
    assert {c.id for c in db.session.scalars(select(Click))} == ids
    assert buffer.flush_clicks() == {"flushed": 0, "refused": 0}
    # Flushed clicks resolve from the database now.
    some = next(iter(ids))
    assert services.resolve_click(some).id == some


@pytest.mark.parametrize("workers", [1, 2])
def test_a_flush_whose_redis_read_breaks_mid_batch_loses_and_doubles_nothing(app, client, needs_redis,
                                                                              monkeypatch, workers):
    """The next batch is read while the current one is COPYed: if that read fails, the
    current batch is committed but still in the stream; the next flush finishes the job."""
    import redis

    app.config["FLUSH_WORKERS"] = workers
    link = make_link()
    ids = {hit(client, link.code, ip=f"198.51.100.{i}") for i in range(40)}
    real_read = buffer.Pipe.read
    calls = []

    def broken_read(self):
        calls.append(1)
        if len(calls) == 1:
            self.abort()
            raise redis.exceptions.ConnectionError("connection reset")
        return real_read(self)

    monkeypatch.setattr(buffer.Pipe, "read", broken_read)
    with pytest.raises(redis.exceptions.ConnectionError):
        buffer.flush_clicks(batch_size=10)
    assert stored_count() == 10 and buffer.buffer_length() == 40  # committed, not yet trimmed
    assert buffer.flush_clicks(batch_size=10) == {"flushed": 40, "refused": 0}
    assert stored_count() == 40 and buffer.buffer_length() == 0
    assert {c.id for c in db.session.scalars(select(Click))} == ids


def test_only_one_flush_runs_at_a_time(app, client, needs_redis):
    link = make_link()
    hit(client, link.code)
    conn = buffer.click_redis()
    conn.set(f"{app.config['REDIS_KEY_PREFIX']}clicks:flush-lock", "someone-else", ex=30)
    assert buffer.flush_clicks()["flushed"] == 0 and buffer.buffer_length() == 1
    conn.delete(f"{app.config['REDIS_KEY_PREFIX']}clicks:flush-lock")
    assert buffer.flush_clicks()["flushed"] == 1


def test_a_row_the_database_refuses_goes_to_dead_letters_not_blocking_others(app, client,
                                                                             needs_redis):
    link = make_link()
    good = [hit(client, link.code) for _ in range(3)]
    # A row no database accepts (no link id: NOT NULL), e.g. written by an older release.
    bad = buffer.decode(buffer.encode({
        "id": "f" * 32, "created_at": clock.now(), "link_id": None, "merchant_id": link.merchant_id,
        "offer_id": link.offer_id, "partner_id": link.partner_id}), "0")
    buffer.click_redis().xadd(buffer.stream_key(), {"c": buffer.encode(bad), "u": "0"})
    result = buffer.flush_clicks()
    assert result == {"flushed": 3, "refused": 1}
    assert {c.id for c in db.session.scalars(select(Click))} == set(good)
    dead = buffer.click_redis().xrange(f"{app.config['REDIS_KEY_PREFIX']}clicks:dead")
    assert len(dead) == 1 and b"f" * 32 in dead[0][1][b"c"]
    assert buffer.buffer_length() == 0


def test_flush_job_from_the_cli(app, client, needs_redis):
    import json

    link = make_link()
    for _ in range(4):
        hit(client, link.code)
    out = app.test_cli_runner().invoke(args=["jobs", "run", "flush-clicks"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["result"]["flushed"] == 4
    assert stored_count() == 4


def test_without_redis_each_click_is_written_at_once(app_factory):
    app = app_factory(None)
    with app.app_context():
        link = make_link()
        click_id = hit(app.test_client(), link.code)
        assert stored_count() == 1
        assert services.resolve_click(click_id).link_id == link.id
        assert buffer.flush_clicks() == {"flushed": 0, "buffer": None}


def test_uniqueness_window_is_one_hour_on_the_database_path(app_factory):
    app = app_factory(None)
    with app.app_context():
        link = make_link()
        client = app.test_client()
        start = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
        for minutes in (0, 59, 61, 121):
            clock.freeze(start + timedelta(minutes=minutes))
            hit(client, link.code)
        flags = [c.is_unique for c in db.session.scalars(select(Click).order_by(Click.created_at))]
        assert flags == [True, False, True, True]


def test_database_path_uniqueness_is_per_link_and_address(app_factory):
    app = app_factory(None)
    with app.app_context():
        link, other = make_link(), make_link()
        client = app.test_client()
        clock.freeze(datetime(2030, 3, 1, 9, 0, tzinfo=UTC))
        first = hit(client, link.code, ip="203.0.113.7")
        neighbour = hit(client, link.code, ip="203.0.113.8")  # same /24, another address
        elsewhere = hit(client, other.code, ip="203.0.113.7")
        again = hit(client, link.code, ip="203.0.113.7")
        no_address = [hit(client, link.code, ip="") for _ in range(2)]
        clicks = {c.id: c for c in db.session.scalars(select(Click))}
        assert [clicks[i].ip_hash for i in no_address] == [None, None]
        flags = {i: c.is_unique for i, c in clicks.items()}
        assert [flags[i] for i in (first, neighbour, elsewhere, again)] == [True, True, True, False]
        assert [flags[i] for i in no_address] == [True, False]


# -- Redis stops answering ------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """A redis-server of this test only (AOF on), so it can be stopped and started again."""

    def __init__(self, tmp_path):
        self.port, self.dir, self.proc = free_port(), tmp_path, None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        for _ in range(100):
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.2).ping()
                return
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("private redis did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: redis fsyncs its AOF and exits
            self.proc.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed")
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def test_redis_outage_mid_run_loses_no_click(private_redis, app_factory):
    app = app_factory(private_redis.url, CLICK_REDIS_BACKOFF_SECONDS=0.2)
    with app.app_context():
        link = make_link()
        client = app.test_client()
        before = {hit(client, link.code, ip=f"10.0.0.{i}") for i in range(10)}
        assert buffer.buffer_length() == 10 and stored_count() == 0
        private_redis.stop()
        during = {hit(client, link.code, ip=f"10.0.1.{i}") for i in range(10)}
        assert stored_count() == 10  # written straight to the database
        assert all(services.resolve_click(i) is not None for i in during)
        private_redis.start()  # comes back with its AOF: the buffered clicks are still there
        time.sleep(0.3)
        after = {hit(client, link.code, ip=f"10.0.2.{i}") for i in range(5)}
        assert buffer.flush_clicks()["flushed"] == 15
        stored = {c.id for c in db.session.scalars(select(Click))}
        assert stored == before | during | after


def test_flush_after_a_redis_restart_reconnects(private_redis, app_factory):
    """The flush's held connection dies with Redis; the next flush opens a new one."""
    app = app_factory(private_redis.url, CLICK_REDIS_BACKOFF_SECONDS=0.2)
    with app.app_context():
        link = make_link()
        client = app.test_client()
        first = hit(client, link.code)
        assert buffer.flush_clicks()["flushed"] == 1  # this thread now holds a connection
        private_redis.stop()
        private_redis.start()
        assert buffer.flush_clicks() == {"flushed": 0, "refused": 0}  # not a ConnectionError
        buffered = [hit(client, link.code, ip=f"10.0.3.{i}") for i in range(3)]
        assert buffer.flush_clicks() == {"flushed": 3, "refused": 0}
        stored = {c.id for c in db.session.scalars(select(Click))}
        assert stored == {first, *buffered}


def test_redis_never_there_still_redirects(app_factory):
    app = app_factory(None)
    app.config["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with app.app_context():
        link = make_link()
        ids = [hit(app.test_client(), link.code) for _ in range(3)]
        assert stored_count() == 3
        assert services.resolve_click(ids[0]) is not None
        app.config["REDIS_URL"] = None  # so the fixture's cleanup does not try it


# -- partitions (PostgreSQL) ----------------------------------------------------------------

@pytest.fixture
def needs_postgres(pg_url):
    if not pg_url:
        pytest.skip("needs PostgreSQL")


def partition_of(click_id):
    return db.session.scalar(text("SELECT tableoid::regclass::text FROM clicks WHERE id = :i"),
                             {"i": click_id})


def test_clicks_land_in_their_day_partition(app, client, needs_postgres):
    today = clock.now().date()
    names = partitions.existing_partitions(db.session.connection())
    assert partitions.partition_name(today) in names and "clicks_default" in names
    assert partitions.partition_name(today + timedelta(days=partitions.DAYS_AHEAD)) in names
    link = make_link()
    click_id = hit(client, link.code)
    buffer.flush_clicks()
    assert partition_of(click_id) == partitions.partition_name(clock.now().date())


def test_a_day_without_partition_goes_to_default_then_moves_to_its_own(app, client, needs_postgres):
    link = make_link()
    far = datetime(2031, 7, 4, 15, 0, tzinfo=UTC)
    clock.freeze(far)
    click_id = hit(client, link.code)
    buffer.flush_clicks()
    assert partition_of(click_id) == "clicks_default"
    result = partitions.maintain(far)
    assert "clicks_p20310704" in result["created"]
    assert partition_of(click_id) == "clicks_p20310704"
    assert services.resolve_click(click_id).id == click_id
    db.session.rollback()


def test_retention_drops_old_partitions_and_each_merchants_old_rows(app, needs_postgres):
    from partnernet.accounts.models import Merchant

    now = datetime(2031, 9, 1, 12, 0, tzinfo=UTC)
    short, long_ = make_link(), make_link()
    db.session.get(Merchant, short.merchant_id).click_retention_days = 30
    db.session.get(Merchant, long_.merchant_id).click_retention_days = 90
    db.session.commit()
    rows = []
    for link, days_ago in ((short, 100), (short, 40), (short, 5), (long_, 40), (long_, 5)):
        rows.append({"id": f"{len(rows):032x}", "created_at": now - timedelta(days=days_ago),
                     "link_id": link.id, "merchant_id": link.merchant_id, "offer_id": link.offer_id,
                     "partner_id": link.partner_id, "is_unique": True, "is_bot": False})
    conn = db.session.connection()
    partitions.create_day_partition(conn, (now - timedelta(days=100)).date())
    buffer.insert_ignore(rows)
    db.session.commit()
    result = partitions.maintain(now)
    assert result["dropped"] == [partitions.partition_name((now - timedelta(days=100)).date())]
    kept = {(c.merchant_id, (now - c.created_at).days) for c in db.session.scalars(select(Click))}
    assert kept == {(short.merchant_id, 5), (long_.merchant_id, 40), (long_.merchant_id, 5)}
    assert partitions.maintain(now)["dropped"] == []  # idempotent
    partitions.install_partitions(db.engine)  # today's partitions back for the tests that follow


def test_retention_on_a_plain_table_deletes_rows(app):
    if db.engine.dialect.name == "postgresql":
        pytest.skip("SQLite path")
    link = make_link()
    now = clock.now()
    buffer.insert_ignore([{"id": f"{i:032x}", "created_at": now - timedelta(days=d), "link_id": link.id,
                           "merchant_id": link.merchant_id, "offer_id": link.offer_id,
                           "partner_id": link.partner_id, "is_unique": True, "is_bot": False}
                          for i, d in enumerate((500, 10))])
    db.session.commit()
    assert partitions.maintain(now)["deleted_rows"] == 1
    assert stored_count() == 1


def test_retention_deletes_shorter_retentions_in_batches_and_keeps_the_rest(app):
    """Both databases: the partitions stay (the longest retention still wants them), the
    short-retention merchant's old rows go in batches, nobody else's rows are touched."""
    from partnernet.accounts.models import Merchant

    now = datetime(2031, 9, 1, 12, 0, tzinfo=UTC)
    short, same, long_ = make_link(), make_link(), make_link()
    for link, days in ((short, 7), (same, 7), (long_, 400)):
        db.session.get(Merchant, link.merchant_id).click_retention_days = days
    db.session.commit()
    rows = []
    for link, ages in ((short, (1, 6, 8, 9, 20, 30, 31)), (same, (2, 8)), (long_, (8, 30, 399))):
        for age in ages:
            rows.append({"id": f"{len(rows):032x}", "created_at": now - timedelta(days=age, hours=1),
                         "link_id": link.id, "merchant_id": link.merchant_id, "offer_id": link.offer_id,
                         "partner_id": link.partner_id, "is_unique": True, "is_bot": False})
    buffer.insert_ignore(rows)
    db.session.commit()
    result = partitions.maintain(now, batch_size=2)
    assert result["deleted_rows"] == 6
    # Only day partitions past the longest retention (400 days) may go (PostgreSQL).
    assert all(name < partitions.partition_name((now - timedelta(days=400)).date())
               for name in result["dropped"])
    kept = sorted((c.merchant_id, (now - c.created_at).days) for c in db.session.scalars(select(Click)))
    assert kept == sorted([(short.merchant_id, 1), (short.merchant_id, 6), (same.merchant_id, 2),
                           (long_.merchant_id, 8), (long_.merchant_id, 30), (long_.merchant_id, 399)])
    assert partitions.maintain(now, batch_size=2)["deleted_rows"] == 0
    if db.engine.dialect.name == "postgresql":
        db.session.rollback()
        partitions.install_partitions(db.engine)


def test_listing_the_partitions_does_not_wait_for_a_locked_one(app, needs_postgres):
    """The maintenance job lists the partitions before it makes or drops any: reading each
    partition's bound (pg_get_expr) took a lock on each, so the listing waited behind any
    partition held exclusively (another job dropping it, an ALTER)."""
    yesterday = partitions.partition_name(clock.now().date() - timedelta(days=1))
    with db.engine.connect() as holder, db.engine.connect() as conn:
        holder.execute(text(f'LOCK TABLE "{yesterday}" IN ACCESS EXCLUSIVE MODE'))
        conn.execute(text("SET lock_timeout = '2s'"))
        names = partitions.existing_partitions(conn)
        conn.rollback()
        holder.rollback()
    assert yesterday in names and partitions.DEFAULT_PARTITION in names


def test_installer_is_idempotent(app, needs_postgres):
    partitions.install_partitions(db.engine)
    with db.engine.connect() as conn:
        first = partitions.existing_partitions(conn)
    partitions.install_partitions(db.engine)
    with db.engine.connect() as conn:
        again = partitions.existing_partitions(conn)
    today = clock.now().date()
    wanted = {partitions.partition_name(today + timedelta(days=d))
              for d in range(-1, partitions.DAYS_AHEAD + 1)}
    assert wanted <= set(first) and first == again


# -- split tests, creatives and cookieless mode on the cached path ----------------------------

def split_test_link(cookieless=False):
    """A link whose offer runs a two-way split test and has a creative; the merchant's mode set."""
    from partnernet.accounts.models import Merchant
    from partnernet.creatives import services as creatives

    link = make_link()
    creatives.set_variants(link.merchant_id, link.offer_id, [
        {"name": "A", "url": "https://shop.example/a", "weight": 1},
        {"name": "B", "url": "https://shop.example/b", "weight": 1}])
    creative = creatives.create_creative(link.merchant_id, link.offer_id,
                                         {"kind": "text_link", "name": "CTA", "body": "Shop"})
    db.session.get(Merchant, link.merchant_id).cookieless = cookieless
    db.session.commit()
    return link, creative.id


@pytest.mark.parametrize("cookieless", [False, True])
def test_cached_redirect_with_split_test_and_creative_runs_no_sql(app, client, needs_redis, cookieless):
    link, creative_id = split_test_link(cookieless)
    hit(client, link.code)  # loads link, variants, creatives and mode into the caches
    paths = set()
    with StatementCounter(db.engine) as counter:
        for i in range(20):
            client.set_cookie("pn_vid", f"visitor{i:02d}-abcdefghijkl")
            r = client.get(f"/r/{link.code}?cr={creative_id}", headers={"User-Agent": UA},
                           environ_base={"REMOTE_ADDR": f"192.0.2.{i}"})
            assert r.status_code == 302
            assert ("Set-Cookie" in r.headers) is not cookieless
            paths.add(urlsplit(r.headers["Location"]).path)
    assert counter.statements == []
    assert paths == {"/a", "/b"}
    assert buffer.flush_clicks()["flushed"] == 21
    clicks = list(db.session.scalars(select(Click)))
    assert sum(c.creative_id == creative_id for c in clicks) == 20
    assert all(c.variant_id is not None for c in clicks)
    assert all((c.visitor_id is None) is cookieless for c in clicks)


def test_a_variant_change_leaves_no_stale_entry_in_redis_for_other_processes(app, app_factory, redis_url,
                                                                             needs_redis):
    from partnernet.creatives import services as creatives

    link = make_link()
    hit(app.test_client(), link.code)  # Redis holds the target without a split test
    creatives.set_variants(link.merchant_id, link.offer_id, [
        {"name": "A", "url": "https://shop.example/a", "weight": 1},
        {"name": "B", "url": "https://shop.example/b", "weight": 1}])
    other = app_factory(redis_url)  # another process: empty LRU, the same Redis
    other.config["REDIS_KEY_PREFIX"] = app.config["REDIS_KEY_PREFIX"]
    with other.app_context():
        client = other.test_client()
        paths = set()
        for i in range(10):
            client.set_cookie("pn_vid", f"visitor{i:02d}-abcdefghijkl")
            r = client.get(f"/r/{link.code}", headers={"User-Agent": UA})
            paths.add(urlsplit(r.headers["Location"]).path)
        assert paths == {"/a", "/b"}
        db.session.remove()
    db.session.remove()


def test_entries_buffered_by_the_previous_release_still_flush(app, client, needs_redis):
    """Two older formats: the JSON array (before packed lines) and a packed line from before
    variant_id/creative_id were added. Both flush, their new columns NULL."""
    link = make_link()
    new_id = hit(client, link.code)
    base = {"created_at": clock.now(), "link_id": link.id, "merchant_id": link.merchant_id,
            "offer_id": link.offer_id, "partner_id": link.partner_id, "is_bot": False,
            "variant_id": 5, "creative_id": 6}
    old_columns = len(buffer.COLUMNS) - 2  # before variant_id and creative_id
    json_payload = json.dumps(json.loads(buffer.CLICKS.encode_json({**base, "id": "e" * 32}))[:old_columns])
    packed = buffer.encode({**base, "id": "d" * 32}).rsplit("\t", 2)[0]
    for payload in (json_payload, packed):
        buffer.click_redis().xadd(buffer.stream_key(), {"c": payload, "u": "1"})
    assert buffer.flush_clicks() == {"flushed": 3, "refused": 0}
    stored = {c.id: c for c in db.session.scalars(select(Click))}
    assert set(stored) == {new_id, "e" * 32, "d" * 32}
    for old in ("e" * 32, "d" * 32):
        assert stored[old].variant_id is None and stored[old].creative_id is None
        assert stored[old].is_unique and stored[old].link_id == link.id


AWKWARD = ["tab\there", "new\nline\r", "back\\slash", "\\N", "N", "ünïcødé ✓", "quote\"'", "a,b;c"]


def test_packed_lines_round_trip_awkward_text(app):
    row = {"id": "c" * 32, "created_at": clock.now(), "link_id": 1, "merchant_id": 2, "offer_id": 3,
           "partner_id": 4, "user_agent": AWKWARD[0], "referer": AWKWARD[1], "sub1": AWKWARD[2],
           "sub2": AWKWARD[3], "sub3": AWKWARD[4], "sub4": AWKWARD[5], "sub5": AWKWARD[6],
           "visitor_id": None, "is_bot": True, "paid_ads_param": AWKWARD[7], "creative_id": 9}
    back = buffer.decode(buffer.encode(row), b"0")
    assert back == {**{c: None for c in buffer.COLUMNS}, **row, "is_unique": False}


def test_awkward_text_survives_the_flush(app, client, needs_redis):
    link = make_link()
    r = client.get(f"/r/{link.code}?" + "&".join(f"sub{i + 1}={quote(v)}" for i, v in enumerate(AWKWARD[:5])),
                   headers={"User-Agent": UA + AWKWARD[5], "Referer": "https://x.example/" + AWKWARD[0]})
    assert r.status_code == 302
    assert buffer.flush_clicks()["flushed"] == 1
    click = db.session.scalars(select(Click)).one()
    assert [click.sub1, click.sub2, click.sub3, click.sub4, click.sub5] == AWKWARD[:5]
    assert click.user_agent == UA + AWKWARD[5] and click.referer == "https://x.example/" + AWKWARD[0]


# -- the parallel flush (PostgreSQL: several connections COPY at once) -----------------------

class BatchFails:
    """``CLICKS.store_entries`` for the flush's workers: the first two batches wait for
    each other (so they are stored at the same time, on two connections), and the batch that
    starts with ``failing`` raises as a lost database connection would."""

    def __init__(self, failing):
        import threading

        self.real = buffer.CLICKS.store_entries
        self.failing = failing.encode()
        self.both_in = threading.Barrier(2, timeout=20)
        self.lock = threading.Lock()
        self.calls = 0

    def __call__(self, entries):
        with self.lock:
            self.calls += 1
            first_two = self.calls <= 2
        if first_two:
            self.both_in.wait()  # raises BrokenBarrierError if the batches are not concurrent
        if entries[0][0].startswith(self.failing):
            raise RuntimeError("server closed the connection unexpectedly")
        return self.real(entries)


def stored_ids():
    db.session.rollback()
    return [c for (c,) in db.session.execute(select(Click.id))]


@pytest.mark.parametrize("failing_batch", [0, 1])
def test_two_workers_one_batch_fails_nothing_lost_nothing_doubled(app, client, needs_redis, needs_postgres,
                                                                  monkeypatch, failing_batch):
    """Two batches COPYed at once on two connections, one fails: the other stays committed, the
    stream keeps every entry from the first uncommitted batch on (a committed batch before it
    leaves), every click still resolves, and the rerun stores each click exactly once."""
    app.config["FLUSH_WORKERS"] = 2
    link = make_link()
    ids = [hit(client, link.code, ip=f"198.51.100.{i}") for i in range(40)]
    batches = [ids[:10], ids[10:20], ids[20:30], ids[30:]]
    failing = BatchFails(batches[failing_batch][0])
    monkeypatch.setattr(buffer.CLICKS, "store_entries", failing)
    with pytest.raises(RuntimeError, match="closed the connection"):
        buffer.flush_clicks(batch_size=10)
    stored = stored_ids()
    committed = batches[1 - failing_batch]  # the other of the two concurrent batches
    assert set(committed) <= set(stored) and not set(batches[failing_batch]) & set(stored)
    assert len(stored) == len(set(stored)) and set(stored) <= set(ids)  # later ones: maybe, once
    # Trimmed: only what comes before the failed batch.
    assert buffer.buffer_length() == 40 - 10 * failing_batch
    assert all(services.resolve_click(i) is not None for i in ids)
    monkeypatch.undo()
    assert buffer.flush_clicks(batch_size=10) == {"flushed": 40 - 10 * failing_batch, "refused": 0}
    assert sorted(stored_ids()) == sorted(ids) and buffer.buffer_length() == 0


def test_two_workers_a_refused_row_is_dead_lettered_once(app, client, needs_redis, needs_postgres):
    """A refused row in one of several batches stored at once: dead-lettered once, the rest
    stored, the stream emptied."""
    app.config["FLUSH_WORKERS"] = 2
    link = make_link()
    good = [hit(client, link.code, ip=f"198.51.100.{i}") for i in range(12)]
    bad = buffer.decode(buffer.encode({
        "id": "f" * 32, "created_at": clock.now(), "link_id": None, "merchant_id": link.merchant_id,
        "offer_id": link.offer_id, "partner_id": link.partner_id}), "0")
    buffer.click_redis().xadd(buffer.stream_key(), {"c": buffer.encode(bad), "u": "0"})
    good += [hit(client, link.code, ip=f"198.51.101.{i}") for i in range(12)]
    assert buffer.flush_clicks(batch_size=5) == {"flushed": 24, "refused": 1}
    assert sorted(stored_ids()) == sorted(good) and buffer.buffer_length() == 0
    dead = buffer.click_redis().xrange(f"{app.config['REDIS_KEY_PREFIX']}clicks:dead")
    assert len(dead) == 1 and b"f" * 32 in dead[0][1][b"c"]

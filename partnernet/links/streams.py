"""A Redis stream buffer of rows for one table, flushed into the database in bulk.

Used by the clicks (``links.buffer``) and the impressions (``creatives.pixel``). A row is
appended to the stream already packed as a line of PostgreSQL's COPY text format (every column
but ``is_unique``, which the Redis script decides and stores beside it), so the flush does no
per-row decoding: it glues each line to its ``is_unique`` and hands the batch to ``COPY`` as
one buffer. ``COPY`` goes into a staging table + ``INSERT ... ON CONFLICT DO NOTHING`` only when
a rerun meets ids already there; other databases get executemany of the decoded rows. On
PostgreSQL several connections (``FLUSH_WORKERS``, one thread each) COPY different batches at
once. The stream is trimmed only after the commit (with several connections: of every batch
up to the trimmed id), so a flush that dies half way and is run again inserts nothing twice.
Rows the database refuses go to a dead-letter stream instead of blocking the buffer. Entries
of the earlier JSON format still decode.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import logging
import queue
import re
import secrets
import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime
from itertools import chain
from typing import Any

from flask import current_app
from sqlalchemy import Table, insert
from sqlalchemy.exc import DataError, IntegrityError

from partnernet.extensions import db

log = logging.getLogger(__name__)

#: Buffered entries as (payload, is_unique flag).
_Entries = list[tuple[bytes, bytes]]

FLUSH_BATCH = 10_000
FLUSH_MAX_BATCHES = 40
LOCK_SECONDS = 120
#: Threads (PostgreSQL connections) storing batches at once on PostgreSQL.
FLUSH_WORKERS = 2


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": ""})
#: A character ``_COPY_ESCAPES`` changes: most text has none, and a regex search finds that out
#: in a fraction of what ``str.translate`` with a mapping costs (3.1 vs 0.5 us for a browser's
#: user agent).
_COPY_SPECIAL = re.compile(r"[\\\t\n\r\x00]")
#: The end of a COPY line: the ``is_unique`` flag of the entry.
_IS_UNIQUE = {b"1": b"\tt\n", b"0": b"\tf\n"}
_COPY_UNESCAPE = re.compile(r"\\(.)")
_UNESCAPED = {"t": "\t", "n": "\n", "r": "\r"}


def _unescape(match: re.Match[str]) -> str:
    return _UNESCAPED.get(match.group(1), match.group(1))


def _copy_text(value: Any) -> str:
    """One field in PostgreSQL's COPY text format (https://www.postgresql.org/docs/current/sql-copy.html)."""
    if value is None:
        return "\\N"
    kind = type(value)
    if kind is str:
        return value.translate(_COPY_ESCAPES) if _COPY_SPECIAL.search(value) else value  # type: ignore[no-any-return]
    if kind is bool:
        return "t" if value else "f"
    if kind is int:
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value).translate(_COPY_ESCAPES)


class StreamBuffer:
    """The stream ``<prefix><name>:buffer`` of rows of ``table_name`` with ``columns``.

    ``columns`` may only grow at the end: entries buffered before a column was added decode
    with NULL in it.
    """

    def __init__(self, name: str, table_name: str, columns: tuple[str, ...],
                 after_batch: Callable[[list[tuple[bytes, bytes]]], list[list[bytes]]] | None = None,
                 ) -> None:
        self.name = name
        self.table_name = table_name
        self.columns = columns
        #: Given the batch's (payload, is_unique) entries once stored: more Redis commands to run
        #: with the trim (extra cleanup).
        self.after_batch = after_batch
        self._created = columns.index("created_at")
        self._unique = columns.index("is_unique")
        self._fields = len(columns) - 1  # fields of a packed line
        self._packed = tuple(c for c in columns if c != "is_unique")
        self._converters_cache: list[Callable[[str], Any]] | None = None

    @property
    def table(self) -> Table:
        return db.metadata.tables[self.table_name]

    def key(self, suffix: str = "buffer") -> str:
        return f"{current_app.config['REDIS_KEY_PREFIX']}{self.name}:{suffix}"

    # -- encoding --------------------------------------------------------------------------

    @property
    def copy_columns(self) -> tuple[str, ...]:
        """The columns of a packed line, then ``is_unique`` (COPY's column list in this order)."""
        return (*(c for c in self.columns if c != "is_unique"), "is_unique")

    def encode(self, row: dict[str, Any]) -> str:
        """A row packed for the stream: one COPY text line without ``is_unique`` and newline."""
        return "\t".join([_copy_text(row.get(c)) for c in self._packed])

    def encode_json(self, row: dict[str, Any]) -> str:
        """A row as the earlier JSON format (dead letters keep it: readable by people)."""
        values = [row.get(c) for c in self.columns]
        values[self._created] = row["created_at"].isoformat()
        return json.dumps(values, separators=(",", ":"))

    def _converters(self) -> list[Callable[[str], Any]]:
        """Text → value for each field of a packed line, from the table's column types."""
        convert: list[Callable[[str], Any]] = []
        for name in self.copy_columns[:-1]:
            try:
                kind = self.table.c[name].type.python_type
            except NotImplementedError:  # pragma: no cover - every column here names one
                kind = str
            if kind is bool:
                convert.append(lambda text: text == "t")
            elif kind is int:
                convert.append(int)
            elif kind is str:
                convert.append(str)
            else:  # the timestamps (UTCDateTime)
                convert.append(datetime.fromisoformat)
        return convert

    def values(self, payload: bytes | str, unique: bytes | str | int) -> list[Any]:
        """A buffered payload as the row's values in ``columns`` order."""
        if isinstance(payload, bytes):
            payload = payload.decode()
        flag = unique in (b"1", "1", 1)
        if payload.startswith("["):  # the earlier JSON format
            values = json.loads(payload)
            if len(values) < len(self.columns):
                values += [None] * (len(self.columns) - len(values))
            values[self._created] = datetime.fromisoformat(values[self._created])
            values[self._unique] = flag
            return values  # type: ignore[no-any-return]
        convert = self._converters_cache or self._build_converters()
        fields = payload.split("\t")
        fields += ["\\N"] * (len(convert) - len(fields))  # older lines: columns added since are NULL
        row = dict(zip(self.copy_columns, [
            None if field == "\\N" else conv(_COPY_UNESCAPE.sub(_unescape, field))
            for conv, field in zip(convert, fields, strict=False)], strict=False))
        row["is_unique"] = flag
        return [row[c] for c in self.columns]

    def _build_converters(self) -> list[Callable[[str], Any]]:
        self._converters_cache = self._converters()
        return self._converters_cache

    def decode(self, payload: bytes | str, unique: bytes | str | int) -> dict[str, Any]:
        """The row of a buffered payload."""
        return dict(zip(self.columns, self.values(payload, unique), strict=True))

    def copy_line(self, payload: bytes, unique: bytes) -> bytes:
        """The COPY text line of a buffered entry (no decoding for the packed format)."""
        if payload[:1] == b"[":
            row = self.decode(payload, unique)
            payload = self.encode(row).encode()
        missing = self._fields - payload.count(b"\t") - 1
        if missing > 0:  # packed by an older release: the columns added since are NULL
            payload += b"\t\\N" * missing
        return payload + (b"\tt\n" if unique == b"1" else b"\tf\n")

    def copy_data(self, entries: list[tuple[bytes, bytes]]) -> bytes:
        """The COPY text of a batch of buffered entries: each line as packed, plus its
        ``is_unique``; only lines of an older format go through ``copy_line``.

        Glued in one pass of C-level iterators, with no Python code per row (a loop that
        checked and glued each line cost 1.1 us a row, as much CPU as reading the batch from
        Redis); the batch's count of tabs then tells whether every line has all its fields.
        (A line of an older format has fewer; if some other line made up for them, the COPY
        would refuse the batch and ``store_entries`` would go row by row: nothing is lost.)
        """
        if entries:
            payloads, flags = zip(*entries, strict=True)
            try:
                # An unknown flag maps to None on purpose: join() then raises the TypeError below.
                data = b"".join(chain.from_iterable(
                    zip(payloads, map(_IS_UNIQUE.get, flags), strict=True)))  # type: ignore[arg-type]
            except TypeError:  # a flag other than b"0"/b"1"
                data = b""
            if data and data.count(b"\t") == self._fields * len(entries):
                return data
        tabs = self._fields - 1
        return b"".join([
            payload + (b"\tt\n" if unique == b"1" else b"\tf\n")
            if payload.count(b"\t") == tabs and payload[:1] != b"[" else self.copy_line(payload, unique)
            for payload, unique in entries])

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

    def _copy(self, data: bytes) -> None:
        """PostgreSQL: COPY the lines straight into the table; if some ids are already there (a
        rerun after a flush died between commit and trim), COPY into a staging table and
        ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` instead."""
        import psycopg

        raw = db.session.connection().connection.driver_connection
        cols = ", ".join(self.copy_columns)
        table, stage = self.table_name, f"{self.table_name}_stage"
        with raw.cursor() as cur:  # type: ignore[union-attr]
            cur.execute(f"SAVEPOINT {table}_copy")
            try:
                with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                    copy.write(data)
                cur.execute(f"RELEASE SAVEPOINT {table}_copy")
                return
            except psycopg.errors.UniqueViolation:
                cur.execute(f"ROLLBACK TO SAVEPOINT {table}_copy")
            cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
                        f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
            with cur.copy(f"COPY {stage} ({cols}) FROM STDIN") as copy:
                copy.write(data)
            # Table and column names are constants, never input.
            cur.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage} "  # noqa: S608
                        "ON CONFLICT DO NOTHING")

    def store_entries(self, entries: list[tuple[bytes, bytes]]) -> list[tuple[dict[str, Any], str]]:
        """Insert one batch of buffered entries (payload, is_unique flag) and commit; rows the
        database refuses are returned with the reason."""
        try:
            if db.session.get_bind().dialect.name == "postgresql":
                self._copy(self.copy_data(entries))
            else:
                self.insert_ignore([self.decode(payload, unique) for payload, unique in entries])
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
        for payload, unique in entries:
            row = self.decode(payload, unique)
            try:
                with db.session.begin_nested():
                    self.insert_ignore([row])
            except (DataError, IntegrityError) as exc:
                refused.append((row, str(exc.orig)[:500]))
        db.session.commit()
        return refused

    def store_rows(self, rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str]]:
        """``store_entries`` for rows given as dicts."""
        return self.store_entries([(self.encode(row).encode(), b"1" if row.get("is_unique") else b"0")
                                   for row in rows])

    def flush(self, client: Any, run: Callable[[list[list[bytes]]], list[Any]],
              batch_size: int = FLUSH_BATCH, max_batches: int = FLUSH_MAX_BATCHES,
              pipe: Any = None, workers: int | None = None) -> dict[str, Any]:
        """Move buffered rows into the database in bulk. Idempotent; one flush at a time.

        ``run`` sends raw commands (``links.buffer.run_commands``): a batch of 10,000 entries
        parsed by redis-py's callbacks cost as much as its COPY. With a ``pipe``
        (``links.buffer.Pipe``: send now, read later) the read of the next batch is sent
        before the current batch is stored, and a batch's trim before the next read's reply
        is awaited, so Redis does its part while PostgreSQL does the COPY.

        With ``workers`` (default: the app's ``FLUSH_WORKERS``, else ``FLUSH_WORKERS``) > 1 on
        PostgreSQL, that many threads, each with its own connection, COPY and commit different
        batches at once (psycopg releases the GIL while PostgreSQL works); this thread reads
        the batches and trims (``_flush_parallel``). Otherwise one batch at a time on this
        thread's session (``_flush_serial``).

        Entries leave the stream only after their batch is committed, and with several
        workers only once every batch before them is committed too (the trim removes all ids
        below one id). A rerun after a crash re-inserts what is still in the stream with ON
        CONFLICT DO NOTHING, so nothing is doubled.
        """
        if workers is None:
            workers = int(current_app.config.get("FLUSH_WORKERS", FLUSH_WORKERS))
        flush = self._flush_serial
        if workers > 1 and db.session.get_bind().dialect.name == "postgresql":
            flush = functools.partial(self._flush_parallel, workers=workers)
        lock_key = self.key("flush-lock")
        token = secrets.token_hex(8)
        if not client.set(lock_key, token, nx=True, ex=LOCK_SECONDS):
            return {"flushed": 0, "skipped": "another flush is running"}
        # A batch read makes some 30,000 container objects (entries, field lists), none in a
        # cycle; with the collector on, they set off collections that walk the process's whole
        # heap (measured: 3-6 us a row of CPU reading a batch, 1.4 without). Refcounting frees
        # them; the collector runs again when the flush is done.
        collecting = gc.isenabled()
        gc.disable()
        try:
            flushed, refused_total = flush(run, pipe, lock_key, batch_size, max_batches)
        except BaseException:
            if pipe is not None:
                pipe.abort()  # replies may be in flight: they would answer the next commands
            raise
        finally:
            if collecting:
                gc.enable()
            if client.get(lock_key) == token.encode():
                client.delete(lock_key)
        return {"flushed": flushed, "refused": refused_total}

    def _read_command(self, after: bytes, batch_size: int) -> list[bytes]:
        return [b"XRANGE", self.key().encode(), after, b"+", b"COUNT", b"%d" % batch_size]

    def _trim_commands(self, lock_key: str, batches: list[tuple[list[tuple[bytes, bytes]],
                                                                 list[tuple[dict[str, Any], str]]]],
                       after: bytes) -> list[list[bytes]]:
        """Redis commands once ``batches`` (entries, refused rows) are committed: their dead
        letters, the trim of every id before ``after``, the extra cleanup, the lock's renewal."""
        dead = self.key("dead").encode()
        commands = [[b"XADD", dead, b"*", b"c", self.encode_json(row).encode(), b"error", reason.encode()]
                    for _, refused in batches for row, reason in refused]
        commands.append([b"XTRIM", self.key().encode(), b"MINID", after])
        if self.after_batch is not None:
            for batch, _ in batches:
                commands += self.after_batch(batch)
        commands.append([b"EXPIRE", lock_key.encode(), b"%d" % LOCK_SECONDS])
        return commands

    def _flush_serial(self, run: Callable[[list[list[bytes]]], list[Any]], pipe: Any, lock_key: str,
                      batch_size: int, max_batches: int) -> tuple[int, int]:
        """One batch at a time: store (COPY, commit), then trim. (Reading the reply on a helper
        thread during the COPY as well measured no faster on two busy cores: 26.0 vs 24.1 us a
        row, medians of six interleaved pairs.)"""
        flushed = refused_total = 0
        #: Replies still owed on the pipe, oldest first: True for a batch read, False otherwise.
        owed: deque[bool] = deque()
        # The first read goes through ``run``: it reconnects once if Redis restarted since.
        (entries,) = run([self._read_command(b"-", batch_size)])
        for n in range(max_batches):
            if not entries:
                break
            after = _after(entries)
            more = len(entries) == batch_size and n + 1 < max_batches
            next_read = self._read_command(after, batch_size)
            if more and pipe is not None:
                pipe.send([next_read])  # Redis reads it while PostgreSQL COPYs this batch
                owed.append(True)
            batch = [_entry_fields(fields) for _, fields in entries]
            refused = self.store_entries(batch)
            commands = self._trim_commands(lock_key, [(batch, refused)], after)
            flushed += len(batch) - len(refused)
            refused_total += len(refused)
            if pipe is None:
                run(commands)
                entries = run([next_read])[0] if more else []
                continue
            entries = _read_batch(pipe, owed) if more else []
            pipe.send(commands)  # done by Redis during the next COPY; replies read after it
            owed.extend([False] * len(commands))
        _drain(pipe, owed)
        return flushed, refused_total

    def _flush_parallel(self, run: Callable[[list[list[bytes]]], list[Any]], pipe: Any, lock_key: str,
                        batch_size: int, max_batches: int, workers: int) -> tuple[int, int]:
        """``workers`` threads store batches (each on a session and connection of its own, in an
        app context of its own); this thread reads batches, hands them out (at most one waits
        for a free worker) and trims the stream up to the end of the longest run of committed
        batches from the first. A batch that fails stops the hand-out; the batches already
        being stored finish, the committed prefix is trimmed, the failure is raised. What is
        left in the stream (the failed batch, and any committed after it) is stored by the next
        flush, ids already there skipped.

        The stream is cut into a multiple of ``workers`` batches of equal size (at most
        ``batch_size``; ``_balanced``), so that no worker sits idle while another stores the
        last batch alone.
        """
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        tasks: queue.SimpleQueue[tuple[int, _Entries] | None] = queue.SimpleQueue()
        done: queue.SimpleQueue[tuple[int, Any, BaseException | None]] = queue.SimpleQueue()

        def work() -> None:
            with app.app_context():
                while (task := tasks.get()) is not None:
                    seq, batch = task
                    try:
                        done.put((seq, self.store_entries(batch), None))
                    except BaseException as exc:  # noqa: BLE001 - handed to the flushing thread
                        with contextlib.suppress(Exception):
                            db.session.rollback()
                        done.put((seq, None, exc))

        threads = [threading.Thread(target=work, name=f"{self.name}-flush-{i}", daemon=True)
                   for i in range(workers)]
        for thread in threads:
            thread.start()
        owed: deque[bool] = deque()
        #: Batches handed out and not trimmed yet: seq -> (entries, id after the last entry).
        handed: dict[int, tuple[_Entries, bytes]] = {}
        #: Committed and not trimmed yet: seq -> refused rows.
        committed: dict[int, list[tuple[dict[str, Any], str]]] = {}
        state = {"running": 0, "trimmed": 0, "flushed": 0, "refused": 0}
        failures: list[BaseException] = []

        def collect(block: bool) -> None:
            """Take the workers' answers (waiting for one if ``block``)."""
            while state["running"]:
                try:
                    seq, refused, exc = done.get(block=block)
                except queue.Empty:
                    return
                block = False
                state["running"] -= 1
                if exc is None:
                    committed[seq] = refused
                else:
                    failures.append(exc)

        def trim() -> None:
            """Send the trim of the committed batches that follow the last trimmed one."""
            ready = []
            while state["trimmed"] in committed:
                seq = state["trimmed"]
                refused = committed.pop(seq)
                batch, after = handed.pop(seq)
                ready.append((batch, refused))
                state["trimmed"] += 1
                state["flushed"] += len(batch) - len(refused)
                state["refused"] += len(refused)
            if not ready:
                return
            commands = self._trim_commands(lock_key, ready, after)
            if pipe is None:
                run(commands)
            else:
                pipe.send(commands)  # replies read before the next batch's
                owed.extend([False] * len(commands))

        try:
            # The first command goes through ``run``: it reconnects once if Redis restarted.
            (length,) = run([[b"XLEN", self.key().encode()]])
            batch_size = _balanced(int(length), batch_size, workers)
            (entries,) = run([self._read_command(b"-", batch_size)])
            for n in range(max_batches):
                if not entries or failures:
                    break
                after = _after(entries)
                more = len(entries) == batch_size and n + 1 < max_batches
                next_read = self._read_command(after, batch_size)
                if more and pipe is not None:
                    pipe.send([next_read])  # Redis reads it while the workers COPY
                    owed.append(True)
                batch = [_entry_fields(fields) for _, fields in entries]
                handed[n] = (batch, after)
                tasks.put((n, batch))
                state["running"] += 1
                collect(block=state["running"] > workers)  # one batch waits for a worker at most
                trim()
                if not more or failures:
                    break
                entries = _read_batch(pipe, owed) if pipe is not None else run([next_read])[0]
            while state["running"]:
                collect(block=True)
                trim()
            _drain(pipe, owed)
        except BaseException:
            # The batches handed out are stored all the same (at most one per worker and one
            # more); committed or not, they stay in the stream for the next flush.
            while state["running"]:
                collect(block=True)
            raise
        finally:
            for _ in threads:
                tasks.put(None)
            for thread in threads:
                thread.join()
        if failures:
            raise failures[0]
        return state["flushed"], state["refused"]


def _balanced(length: int, batch_size: int, workers: int) -> int:
    """The batch size that cuts ``length`` entries into a multiple of ``workers`` batches of
    (nearly) equal size, none larger than ``batch_size``: 50,000 entries, 10,000 a batch, two
    workers make six batches of 8,334, not five of which the last is stored alone."""
    if length <= 0:
        return batch_size
    batches = -(-length // batch_size)
    batches = -(-batches // workers) * workers
    return min(batch_size, -(-length // batches))


def _after(entries: list[Any]) -> bytes:
    """The id right after a batch's last entry: where the next batch starts, and the trim's
    MINID. Everything up to the batch's last id was in the batch (read in id order, one
    flusher at a time, ids only grow)."""
    last_ms, _, last_seq = entries[-1][0].partition(b"-")
    return b"%s-%d" % (last_ms, int(last_seq) + 1)


def _drain(pipe: Any, owed: deque[bool]) -> None:
    """Read the replies still owed on the pipe (the last trims'; an error reply raises here)."""
    while owed:
        owed.popleft()
        pipe.read()


def _read_batch(pipe: Any, owed: deque[bool]) -> Any:
    """Read the pipe's owed replies up to the next batch read's; that batch (an error raises)."""
    while owed:
        is_batch = owed.popleft()
        reply = pipe.read()
        if is_batch:
            return reply
    raise AssertionError("no batch read was sent")  # pragma: no cover


def _entry_fields(fields: list[bytes]) -> tuple[bytes, bytes]:
    """(payload, is_unique flag) of a stream entry's raw field list ``[b"c", .., b"u", ..]``."""
    if fields[0] == b"c" and fields[2] == b"u":
        return fields[1], fields[3]
    named = dict(zip(fields[::2], fields[1::2], strict=True))
    return named[b"c"], named[b"u"]

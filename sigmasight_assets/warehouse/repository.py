"""Partition-aware reads and idempotent writes.

Writes replace a partition range (optionally only some keys) with delete-then-insert inside one
transaction: a failure anywhere rolls back and leaves the last good data. Bulk inserts use the
fastest path of each dialect: ``executemany`` on SQLite, ``COPY`` on PostgreSQL.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from datetime import date
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
from sqlalchemy import Table, and_, delete, func, select, text, true
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.types import Boolean, Date, DateTime, Float, Integer

from .engine import engine_for
from .roles import write_problems
from .schema import LOOKUPS, READABLE, TABLES, Lookup
from .versions import ensure_current

# Warehouses whose schema version this process has checked (``create_all`` runs in every step).
_CHECKED: set[str] = set()

_IN_CHUNK = 900  # stays under SQLite's bound-parameter limit on old builds
INSERT_CHUNK = 250_000


class WarehouseNotWritable(RuntimeError):
    """The warehouse URL cannot write the warehouse (a read-only role, a standby, a read-only file)."""


@dataclass(frozen=True)
class Replacement:
    """One table's partition range (optionally scoped to keys and column values) and its new rows."""

    table: str
    frame: pd.DataFrame
    start: date
    end: date
    keys: Sequence[str] | None = None
    key_column: str | None = None
    extra_filter: dict | None = None


@dataclass(frozen=True)
class StagedReplacement:
    """One table's partition range (optionally scoped to keys) whose new rows arrive in parts: each
    part is a function returning a frame, called one at a time inside the write, so the rows of a
    large replacement never need to be in memory together."""

    table: str
    parts: Sequence[Callable[[], pd.DataFrame]]
    start: date
    end: date
    keys: Sequence[str] | None = None
    key_column: str | None = None


class Warehouse:
    """The analytics warehouse behind one SQLAlchemy URL."""

    def __init__(self, url: str):
        self.url = url
        self.engine: Engine = engine_for(url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def create_all(self) -> None:
        """Create a new warehouse (stamped with the current schema version) or check an existing
        one's version: an older or newer warehouse raises ``versions.WarehouseSchemaError`` with
        one line naming the upgrade command. Checked once per process and URL."""
        if self.url in _CHECKED:
            return
        ensure_current(self.engine)
        _CHECKED.add(self.url)

    def check_writable(self, setting: str = "SIGMASIGHT_DATABASE_URL") -> None:
        """Raise :class:`WarehouseNotWritable`, with one line naming ``setting`` (where the URL came
        from), the role and what the runs need, unless this URL can write every warehouse table.
        Reads the catalog only; see :func:`.roles.write_problems` for what is checked."""
        who, problems = write_problems(self)
        if problems:
            remedy = (f"The runs need the writer role (see `sigmasight warehouse grant`): point {setting} at its URL"
                      if self.dialect == "postgresql" else f"Point {setting} at a file this process may write")
            raise WarehouseNotWritable(f"{setting} {who}, which cannot write the warehouse: "
                                       f"{'; '.join(problems)}. {remedy}")

    def table(self, name: str) -> Table:
        try:
            return TABLES[name]
        except KeyError as exc:
            raise KeyError(f"unknown warehouse table {name!r}") from exc

    # -- writes -----------------------------------------------------------------------------------
    def replace_partitions(
        self,
        table_name: str,
        frame: pd.DataFrame,
        start: date,
        end: date,
        keys: Sequence[str] | None = None,
        key_column: str | None = None,
        extra_filter: dict | None = None,
        retries: int = 3,
    ) -> int:
        """Replace rows with ``start ≤ date ≤ end`` (and ``key_column in keys`` if given) by ``frame``.

        Every row of ``frame`` must fall inside that scope, otherwise the write is refused: a scoped
        run must never touch rows it did not delete. Returns the number of rows inserted. Transient
        connection errors are retried on a fresh transaction.
        """
        return self.replace_many([Replacement(table_name, frame, start, end, keys, key_column, extra_filter)],
                                 retries)[0]

    def replace_many(self, items: Sequence["Replacement"], retries: int = 3) -> list[int]:
        """Several :meth:`replace_partitions` in one transaction: all of them are stored or none.

        Every frame is checked against its scope before anything is deleted. On SQLite the single
        write lock is then taken once for all the tables (parallel chunk writers hand it over once
        per chunk instead of once per table); on PostgreSQL the partition locks are taken in table
        order, so two writers of overlapping table sets cannot deadlock. Returns rows inserted per
        item.
        """
        prepared = [self._prepare(it) for it in items]
        for attempt in range(retries + 1):
            try:
                with self.engine.begin() as conn:
                    for table, _frame, start, end, *_rest in sorted(prepared, key=lambda p: p[0].name):
                        self._lock_partitions(conn, table, start, end)
                    for (table, frame, start, end, keys, key_column, side), item in zip(prepared, items):
                        cond = and_(table.c.date >= start, table.c.date <= end)
                        for col, value in (item.extra_filter or {}).items():
                            cond = and_(cond, table.c[col] == value)
                        _delete_scope(conn, table, cond, start, end, keys, key_column)
                        self._upsert_lookup(conn, table.name, side)
                        self._bulk_insert(conn, table, frame)
                return [len(p[1]) for p in prepared]
            except OperationalError as exc:
                # A dropped connection or a lock timeout: the transaction was rolled back, try again.
                if attempt == retries or not _is_transient(exc):
                    raise
                time.sleep(0.5 * 2**attempt)
        return []  # pragma: no cover

    def replace_staged(self, items: Sequence[StagedReplacement], retries: int = 3) -> list[int]:
        """:meth:`replace_many` for rows that arrive in parts: in one transaction, delete each
        item's scope, then insert its parts one after another. A part outside its scope raises and
        rolls everything back, so the warehouse keeps its previous rows. Returns rows inserted per
        item."""
        for attempt in range(retries + 1):
            try:
                counts = []
                with self.engine.begin() as conn:
                    items_sorted = sorted(items, key=lambda it: it.table)
                    for it in items_sorted:
                        self._lock_partitions(conn, self.table(it.table), pd.Timestamp(it.start).date(),
                                              pd.Timestamp(it.end).date())
                    for it in items:
                        table, start, end, keys, key_column = self._scope(it.table, it.start, it.end, it.keys,
                                                                          it.key_column)
                        cond = and_(table.c.date >= start, table.c.date <= end)
                        _delete_scope(conn, table, cond, start, end, keys, key_column)
                        n = 0
                        for part in it.parts:
                            _t, frame, *_rest, side = self._prepare(Replacement(it.table, part(), it.start, it.end,
                                                                                it.keys, it.key_column))
                            self._upsert_lookup(conn, table.name, side)
                            self._bulk_insert(conn, table, frame)
                            n += len(frame)
                            del frame
                        counts.append(n)
                return counts
            except OperationalError as exc:
                if attempt == retries or not _is_transient(exc):
                    raise
                time.sleep(0.5 * 2**attempt)
        return []  # pragma: no cover

    def _scope(self, table_name: str, start, end, keys, key_column):
        """(table, first date, last date, keys as a list or None, key column) of a replacement."""
        table = self.table(table_name)
        if keys is not None:
            keys = list(keys)
            key_column = key_column or ("symbol" if "symbol" in table.c else "portfolio_id")
        return table, pd.Timestamp(start).date(), pd.Timestamp(end).date(), keys, key_column

    def _prepare(self, item: "Replacement"):
        """(table, conformed frame, start, end, keys, key column, lookup rows or None) after the scope
        checks. The frame has the readable columns (``schema.READABLE``); a lookup's columns are
        split off into its own rows (one per lookup key)."""
        table, start, end, keys, key_column = self._scope(item.table, item.start, item.end, item.keys,
                                                          item.key_column)
        frame = _conform(READABLE[table.name], item.frame)
        side = None
        lookup = LOOKUPS.get(table.name)
        if lookup is not None:
            names = [c.name for c in lookup.columns]
            side = frame[[lookup.key, *names]].drop_duplicates(lookup.key, keep="last")
            frame = frame.drop(columns=names)
        if len(frame):
            fmin, fmax = frame["date"].min().date(), frame["date"].max().date()
            if fmin < start or fmax > end:
                raise ValueError(
                    f"{item.table}: rows dated {fmin}..{fmax} fall outside the partition range {start}..{end}"
                )
        if keys is not None:
            outside = set(frame[key_column]) - set(keys) if len(frame) else set()
            if outside:
                raise ValueError(f"{item.table}: rows for {sorted(outside)[:5]} outside the scoped keys")
        return table, frame, start, end, keys, key_column, side

    def _upsert_lookup(self, conn: Connection, table_name: str, side: pd.DataFrame | None) -> None:
        """Store the lookup rows of a write: insert new keys, update keys whose attributes changed,
        leave identical rows alone (no write, so concurrent writers of the same scenarios never
        wait on each other's row locks)."""
        if side is None or side.empty:
            return
        lookup: Lookup = LOOKUPS[table_name]
        lt = lookup.table
        names = [c.name for c in lt.columns]
        ids = sorted(side[lookup.key].astype(str).unique())
        stored = {}
        for i in range(0, len(ids), _IN_CHUNK):
            for row in conn.execute(select(*lt.columns).where(lt.c[lookup.key].in_(ids[i : i + _IN_CHUNK]))):
                stored[row._mapping[lookup.key]] = tuple(row._mapping[n] for n in names)
        rows = [r for r in side[names].sort_values(lookup.key).itertuples(index=False, name=None)
                if stored.get(r[names.index(lookup.key)]) != tuple(r)]
        if not rows:
            return
        if self.dialect in ("sqlite", "postgresql"):
            if self.dialect == "sqlite":
                from sqlalchemy.dialects.sqlite import insert as dialect_insert
            else:
                from sqlalchemy.dialects.postgresql import insert as dialect_insert
            stmt = dialect_insert(lt)
            stmt = stmt.on_conflict_do_update(index_elements=[lookup.key],
                                              set_={n: stmt.excluded[n] for n in names if n != lookup.key})
            conn.execute(stmt, [dict(zip(names, r)) for r in rows])
        else:
            conn.execute(delete(lt).where(lt.c[lookup.key].in_([r[names.index(lookup.key)] for r in rows])))
            conn.execute(lt.insert(), [dict(zip(names, r)) for r in rows])

    def _lock_partitions(self, conn: Connection, table: Table, start: date, end: date) -> None:
        """PostgreSQL: serialise writers of the same (table, day) until commit.

        Under READ COMMITTED a second writer's DELETE cannot see rows the first inserted after the
        second's statement began, so two runs replacing the same partition at once made the later
        one fail on the unique (date, key) index. Transaction-level advisory locks, one per day and
        taken in ascending order (no deadlock between overlapping ranges), make it wait instead:
        the last writer wins with one complete copy. SQLite's database lock already serialises.
        """
        if self.dialect != "postgresql":
            return
        conn.execute(
            text("SELECT pg_advisory_xact_lock(:t, d) FROM generate_series(:a, :b) AS d ORDER BY d"),
            {"t": _lock_key(table.name), "a": start.toordinal(), "b": end.toordinal()},
        )

    def delete_in(self, conn: Connection, table_name: str, column: str, values: Sequence) -> None:
        """Within the caller's transaction: delete rows whose ``column`` is in ``values``."""
        table = self.table(table_name)
        values = list(values)
        for i in range(0, len(values), _IN_CHUNK):
            conn.execute(delete(table).where(table.c[column].in_(values[i : i + _IN_CHUNK])))

    def delete_keys(self, table_names: Sequence[str], keys: Sequence[str], key_column: str = "portfolio_id") -> dict[str, int]:
        """Delete every row (all dates) whose ``key_column`` is in ``keys`` from each table, in one
        transaction; returns the rows deleted per table."""
        keys = list(keys)
        out: dict[str, int] = {}
        with self.engine.begin() as conn:
            for name in sorted(table_names):
                table = self.table(name)
                # Without an index leading with the key, one statement per stored day (primary key
                # lookups) instead of a scan of the whole table.
                days = [None] if _keyed(table, key_column) else _stored_days(conn, table)
                n = 0
                for day in days:
                    cond = true() if day is None else table.c.date == day
                    for i in range(0, len(keys), _IN_CHUNK):
                        n += conn.execute(delete(table).where(and_(cond, table.c[key_column].in_(
                            keys[i : i + _IN_CHUNK])))).rowcount
                out[name] = int(n)
        return out

    def insert(self, conn: Connection, table_name: str, frame: pd.DataFrame) -> int:
        """Within the caller's transaction: bulk-insert ``frame`` (validated against the table)."""
        table = self.table(table_name)
        frame = _conform(table, frame)
        self._bulk_insert(conn, table, frame)
        return len(frame)

    def _bulk_insert(self, conn: Connection, table: Table, frame: pd.DataFrame) -> None:
        """Insert in slices of ``INSERT_CHUNK`` rows so a year of factor rows never needs the whole
        frame converted to Python objects (or CSV text) at once; all slices share the caller's
        transaction."""
        if frame.empty:
            return
        cols = [c.name for c in table.columns if c.name in frame.columns]
        frame = frame[cols]
        # A clustered table (``WITHOUT ROWID``, primary key leading with date) keeps the arrival
        # order, day by day: its rows are then appended at the end of the b-tree.
        if self.dialect == "sqlite" and table.dialect_options["sqlite"]["with_rowid"]:
            frame = _key_major(frame)
        for i in range(0, len(frame), INSERT_CHUNK):
            part = frame.iloc[i : i + INSERT_CHUNK]
            if self.dialect == "postgresql":
                _copy_postgres(conn, table, part)
            elif self.dialect == "sqlite":
                sql = f'INSERT INTO {table.name} ({", ".join(cols)}) VALUES ({", ".join("?" for _ in cols)})'
                conn.exec_driver_sql(sql, _python_rows(table, part))
            else:
                rows = _python_rows(table, part, iso_dates=False)
                conn.execute(table.insert(), [dict(zip(cols, r)) for r in rows])

    # -- reads ------------------------------------------------------------------------------------
    def read(
        self,
        table_name: str,
        start: date | None = None,
        end: date | None = None,
        keys: Iterable[str] | None = None,
        columns: Sequence[str] | None = None,
        key_column: str | None = None,
    ) -> pd.DataFrame:
        """Rows of ``table_name`` in [start, end] (inclusive), optionally only for ``keys``.

        A table with a lookup (``schema.LOOKUPS``) is read joined to it: the frame has the readable
        columns (``schema.READABLE``), as written."""
        table = self.table(table_name)
        typed = READABLE[table_name]
        source, colmap = table, dict(table.c)
        lookup = LOOKUPS.get(table_name)
        if lookup is not None:
            source = table.outerjoin(lookup.table, lookup.table.c[lookup.key] == table.c[lookup.key])
            colmap.update({c.name: lookup.table.c[c.name] for c in lookup.columns})
        cols = [colmap[c] for c in columns] if columns else [colmap[c.name] for c in typed.columns]
        conds = []
        if (start is not None and end is not None and "date" in table.c
                and pd.Timestamp(start).date() == pd.Timestamp(end).date()):
            # One day as an equality: a range on the primary key's first column would stop the
            # lookup there and scan the whole day for the keys.
            conds.append(table.c.date == pd.Timestamp(start).date())
        else:
            if start is not None and "date" in table.c:
                conds.append(table.c.date >= pd.Timestamp(start).date())
            if end is not None and "date" in table.c:
                conds.append(table.c.date <= pd.Timestamp(end).date())
        key_column = key_column or ("symbol" if "symbol" in table.c else "portfolio_id")
        frames = []
        key_list = None if keys is None else list(dict.fromkeys(keys))
        wanted = None
        if key_list is not None and len(key_list) > _IN_CHUNK and conds:
            # Thousands of keys (a whole universe's symbols) over a date range: one scan of the range
            # filtered here reads ~3× faster than one IN (…) query per 900 keys, each probing the
            # key index and fetching its rows one by one.
            wanted, key_list = key_list, None
        chunks = [None] if key_list is None else [key_list[i : i + _IN_CHUNK] for i in range(0, len(key_list), _IN_CHUNK)]
        names = [c.name for c in cols]
        if key_list is not None and not key_list and wanted is None:  # no key asked for: no row
            return _from_sql(typed, pd.DataFrame({n: pd.Series([], dtype=object) for n in names}), names)
        if wanted is not None and key_column not in names:
            cols = [*cols, table.c[key_column]]
        fetched = [c.name for c in cols]
        with self.engine.connect() as conn:
            for chunk in chunks:
                stmt = select(*cols).select_from(source)
                chunk_conds = list(conds)
                if chunk is not None:
                    chunk_conds.append(table.c[key_column].in_(chunk))
                if chunk_conds:
                    stmt = stmt.where(and_(*chunk_conds))
                frames.append(self._fetch_frame(conn, stmt, fetched))
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        if wanted is not None:
            frame = frame.loc[frame[key_column].isin(wanted).to_numpy(), names].reset_index(drop=True)
        return _from_sql(typed, frame, names)

    def _fetch_frame(self, conn: Connection, stmt, names: list[str]) -> pd.DataFrame:
        """Rows of ``stmt`` without SQLAlchemy's per-value result processing (the slow part at
        millions of rows): the DBAPI cursor on SQLite, ``COPY ... TO STDOUT`` on PostgreSQL.
        ``_from_sql`` types the columns afterwards."""
        compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
        sql = str(compiled)
        raw = conn.connection.driver_connection
        if self.dialect == "postgresql" and hasattr(raw.cursor(), "copy"):
            buf = io.BytesIO()
            with raw.cursor() as cur:
                with cur.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER false, NULL '\\N')") as cp:
                    for block in cp:
                        buf.write(block)
            buf.seek(0)
            if buf.getbuffer().nbytes == 0:
                return pd.DataFrame(columns=names)
            return pd.read_csv(buf, header=None, names=names, na_values=["\\N"], keep_default_na=False,
                               dtype=object)
        if self.dialect == "sqlite":
            cur = raw.cursor()
            try:
                cur.execute(sql)
                rows = cur.fetchall()
            finally:
                cur.close()
            return pd.DataFrame.from_records(rows, columns=names)
        res = conn.execute(stmt)
        return pd.DataFrame(res.fetchall(), columns=names)

    def price_extremes(self, start, end) -> pd.DataFrame:
        """Per symbol over ``prices`` rows dated [start, end]: ``high`` = max(high, else close),
        ``low`` = min(low, else close) and how many rows gave each (``n_high``, ``n_low``).

        One ``GROUP BY`` in the database instead of shipping the window's rows (a 52-week window
        at 5,000 symbols is 1.26M rows) to pandas.
        """
        t = self.table("prices")
        hi, lo = func.coalesce(t.c.high, t.c.close), func.coalesce(t.c.low, t.c.close)
        stmt = (
            select(t.c.symbol, func.max(hi), func.min(lo), func.count(hi), func.count(lo))
            .where(and_(t.c.date >= pd.Timestamp(start).date(), t.c.date <= pd.Timestamp(end).date()))
            .group_by(t.c.symbol)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).fetchall()
        frame = pd.DataFrame(rows, columns=["symbol", "high", "low", "n_high", "n_low"])
        for c in ("high", "low"):
            frame[c] = frame[c].astype(float)
        for c in ("n_high", "n_low"):
            frame[c] = frame[c].astype("int64")
        return frame

    def count(self, table_name: str, start: date | None = None, end: date | None = None) -> int:
        table = self.table(table_name)
        stmt = select(func.count()).select_from(table)
        if start is not None:
            stmt = stmt.where(table.c.date >= pd.Timestamp(start).date())
        if end is not None:
            stmt = stmt.where(table.c.date <= pd.Timestamp(end).date())
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def latest_date(self, table_name: str) -> date | None:
        table = self.table(table_name)
        with self.engine.connect() as conn:
            value = conn.execute(select(func.max(table.c.date))).scalar_one()
        return pd.Timestamp(value).date() if value is not None else None

    def query(self, sql: str, **params) -> pd.DataFrame:
        with self.engine.connect() as conn:
            res = conn.execute(text(sql), params)
            return pd.DataFrame(res.fetchall(), columns=list(res.keys()))


def _keyed(table: Table, key_column: str) -> bool:
    """Whether a key's rows are found without a scan of ``table``: an index or the primary key
    leads with ``key_column``, or (the per-day path would not help) the primary key does not lead
    with ``date``."""
    pk = [c.name for c in table.primary_key.columns]
    return (not pk or pk[0] != "date" or pk[0] == key_column
            or any(list(ix.columns)[0].name == key_column for ix in table.indexes))


def _stored_days(conn: Connection, table: Table) -> list:
    """The distinct dates of a table whose primary key leads with ``date``: one index seek per day
    (a recursive ``min(date) > previous``), not a scan of its rows."""
    rows = conn.execute(text(
        f"WITH RECURSIVE d(x) AS (SELECT min(date) FROM {table.name} UNION ALL "
        f"SELECT (SELECT min(date) FROM {table.name} WHERE date > d.x) FROM d WHERE d.x IS NOT NULL) "
        "SELECT x FROM d WHERE x IS NOT NULL")).fetchall()
    return [pd.Timestamp(r[0]).date() for r in rows]


def _delete_scope(conn: Connection, table: Table, cond, start: date, end: date, keys, key_column) -> None:
    """Delete ``cond`` (a date range and filters), and with ``keys`` only those keys' rows.

    Keys are deleted through an index that leads with the key column when the table has one;
    otherwise (the large portfolio tables keep only the (date, key, …) primary key) one day at a
    time, so every statement is a primary key lookup instead of a scan of the whole range."""
    if keys is None:
        conn.execute(delete(table).where(cond))
        return
    days = [None] if _keyed(table, key_column) else [d.date() for d in pd.date_range(start, end, freq="D")]
    for day in days:
        day_cond = cond if day is None else and_(cond, table.c.date == day)
        for i in range(0, len(keys), _IN_CHUNK):
            conn.execute(delete(table).where(and_(day_cond, table.c[key_column].in_(keys[i : i + _IN_CHUNK]))))


def _lock_key(table_name: str) -> int:
    """A stable signed 32-bit advisory-lock key per table (same in every process)."""
    import zlib

    return zlib.crc32(f"sigmasight:{table_name}".encode()) - 2**31


def _is_transient(exc: OperationalError) -> bool:
    msg = str(exc.orig if exc.orig is not None else exc).lower()
    return any(
        s in msg
        for s in ("database is locked", "server closed the connection", "connection reset", "terminating connection",
                  "could not connect", "connection refused", "ssl syscall", "broken pipe")
    ) or bool(getattr(exc, "connection_invalidated", False))


def _conform(table: Table, frame: pd.DataFrame) -> pd.DataFrame:
    """Check columns against the table and normalise dtypes (dates → ``datetime.date``)."""
    missing = [c.name for c in table.columns if not c.nullable and c.default is None and c.name not in frame.columns]
    if missing:
        raise ValueError(f"{table.name}: frame lacks required columns {missing}")
    unknown = [c for c in frame.columns if c not in table.c]
    if unknown:
        raise ValueError(f"{table.name}: frame has columns the table does not: {unknown}")
    frame = frame.copy()
    for col in table.columns:
        if col.name not in frame.columns:
            continue
        if isinstance(col.type, Date):
            frame[col.name] = pd.to_datetime(frame[col.name]).dt.normalize()
        elif isinstance(col.type, DateTime):
            frame[col.name] = pd.to_datetime(frame[col.name])
    return frame


def _key_major(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of a multi-day portfolio frame reordered by (portfolio, date), stable.

    Frames arrive day by day, so every day's rows would land at as many scattered places in the
    (key, date) index as there are portfolios: past a few million rows each insert then touches a
    page not in cache, and the insert rate halves. Key-major order inserts a portfolio's days side
    by side, and portfolio tables are read per portfolio. Symbol tables keep date-major order: the
    portfolio step and symbol_metrics read them by date range, which key-major rows would scatter.
    """
    key = "portfolio_id"
    if key not in frame.columns or "date" not in frame.columns or len(frame) < 2 or frame["date"].nunique() < 2:
        return frame
    codes, _ = pd.factorize(frame[key], sort=True)
    return frame.take(np.argsort(codes, kind="stable"))


def _per_day(s: pd.Series, convert) -> np.ndarray:
    """``convert(day)`` for every value of a datetime column (None for missing), computed once
    per distinct day: a multi-day frame has millions of rows but a few dozen days."""
    codes, uniques = pd.factorize(s)
    values = np.array([convert(d) for d in pd.DatetimeIndex(uniques)] + [None], dtype=object)
    return values[codes]  # code −1 (missing) picks the trailing None


def _python_rows(table: Table, frame: pd.DataFrame, iso_dates: bool = True) -> list[tuple]:
    """Rows as tuples of Python scalars (None for missing): dates and timestamps as ISO strings
    (SQLite), or with ``iso_dates=False`` as ``date`` / ``datetime`` objects."""
    out = {}
    for name in frame.columns:
        col_type = table.c[name].type
        s = frame[name]
        if isinstance(col_type, Date):
            values = _per_day(s, (lambda d: d.strftime("%Y-%m-%d")) if iso_dates else (lambda d: d.date()))
        elif isinstance(col_type, DateTime):
            values = np.array([None if pd.isna(v) else (pd.Timestamp(v).isoformat(sep=" ") if iso_dates
                                                        else pd.Timestamp(v).to_pydatetime()) for v in s], dtype=object)
        elif isinstance(col_type, (Boolean, Integer)):
            # tolist() yields Python ints: numpy scalars would be bound by sqlite3 as BLOBs.
            mask = s.notna().to_numpy()
            values = np.full(len(s), None, dtype=object)
            values[mask] = s.to_numpy()[mask].astype(np.int64).tolist()
        elif isinstance(col_type, Float):
            arr = s.to_numpy(dtype=float)
            values = arr.astype(object)
            values[np.isnan(arr)] = None
        else:
            values = s.astype(object).where(s.notna(), None).to_numpy()
        out[name] = values
    return list(zip(*out.values()))


def _pg_binary_type(col_type) -> str:
    """PostgreSQL type of a column for binary COPY (the wire format must match the column exactly)."""
    if isinstance(col_type, Boolean):
        return "bool"
    if isinstance(col_type, Integer):
        return "int4"
    if isinstance(col_type, Float):
        return "float8"
    if isinstance(col_type, Date):
        return "date"
    if isinstance(col_type, DateTime):
        return "timestamp"
    return "text"  # varchar and text share the binary format


def _copy_postgres(conn: Connection, table: Table, frame: pd.DataFrame) -> None:
    """``COPY ... FROM STDIN``: an order of magnitude faster than INSERTs at scale.

    psycopg 3 sends binary rows (values adapted by column type: no float formatting and parsing —
    the CSV path spent most of its time in ``to_csv`` — and a text that reads ``\\N`` stays text);
    psycopg2 has no row-wise binary copy, so it gets CSV.
    """
    cols = ", ".join(f'"{c}"' for c in frame.columns)
    raw = conn.connection.driver_connection
    cur = raw.cursor()
    try:
        if hasattr(cur, "copy"):  # psycopg 3
            rows = _python_rows(table, frame, iso_dates=False)
            with cur.copy(f"COPY {table.name} ({cols}) FROM STDIN (FORMAT BINARY)") as cp:
                cp.set_types([_pg_binary_type(table.c[c].type) for c in frame.columns])
                for row in rows:
                    cp.write_row(row)
            return
        buf = io.StringIO()
        out = frame.copy()
        for c in out.columns:
            col_type = table.c[c].type
            if isinstance(col_type, Boolean):
                out[c] = out[c].map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else ("t" if v else "f"))
            elif isinstance(col_type, Integer):
                out[c] = out[c].astype("Int64")
        out.to_csv(buf, index=False, header=False, na_rep="\\N", quoting=csv.QUOTE_MINIMAL, float_format="%.17g")
        buf.seek(0)
        cur.copy_expert(f"COPY {table.name} ({cols}) FROM STDIN WITH (FORMAT csv, NULL '\\N')", buf)
    finally:
        cur.close()


def _from_sql(table: Table, frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Typed frame from raw rows: dates → datetime64, booleans → bool, floats → float64."""
    for name in names:
        col_type = table.c[name].type
        if isinstance(col_type, Date):
            frame[name] = pd.to_datetime(frame[name], format="ISO8601")
        elif isinstance(col_type, DateTime):
            frame[name] = pd.to_datetime(frame[name])
        elif isinstance(col_type, Float):
            try:
                # float() is correctly rounded; pd.to_numeric on the text of the COPY read path is
                # not (about half of all doubles came back off by one ulp).
                frame[name] = frame[name].astype(float)
            except (TypeError, ValueError):
                frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
        elif isinstance(col_type, Boolean):
            # 0/1 on SQLite, 't'/'f' through COPY, True/False elsewhere.
            mapped = frame[name].map({1: True, 0: False, "1": True, "0": False, "t": True, "f": False,
                                      True: True, False: False})
            frame[name] = mapped.astype(bool) if mapped.notna().all() else mapped
        elif isinstance(col_type, Integer):
            numeric = pd.to_numeric(frame[name], errors="coerce")
            frame[name] = numeric.astype("int64") if numeric.notna().all() else numeric
        elif frame[name].dtype == object and frame[name].isna().any():
            frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    return frame

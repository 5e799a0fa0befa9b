"""Warehouse schema versions: a warehouse is never read with the wrong column names.

``Warehouse.create_all()`` stamps a new warehouse with :data:`CURRENT_VERSION` (table
``schema_version``) and refuses an older one — or one with tables but no ``schema_version`` table,
which is version 1, the schema before versioning — with one line naming the command that upgrades
it in place: ``sigmasight warehouse upgrade`` (:func:`upgrade`). A newer warehouse is refused too.

Adding a step (any change to an existing table): append a :class:`Step` to :data:`STEPS` with the
next version number and its operations — :class:`RenameColumn`, :class:`AddColumn` (the column's
type is taken from the table in ``schema.py``, so declare it there first), or :class:`Sql` for
anything else — and change ``schema.py`` to the new shape. New tables need no step: ``create_all``
creates whatever is missing once the version matches. Steps run in one transaction with the stamp
(SQLite ≥ 3.25 and PostgreSQL both rename and add columns transactionally).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Column, Index, MetaData, PrimaryKeyConstraint, Table, func, inspect, select
from sqlalchemy.engine import Connection, Engine

from .engine import SQLITE_PAGE_SIZE
from .schema import LOOKUPS, TABLES, metadata, schema_version
from .views import create_views, drop_views

UPGRADE_COMMAND = "sigmasight warehouse upgrade"
# Tables of the version-1 schema: one of them present without ``schema_version`` means version 1.
LEGACY_MARKERS = ("portfolios", "positions", "prices", "symbol_universe", "portfolio_snapshots")


class WarehouseSchemaError(RuntimeError):
    """The warehouse's schema version is not the one this code reads and writes."""


@dataclass(frozen=True)
class RenameColumn:
    table: str
    old: str
    new: str

    def apply(self, conn: Connection) -> None:
        conn.exec_driver_sql(f'ALTER TABLE {self.table} RENAME COLUMN "{self.old}" TO "{self.new}"')

    def describe(self) -> str:
        return f"{self.table}.{self.old} → {self.new}"


@dataclass(frozen=True)
class AddColumn:
    """Add ``table.column`` as declared in ``schema.py`` (nullable; existing rows get NULL)."""

    table: str
    column: str

    def apply(self, conn: Connection) -> None:
        if self.column in {c["name"] for c in inspect(conn).get_columns(self.table)}:
            return  # already there (a warehouse created between the schema change and its version step)
        col: Column = TABLES[self.table].c[self.column]
        kind = col.type.compile(dialect=conn.dialect)
        conn.exec_driver_sql(f'ALTER TABLE {self.table} ADD COLUMN "{self.column}" {kind}')

    def describe(self) -> str:
        return f"+ {self.table}.{self.column}"


@dataclass(frozen=True)
class Sql:
    """A statement that runs as given on every backend."""

    statement: str

    def apply(self, conn: Connection) -> None:
        conn.exec_driver_sql(self.statement)

    def describe(self) -> str:
        return self.statement


# Stored-form conversions of a rebuild: (table, column) → dialect → expression over the old column
# ``{c}``. Version 4 stores stress contributors as arrays [position_id, symbol, pnl], not objects.
_SQLITE_ARRAYS = (
    "CASE WHEN {c} IS NULL THEN NULL ELSE (SELECT json_group_array(json_array(json_extract(e.value, '$.position_id'), "
    "json_extract(e.value, '$.symbol'), json_extract(e.value, '$.pnl'))) FROM json_each({c}) AS e) END"
)
_POSTGRES_ARRAYS = (
    "CASE WHEN {c} IS NULL THEN NULL ELSE (SELECT coalesce(json_agg(json_build_array(e.v->'position_id', "
    "e.v->'symbol', e.v->'pnl') ORDER BY e.n), '[]'::json)::text FROM json_array_elements({c}::json) "
    "WITH ORDINALITY AS e(v, n)) END"
)
_CONVERSIONS = {("stress_results", "top_contributors"): {"sqlite": _SQLITE_ARRAYS, "postgresql": _POSTGRES_ARRAYS}}


def asset_tables() -> list[Table]:
    """The partitioned asset tables (primary key ``pk_<name>`` on (date, key, …))."""
    return [t for t in TABLES.values() if (t.primary_key.name or "").startswith("pk_")]


@dataclass(frozen=True)
class RebuildAssetTables:
    """Rebuild every asset table in the storage shape of ``schema.py``: its primary key (clustered
    on SQLite), its secondary index if it has one, lookup columns moved to the lookup table
    (``schema.LOOKUPS``), stored forms converted. Copies the rows (``INSERT … SELECT``) in the
    step's transaction; the table keeps exactly the columns it had (less the lookup's), so later
    steps that add columns still apply."""

    def apply(self, conn: Connection) -> None:
        dialect = conn.dialect.name
        insp = inspect(conn)
        present = set(insp.get_table_names())
        for table in asset_tables():
            if table.name not in present:
                continue
            old_cols = [c["name"] for c in insp.get_columns(table.name)]
            for ix in insp.get_indexes(table.name):
                conn.exec_driver_sql(f'DROP INDEX "{ix["name"]}"')
            old = f"{table.name}__rebuild"
            pk_name = insp.get_pk_constraint(table.name).get("name")
            conn.exec_driver_sql(f'ALTER TABLE "{table.name}" RENAME TO "{old}"')
            if pk_name and dialect == "postgresql":  # constraint names are per schema there
                conn.exec_driver_sql(f'ALTER TABLE "{old}" DROP CONSTRAINT "{pk_name}"')
            lookup = LOOKUPS.get(table.name)
            moved = {c.name for c in lookup.columns} if lookup else set()
            keep = [c for c in table.columns if c.name in old_cols and c.name not in moved]
            new = Table(table.name, MetaData(), *[Column(c.name, c.type, nullable=c.nullable) for c in keep],
                        PrimaryKeyConstraint(*[c.name for c in table.primary_key.columns], name=table.primary_key.name),
                        sqlite_with_rowid=table.dialect_options["sqlite"]["with_rowid"])
            for ix in table.indexes:
                Index(ix.name, *[new.c[c.name] for c in ix.columns], unique=ix.unique)
            new.create(conn)
            if lookup is not None and lookup.key in old_cols and moved <= set(old_cols):
                lookup.table.create(conn, checkfirst=True)
                names = [c.name for c in lookup.columns]
                conn.exec_driver_sql(
                    f'INSERT INTO {lookup.table.name} ("{lookup.key}", {", ".join(chr(34) + n + chr(34) for n in names)}) '
                    f'SELECT "{lookup.key}", {", ".join(f"max({chr(34) + n + chr(34)})" for n in names)} FROM "{old}" '
                    f'GROUP BY "{lookup.key}"')
            exprs = [(_CONVERSIONS[(table.name, c.name)][dialect].format(c=f'"{c.name}"')
                      if (table.name, c.name) in _CONVERSIONS else f'"{c.name}"') for c in keep]
            cols = ", ".join(f'"{c.name}"' for c in keep)
            conn.exec_driver_sql(f'INSERT INTO "{table.name}" ({cols}) SELECT {", ".join(exprs)} FROM "{old}"')
            conn.exec_driver_sql(f'DROP TABLE "{old}"')

    def describe(self) -> str:
        return "rebuild the asset tables (primary keys, lookups, compact stored forms)"


@dataclass(frozen=True)
class Step:
    version: int
    description: str
    operations: tuple
    #: rows the step cannot carry over: when ``prices`` has rows, the upgrade is refused unless asked to
    #: rebuild, which deletes the rows of these tables (the ledger is kept) for a backfill to recompute.
    rebuilds_market_data: bool = False


REBUILD_OPTION = "--rebuild-market-data"
# Everything computed from prices (the ledger and the ledger-derived universe are kept).
KEPT_ON_REBUILD = {"portfolios", "positions", "capital_flows", "private_marks", "symbol_universe", "run_failures",
                   "schema_version"}


STEPS: tuple[Step, ...] = (
    Step(2, "one name per meaning: intercept vs ridge penalty, effective positions by weight vs by correlation", (
        RenameColumn("symbol_betas", "alpha", "intercept"),
        RenameColumn("spread_factors", "alpha", "intercept"),
        RenameColumn("ridge_factors", "alpha", "ridge_penalty"),
        RenameColumn("portfolio_snapshots", "effective_positions", "effective_positions_hhi"),
        RenameColumn("correlations", "effective_positions", "effective_positions_corr"),
    )),
    # Point-in-time returns (issue 14): prices carry the day's corporate actions and close is as traded.
    # Rows stored before have a close of unknown basis (a provider's split-adjusted close, or raw with
    # its dividends lost) that no returns may be computed from, so they are rebuilt, never reinterpreted.
    Step(3, "prices as traded with dividend and split_ratio, symbol_returns, private_marks, snapshot dividends", (
        AddColumn("prices", "dividend"),
        AddColumn("prices", "split_ratio"),
        AddColumn("portfolio_snapshots", "dividends"),
        Sql("CREATE INDEX IF NOT EXISTS ix_prices_actions ON prices (date, symbol, dividend, split_ratio) "
            "WHERE dividend > 0 OR split_ratio <> 1"),
    ), rebuilds_market_data=True),
    Step(4, "stress on the joint factor model: coverage and the replayed share of historical replays", (
        AddColumn("stress_results", "coverage"),
        AddColumn("stress_results", "replayed_share"),
    )),
    Step(5, "footprint: one primary key per asset table (clustered on SQLite), scenario attributes in "
            "stress_scenarios, stress contributors as arrays", (RebuildAssetTables(),)),
)
CURRENT_VERSION = STEPS[-1].version if STEPS else 1


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)


def stored_version(conn: Connection) -> int | None:
    """The warehouse's version; ``None`` for an empty database (no warehouse table at all)."""
    names = set(inspect(conn).get_table_names())
    if schema_version.name in names:
        value = conn.execute(select(func.max(schema_version.c.version))).scalar()
        if value is not None:
            return int(value)
    return 1 if names & set(LEGACY_MARKERS) else None


def _stamp(conn: Connection, version: int, description: str) -> None:
    conn.execute(schema_version.insert().values(version=version, applied_at=_now(), description=description))


def _describe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def ensure_current(engine: Engine) -> None:
    """Create a new warehouse at :data:`CURRENT_VERSION`, accept a current one (creating tables it
    lacks), refuse any other version with one line naming the upgrade command."""
    with engine.begin() as conn:
        version = stored_version(conn)
        if version is None:
            metadata.create_all(conn)
            create_views(conn)
            _stamp(conn, CURRENT_VERSION, f"created at version {CURRENT_VERSION}")
            return
        if version == CURRENT_VERSION:
            metadata.create_all(conn)
            create_views(conn)
            return
    where = _describe(str(engine.url))
    if version < CURRENT_VERSION:
        raise WarehouseSchemaError(
            f"warehouse {where} has schema version {version}, this code needs {CURRENT_VERSION}: run "
            f"`{UPGRADE_COMMAND}` (same SIGMASIGHT_DATABASE_URL) to upgrade it in place")
    raise WarehouseSchemaError(
        f"warehouse {where} has schema version {version}, newer than this code's {CURRENT_VERSION}: "
        "upgrade sigmasight_assets, or point SIGMASIGHT_DATABASE_URL at another warehouse")


def _rebuild_market_data(conn: Connection, step: Step, rebuild: bool, where: str) -> None:
    """Refuse (one line naming the command) or, with ``rebuild``, empty the tables computed from prices."""
    names = set(inspect(conn).get_table_names())
    if "prices" not in names:
        return
    if "dividend" in {c["name"] for c in inspect(conn).get_columns("prices")}:
        return  # stored as traded with their actions already (created by code that had the columns)
    rows = conn.exec_driver_sql("SELECT COUNT(*) FROM prices").scalar()
    if not rows:
        return
    if not rebuild:
        raise WarehouseSchemaError(
            f"warehouse {where} holds {rows:,} prices rows stored before schema version {step.version} (closes of "
            f"unknown adjustment, no dividends or splits), which would give wrong returns: run `{UPGRADE_COMMAND} "
            f"{REBUILD_OPTION}` (deletes prices and every table computed from them, keeps the ledger), then backfill")
    for name in sorted(names & set(TABLES) - KEPT_ON_REBUILD):
        if "date" in TABLES[name].c:
            conn.exec_driver_sql(f"DELETE FROM {name}")


def upgrade(engine: Engine, rebuild_market_data: bool = False) -> list[Step]:
    """Apply every step after the warehouse's version, in one transaction; returns the steps applied
    (none for a current or new warehouse, which is created at the current version).

    A step that cannot carry stored prices over (``rebuilds_market_data``) refuses a warehouse with
    prices unless ``rebuild_market_data``, which deletes the rows computed from prices first."""
    with engine.begin() as conn:
        version = stored_version(conn)
        if version is None or version == CURRENT_VERSION:
            applied: list[Step] = []
        elif version > CURRENT_VERSION:
            raise WarehouseSchemaError(
                f"warehouse {_describe(str(engine.url))} has schema version {version}, newer than this "
                f"code's {CURRENT_VERSION}: nothing to upgrade")
        else:
            applied = [s for s in STEPS if s.version > version]
            schema_version.create(conn, checkfirst=True)
            drop_views(conn)  # recreated from schema.py by ensure_current below
            for step in applied:
                if step.rebuilds_market_data:
                    _rebuild_market_data(conn, step, rebuild_market_data, _describe(str(engine.url)))
                for op in step.operations:
                    op.apply(conn)
                _stamp(conn, step.version, step.description)
    ensure_current(engine)
    if engine.dialect.name == "sqlite" and any(isinstance(op, RebuildAssetTables) for s in applied for op in s.operations):
        # A rebuild leaves the old tables' pages free inside the file: give them back, rewriting the
        # file at the current page size (which WAL mode cannot change, hence the switch).
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=DELETE")
            conn.exec_driver_sql(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
            conn.exec_driver_sql("VACUUM")
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    return applied

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

from sqlalchemy import Column, func, inspect, select
from sqlalchemy.engine import Connection, Engine

from .schema import TABLES, metadata, schema_version

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
            _stamp(conn, CURRENT_VERSION, f"created at version {CURRENT_VERSION}")
            return
        if version == CURRENT_VERSION:
            metadata.create_all(conn)
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
            for step in applied:
                if step.rebuilds_market_data:
                    _rebuild_market_data(conn, step, rebuild_market_data, _describe(str(engine.url)))
                for op in step.operations:
                    op.apply(conn)
                _stamp(conn, step.version, step.description)
    ensure_current(engine)
    return applied

"""SQL views that present compactly stored asset tables with readable columns: ``<table>_view``.

A table with a lookup (``schema.LOOKUPS``: ``stress_results`` → ``stress_scenarios``) is stored
without the lookup's columns; its view joins them back, after the lookup key, in the order of
``schema.READABLE``. Columns stored in a compact encoding get a presenting expression
(:data:`PRESENTED`): ``top_contributors`` is stored as arrays ``[position_id, symbol, pnl]`` and
presented as objects ``{"position_id", "symbol", "pnl"}``. The view is generated from the tables
in ``schema.py``, so a column added there appears in the view when it is recreated
(``sigmasight warehouse upgrade`` drops and recreates every view).
"""

from __future__ import annotations

from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from .schema import LOOKUPS, READABLE

_SQLITE_OBJECTS = (
    "CASE WHEN t.{c} IS NULL THEN NULL ELSE (SELECT json_group_array(json_object("
    "'position_id', json_extract(e.value, '$[0]'), 'symbol', json_extract(e.value, '$[1]'), "
    "'pnl', json_extract(e.value, '$[2]'))) FROM json_each(t.{c}) AS e) END"
)
_POSTGRES_OBJECTS = (
    "CASE WHEN t.{c} IS NULL THEN NULL ELSE (SELECT coalesce(json_agg(json_build_object("
    "'position_id', e.v->>0, 'symbol', e.v->>1, 'pnl', e.v->2) ORDER BY e.n), '[]'::json)::text "
    "FROM json_array_elements(t.{c}::json) WITH ORDINALITY AS e(v, n)) END"
)

#: (table, column) → dialect → SQL expression presenting the stored value (``{c}`` = the column).
PRESENTED: dict[tuple[str, str], dict[str, str]] = {
    ("stress_results", "top_contributors"): {"sqlite": _SQLITE_OBJECTS, "postgresql": _POSTGRES_OBJECTS},
}

#: Tables that have a view.
VIEWED: tuple[str, ...] = tuple(sorted(set(LOOKUPS) | {t for t, _c in PRESENTED}))


def view_name(table: str) -> str:
    return f"{table}_view"


def view_sql(table: str, dialect: str) -> str:
    """``CREATE VIEW <table>_view AS SELECT …`` for ``dialect`` (``sqlite`` or ``postgresql``)."""
    lookup = LOOKUPS.get(table)
    side = {c.name for c in lookup.columns} if lookup else set()
    exprs = []
    for col in READABLE[table].columns:
        name = col.name
        if name in side:
            exprs.append(f's."{name}" AS "{name}"')
        elif (table, name) in PRESENTED:
            exprs.append(f'{PRESENTED[(table, name)][dialect].format(c=chr(34) + name + chr(34))} AS "{name}"')
        else:
            exprs.append(f't."{name}" AS "{name}"')
    join = (f' LEFT JOIN {lookup.table.name} AS s ON s."{lookup.key}" = t."{lookup.key}"' if lookup else "")
    return f"CREATE VIEW {view_name(table)} AS SELECT {', '.join(exprs)} FROM {table} AS t{join}"


def create_views(conn: Connection) -> list[str]:
    """Create the views that are missing (their tables must exist); returns the names created."""
    dialect = conn.dialect.name
    if dialect not in ("sqlite", "postgresql"):
        return []
    insp = inspect(conn)
    have = set(insp.get_view_names())
    created = []
    for table in VIEWED:
        if view_name(table) not in have:
            conn.exec_driver_sql(view_sql(table, dialect))
            created.append(view_name(table))
    return created


def drop_views(conn: Connection) -> None:
    """Drop every view of :data:`VIEWED` (before tables they read are rebuilt or altered)."""
    for table in VIEWED:
        conn.exec_driver_sql(f"DROP VIEW IF EXISTS {view_name(table)}")

"""The warehouse's footprint: bytes per table and per index, rows, bytes per row.

``python -m benchmarks.footprint URL`` prints a table; :func:`measure` returns the numbers (the
benchmark's footprint step calls it after workload 3).

* SQLite: the ``dbstat`` virtual table (pages of every b-tree: a table, a ``WITHOUT ROWID`` table's
  primary key, an index), summed per b-tree; the file size beside it. Without ``dbstat`` compiled
  in, only the file (``page_count × page_size``) is reported.
* PostgreSQL: ``pg_relation_size`` of each table (heap) and of each index, plus the table's TOAST
  (``pg_total_relation_size`` − heap − indexes); the database size beside it.
"""

from __future__ import annotations

import argparse
import sys

from sqlalchemy import create_engine, inspect, text


def _sqlite(conn) -> dict:
    page_size = conn.execute(text("PRAGMA page_size")).scalar_one()
    page_count = conn.execute(text("PRAGMA page_count")).scalar_one()
    freelist = conn.execute(text("PRAGMA freelist_count")).scalar_one()
    out = {"backend": "sqlite", "database_bytes": int(page_size * page_count),
           "free_bytes": int(page_size * freelist), "tables": {}}
    objects = conn.execute(text("SELECT type, name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')")).all()
    owner = {name: tbl for _type, name, tbl in objects}
    try:
        sizes = dict(conn.execute(text("SELECT name, sum(pgsize) FROM dbstat GROUP BY name")).all())
    except Exception:  # noqa: BLE001 - dbstat not compiled in: file size only
        out["dbstat"] = False
        return out
    out["dbstat"] = True
    for name, size in sizes.items():
        table = owner.get(name, name)
        entry = out["tables"].setdefault(table, {"table_bytes": 0, "indexes": {}})
        if name == table:
            entry["table_bytes"] += int(size)
        else:
            entry["indexes"][name] = int(size)
    return out


def _postgres(conn) -> dict:
    db_bytes = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
    out = {"backend": "postgresql", "database_bytes": int(db_bytes), "tables": {}}
    rows = conn.execute(text(
        "SELECT c.relname, pg_relation_size(c.oid), pg_total_relation_size(c.oid), pg_indexes_size(c.oid) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'r' AND n.nspname = current_schema()")).all()
    for name, heap, total, indexes in rows:
        out["tables"][name] = {"table_bytes": int(heap), "toast_bytes": int(total - heap - indexes), "indexes": {}}
    for table, index, size in conn.execute(text(
            "SELECT t.relname, i.relname, pg_relation_size(i.oid) FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
            "JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = current_schema()")).all():
        if table in out["tables"]:
            out["tables"][table]["indexes"][index] = int(size)
    return out


def measure(url: str, count_rows: bool = True) -> dict:
    """Bytes per table (heap or clustered b-tree, TOAST on PostgreSQL) and per index, with row
    counts and bytes per row, of the warehouse at ``url``."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                out = _postgres(conn)
            else:
                out = _sqlite(conn)
            tables = set(inspect(conn).get_table_names())
            for name, entry in out["tables"].items():
                entry["index_bytes"] = sum(entry["indexes"].values())
                entry["total_bytes"] = entry["table_bytes"] + entry.get("toast_bytes", 0) + entry["index_bytes"]
                if count_rows and name in tables:
                    rows = conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one()
                    entry["rows"] = int(rows)
                    if rows:
                        entry["bytes_per_row"] = round(entry["total_bytes"] / rows, 1)
                        entry["table_bytes_per_row"] = round(
                            (entry["table_bytes"] + entry.get("toast_bytes", 0)) / rows, 1)
                        entry["index_bytes_per_row"] = round(entry["index_bytes"] / rows, 1)
            out["rows"] = sum(e.get("rows", 0) for e in out["tables"].values())
            out["tables_bytes"] = sum(e["total_bytes"] for e in out["tables"].values())
    finally:
        engine.dispose()
    return out


def render(fp: dict, min_bytes: int = 0) -> list[str]:
    """Markdown lines: one row per table (largest first), its indexes in one cell."""
    lines = [f"{fp['backend']}: database {fp['database_bytes'] / 1e6:,.1f} MB"
             + (f" ({fp['free_bytes'] / 1e6:,.1f} MB free pages)" if fp.get("free_bytes") else "")
             + f", {fp.get('rows', 0):,} rows in the tables", "",
             "| table | rows | table MB | index MB | total MB | B/row (table + indexes) | indexes (MB) |",
             "|---|---:|---:|---:|---:|---|---|"]
    if fp.get("dbstat") is False:
        return lines[:1] + ["", "(dbstat not compiled in: no per-table breakdown)"]
    for name, e in sorted(fp["tables"].items(), key=lambda kv: -kv[1]["total_bytes"]):
        if e["total_bytes"] < min_bytes:
            continue
        per_row = (f"{e['bytes_per_row']:,.0f} ({e['table_bytes_per_row']:,.0f} + {e['index_bytes_per_row']:,.0f})"
                   if e.get("bytes_per_row") else "")
        idx = ", ".join(f"{k} {v / 1e6:,.1f}" for k, v in sorted(e["indexes"].items()))
        table_mb = (e["table_bytes"] + e.get("toast_bytes", 0)) / 1e6
        lines.append(f"| {name} | {e.get('rows', 0):,} | {table_mb:,.1f} | {e['index_bytes'] / 1e6:,.1f} | "
                     f"{e['total_bytes'] / 1e6:,.1f} | {per_row} | {idx} |")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.footprint", description=__doc__.split("\n")[0])
    p.add_argument("url", help="SQLAlchemy URL of the warehouse")
    p.add_argument("--no-rows", action="store_true", help="skip the row counts")
    args = p.parse_args(argv)
    print("\n".join(render(measure(args.url, count_rows=not args.no_rows))))
    return 0


if __name__ == "__main__":
    sys.exit(main())

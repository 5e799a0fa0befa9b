"""Small helpers shared by the asset modules (range handling, scoped config, metadata)."""

from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd
from dagster import Config, MetadataValue, TableColumn, TableSchema

from .partitions import partition_days

OWNER = "team:risk-platform"
# Steps that peak at about a GB per process or more — symbol_metrics, and portfolio_analytics with
# one chunk worker per core — carry this tag; the daily job's multiprocess executor runs at most one
# of them at a time (jobs.py), which keeps a year's backfill under 4 GB of RSS on 2 cores.
MEMORY_HEAVY_TAG = {"sigmasight/memory": "heavy"}


class ScopeConfig(Config):
    """Run config of symbol-level assets.

    ``symbols``: recompute and replace only these symbols' rows (merge); empty = the whole partition.
    """

    symbols: Optional[list[str]] = None


def run_days(context) -> pd.DatetimeIndex:
    """The partition days of this run (one day nightly, a whole range in a single-run backfill)."""
    return partition_days(context.partition_keys)


def scope_symbols(config: ScopeConfig) -> list[str] | None:
    if not config.symbols:
        return None
    return sorted({s.strip().upper() for s in config.symbols if s and s.strip()})


def md_table(frame: pd.DataFrame, max_rows: int = 10, floatfmt: str = "{:.4g}") -> MetadataValue:
    """A short markdown preview of a frame (no extra dependency)."""
    if frame is None or frame.empty:
        return MetadataValue.md("_no rows_")
    head = frame.head(max_rows)
    cols = list(head.columns)

    def fmt(v):
        if isinstance(v, (float, np.floating)):
            return "—" if np.isnan(v) else floatfmt.format(v)
        if isinstance(v, pd.Timestamp):
            return v.date().isoformat()
        return str(v)

    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in head.itertuples(index=False)]
    if len(frame) > max_rows:
        lines.append(f"\n_{len(frame) - max_rows} more rows_")
    return MetadataValue.md("\n".join(lines))


def table_metadata(table) -> dict:
    """Definition metadata for an asset stored in ``table``: column schema and table name."""
    return {"dagster/column_schema": table_schema(table), "dagster/table_name": table.name}


def table_schema(table) -> TableSchema:
    """Dagster column schema from a SQLAlchemy table (shown in the UI's asset page)."""
    return TableSchema(
        columns=[
            TableColumn(c.name, str(c.type).lower(), description=c.comment or None)
            for c in table.columns
        ]
    )


def reasons_summary(reasons: dict[str, str], limit: int = 15) -> MetadataValue:
    if not reasons:
        return MetadataValue.md("_none_")
    items = sorted(reasons.items())[:limit]
    lines = [f"- `{s}`: {r}" for s, r in items]
    if len(reasons) > limit:
        lines.append(f"- … {len(reasons) - limit} more")
    return MetadataValue.md("\n".join(lines))


def range_metadata(days: pd.DatetimeIndex) -> dict:
    return {
        "partition_range": f"{days[0].date()}..{days[-1].date()}" if len(days) else "",
        "partitions": len(days),
    }


def write_partitions(wh, table_name: str, frame: pd.DataFrame, start, end, **kwargs) -> int:
    """:func:`sigmasight_assets.schemas.write_validated` (pandera is imported on first write)."""
    from .. import schemas

    return schemas.write_validated(wh, table_name, frame, start, end, **kwargs)

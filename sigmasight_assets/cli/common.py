"""Shared pieces of the command line: the warehouse to use, progress bars, number formatting and
plain text tables."""

from __future__ import annotations

import math
import sys
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from .. import config

DATABASE_URL_HELP = "Warehouse SQLAlchemy URL (default: $SIGMASIGHT_DATABASE_URL, else SQLite in $DAGSTER_HOME)."
PROGRESS_HELP = "Show a progress bar (default: only on a terminal)."
BACKFILL_HINT = ("backfill the range with `sigmasight backfill --from START --to END` (runs queued for the Dagster "
                 "daemon), or in the Dagster UI: Jobs → daily_risk_graph → Materialize → the days")


def url_setting(url: str | None) -> str:
    """Where a command's warehouse URL came from, for messages: the variable or the option."""
    import os

    env = os.environ.get("SIGMASIGHT_DATABASE_URL", "").strip()
    return "SIGMASIGHT_DATABASE_URL" if not url or url.strip() == env else "--database-url"


def open_warehouse(url: str | None):
    """The warehouse of ``url`` (default ``SIGMASIGHT_DATABASE_URL``), created or version-checked.

    A URL that cannot be used raises ``WarehouseURLError`` with one line naming the setting (the
    command line prints it without a traceback), before anything is read or written."""
    import click

    from ..warehouse import Warehouse
    from ..warehouse.engine import check_url
    from ..warehouse.versions import WarehouseSchemaError

    url = url or config.database_url()
    check_url(url, url_setting(url))
    wh = Warehouse(url)
    try:
        wh.create_all()
    except WarehouseSchemaError as exc:
        raise click.ClickException(str(exc)) from None
    return wh


def sample_files() -> tuple[Path, Path]:
    base = resources.files("sigmasight_assets") / "data"
    return Path(str(base / "sample_positions.csv")), Path(str(base / "sample_capital_flows.csv"))


def progress_bar(total: int, desc: str, enabled: bool | None, unit: str = "step"):
    """A tqdm bar on stderr; ``enabled=None`` shows it only when stderr is a terminal."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=(None if enabled is None else not enabled),
                leave=True, dynamic_ncols=True)


def is_missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT or (
        not isinstance(v, (str, bytes, list, dict)) and pd.isna(v))


def money(v) -> str:
    return "—" if is_missing(v) else f"{v:,.0f}"


def pct(v, digits: int = 2) -> str:
    return "—" if is_missing(v) else f"{v * 100:.{digits}f}%"


def num(v, digits: int = 3) -> str:
    return "—" if is_missing(v) else f"{v:.{digits}f}"


def day(v) -> str:
    return "—" if is_missing(v) else pd.Timestamp(v).date().isoformat()


def render_table(rows: Sequence[Sequence], headers: Sequence[str] | None, align: str | None = None,
                 indent: int = 2) -> str:
    """A plain text table: ``align`` has one letter per column, ``l`` or ``r`` (default: left);
    ``headers=None`` for a key/value block without a header line."""
    body = [["" if c is None else str(c) for c in row] for row in rows]
    n_cols = len(headers) if headers is not None else max((len(r) for r in body), default=0)
    cells = ([[str(h) for h in headers]] if headers is not None else []) + body
    align = align or "l" * n_cols
    widths = [max((len(r[i]) for r in cells), default=0) for i in range(n_cols)]

    def line(row):
        parts = [c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(row, widths, align)]
        return " " * indent + "  ".join(parts).rstrip()

    if headers is None:
        return "\n".join(line(r) for r in body)
    rule = " " * indent + "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in body)])


def short_list(items: Iterable[str], limit: int = 12) -> str:
    items = sorted(items)
    text = ", ".join(items[:limit])
    return text + (f", … {len(items) - limit} more" if len(items) > limit else "")


def first_date(wh, table_name: str):
    """The earliest ``date`` of a table (None when empty)."""
    from sqlalchemy import func, select

    table = wh.table(table_name)
    with wh.engine.connect() as conn:
        value = conn.execute(select(func.min(table.c.date))).scalar_one()
    return pd.Timestamp(value).date() if value is not None else None

"""Storing and reading the portfolio ledger (portfolios, positions, capital flows, private marks)."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd

from .repository import Warehouse


def store_ledger(wh: Warehouse, ledger) -> dict[str, int]:
    """Replace the ledgers of the portfolios in ``ledger`` in one transaction.

    Portfolios not named in the files are left untouched. A portfolio in the positions file has its
    positions replaced as a whole (the file is the source of truth for that book); its capital flows
    are replaced only when a flows file was given (then for every portfolio in either file), so
    reloading positions alone never drops recorded flows. Private marks likewise: replaced, for every
    portfolio in the positions or marks file, only when a marks file was given.

    Returns the rows stored per table; ``capital_flows_given`` says whether a flows file was given
    and, when it was not, ``capital_flows_kept`` counts the stored flows of these portfolios that
    were kept.
    """
    ids = list(ledger.portfolios["portfolio_id"])
    flow_ids = set(ledger.capital_flows["portfolio_id"]) if len(ledger.capital_flows) else set()
    books = ledger.portfolios.assign(currency="USD", loaded_at=datetime.now(timezone.utc).replace(tzinfo=None))
    with wh.engine.begin() as conn:
        wh.delete_in(conn, "portfolios", "portfolio_id", ids)
        wh.delete_in(conn, "positions", "portfolio_id", ids)
        if getattr(ledger, "flows_given", True):
            wh.delete_in(conn, "capital_flows", "portfolio_id", sorted(set(ids) | flow_ids))
        wh.insert(conn, "portfolios", books)
        wh.insert(conn, "positions", ledger.positions)
        wh.insert(conn, "capital_flows", ledger.capital_flows)
        marks = getattr(ledger, "marks", None)
        if getattr(ledger, "marks_given", False):
            mark_ids = set(marks["portfolio_id"]) if len(marks) else set()
            wh.delete_in(conn, "private_marks", "portfolio_id", sorted(set(ids) | mark_ids))
            wh.insert(conn, "private_marks", marks)
    counts = {"portfolios": len(books), "positions": len(ledger.positions), "capital_flows": len(ledger.capital_flows),
              "private_marks": 0 if marks is None else len(marks),
              "capital_flows_given": bool(getattr(ledger, "flows_given", True))}
    if not counts["capital_flows_given"]:
        kept = wh.read("capital_flows", keys=ids, key_column="portfolio_id", columns=["portfolio_id"])
        counts["capital_flows_kept"] = len(kept)
    return counts


def read_ledger(wh: Warehouse, portfolio_ids=None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(portfolios, positions, capital_flows) as typed frames."""
    books = wh.read("portfolios", keys=portfolio_ids, key_column="portfolio_id")
    pos = wh.read("positions", keys=portfolio_ids, key_column="portfolio_id")
    flows = wh.read("capital_flows", keys=portfolio_ids, key_column="portfolio_id")
    return books, pos, flows


def remove_ledger(wh: Warehouse, portfolio_ids) -> dict[str, int]:
    """Delete the ledgers (portfolio, positions, capital flows) of ``portfolio_ids`` in one
    transaction; returns the rows deleted per table. Their analytics rows are left to the
    ``remove_portfolio_rows`` job (the ledger sensor requests it)."""
    return wh.delete_keys(("portfolios", "positions", "capital_flows", "private_marks"), list(portfolio_ids))
